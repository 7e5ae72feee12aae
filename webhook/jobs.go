package webhook

import (
	"context"
	"maps"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// JobMetadata is the metadata-only object the pod mutator reads Jobs as: the
// informer behind Inputs.Jobs holds Jobs' metadata (owner references), not
// their specs.
func JobMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(jobGVK)
	return m
}

var jobGVK = schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}

// perRunLabels and perRunAnnotations are what the Job controller writes on
// each run's pods (kubernetes pkg/controller/job): they differ from one Job
// of a CronJob to the next, so a CronJob's pods are decided without them —
// as its jobTemplate, the way plan and explain decide it.
var (
	perRunLabels = []string{"controller-uid", "batch.kubernetes.io/controller-uid", "job-name",
		"batch.kubernetes.io/job-name", "batch.kubernetes.io/job-completion-index"}
	perRunAnnotations = []string{"batch.kubernetes.io/job-completion-index"}
)

// owner is the workload a pod's answer is kept for (DESIGN.md "Stability"):
// the pod's controller, except that a Job's pod whose Job a CronJob controls
// is keyed on the CronJob, so every run of a CronJob gets one answer. The Job
// is read from Inputs.Jobs (an informer cache of Jobs' metadata); without
// it, or when the Job is not (yet) in it, the pod is keyed on its Job: its
// runs are then decided one by one, each run stable in itself.
func (in *Inputs) owner(ctx context.Context, namespace, kind, name string) (string, string) {
	if kind != "Job" || name == "" || in.Jobs == nil {
		return kind, name
	}
	job := JobMetadata()
	if err := in.Jobs.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, job); err != nil {
		if !apierrors.IsNotFound(err) {
			logf.FromContext(ctx).V(1).Info("job not read from cache; pod keyed on its job", "namespace", namespace, "job", name, "error", err.Error())
		}
		return kind, name
	}
	if c := metav1.GetControllerOf(job); c != nil && c.Kind == "CronJob" && c.Name != "" {
		return c.Kind, c.Name
	}
	return kind, name
}

// withoutKeys is m without keys, copied only when it has one of them.
func withoutKeys(m map[string]string, keys []string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			continue
		}
		if out == nil {
			out = maps.Clone(m)
		}
		delete(out, k)
	}
	if out == nil {
		return m
	}
	return out
}
