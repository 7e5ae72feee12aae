package cli

import (
	"errors"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshshift/meshshift/signals"
)

// meshGroups are the API groups of the mesh objects the index reads: one of
// them that cannot be decoded is skipped (Inventory.Skipped), not fatal.
var meshGroups = map[string]bool{
	groupIstioNetworking: true, groupIstioSecurity: true, groupIstioTelemetry: true, groupIstioExtensions: true,
	groupGateway: true, groupCilium: true,
}

// SkippedObject is an object of a kind meshshift reads that was left out of
// the plan, and why.
type SkippedObject struct {
	// Source is where it was read ("file:line (document n[, item i])" or "cluster").
	Source string `json:"source"`
	// Object is "Kind namespace/name".
	Object string `json:"object"`
	// Field is the field path that could not be read, when one is to blame.
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

func (s SkippedObject) String() string {
	out := s.Source + ": " + s.Object
	if s.Field != "" {
		out += ": field " + s.Field
	}
	return out + ": " + s.Reason
}

// skippedOf turns the error of one object into its skipped entries.
func skippedOf(o *Object, err error) []SkippedObject {
	var out []SkippedObject
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		s := SkippedObject{Source: o.Source.String(), Object: o.Ref(), Reason: e.Error()}
		var me *ManifestError
		if errors.As(e, &me) {
			s.Field, s.Reason = me.Field, me.Err.Error()
		}
		out = append(out, s)
	}
	return out
}

// addBatchOrRC adds a ReplicationController, Job or CronJob. A CronJob is
// decided as its Job template's pod template; a Job a CronJob owns is one run
// of that CronJob (its pods are keyed on the CronJob, as the webhook keys
// them), not a workload of its own.
func (b *builder) addBatchOrRC(o *Object, typed any) error {
	w := &WorkloadInfo{Kind: o.U.GetKind(), Namespace: o.U.GetNamespace(), Name: o.U.GetName(), Source: o.Source}
	switch t := typed.(type) {
	case *corev1.ReplicationController:
		if t.Spec.Template == nil {
			return &ManifestError{Source: o.Source, Object: o.Ref(), Field: "spec.template",
				Err: errors.New("required: a ReplicationController without a pod template creates no pods")}
		}
		w.Replicas, w.Template = replicas(t.Spec.Replicas), *t.Spec.Template
	case *batchv1.Job:
		w.Replicas, w.Template = replicas(t.Spec.Parallelism), t.Spec.Template
		if c := metav1.GetControllerOf(t); c != nil && c.Kind == "CronJob" {
			b.jobOwner[t.Namespace+"/"+t.Name] = c.Name
			w.Kind, w.Name = "CronJob", c.Name
			b.ownedJobs = append(b.ownedJobs, w)
			b.inv.Index.UpsertWorkload(signals.WorkloadKey{Namespace: w.Namespace, Name: w.Name}, w.Template.Labels)
			return nil
		}
	case *batchv1.CronJob:
		js := &t.Spec.JobTemplate.Spec
		w.Replicas, w.Template = replicas(js.Parallelism), js.Template
	}
	b.inv.Index.UpsertWorkload(signals.WorkloadKey{Namespace: w.Namespace, Name: w.Name}, w.Template.Labels)
	return b.addWorkload(o, w)
}

// rolloutRef is an Argo Rollout whose pods come from the template of the
// Deployment its spec.workloadRef names.
type rolloutRef struct {
	o          *Object
	w          *WorkloadInfo
	deployment string
}

// addRollout reads an Argo Rollout (argoproj.io/v1alpha1): its
// spec.template, or the Deployment its spec.workloadRef names (resolved once
// every object is read).
func (b *builder) addRollout(o *Object) error {
	w := &WorkloadInfo{Kind: "Rollout", Namespace: o.U.GetNamespace(), Name: o.U.GetName(), Replicas: 1, Source: o.Source}
	r, found, err := unstructured.NestedFieldNoCopy(o.U.Object, "spec", "replicas")
	if err != nil {
		return &ManifestError{Source: o.Source, Object: o.Ref(), Field: "spec.replicas", Err: err}
	}
	if found {
		var n int32
		if err := decodeStrict(o, r, &n, "spec.replicas"); err != nil {
			return err
		}
		w.Replicas = n
	}
	tmpl, hasTemplate, _ := unstructured.NestedFieldNoCopy(o.U.Object, "spec", "template")
	ref, hasRef, _ := unstructured.NestedFieldNoCopy(o.U.Object, "spec", "workloadRef")
	switch {
	case hasTemplate && hasRef:
		return &ManifestError{Source: o.Source, Object: o.Ref(), Field: "spec.workloadRef",
			Err: errors.New("give spec.template or spec.workloadRef, not both (Argo Rollouts rejects both)")}
	case hasTemplate:
		if err := decodeStrict(o, tmpl, &w.Template, "spec.template"); err != nil {
			return err
		}
	case hasRef:
		var wr struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
			ScaleDown  string `json:"scaleDown,omitempty"`
		}
		if err := decodeStrict(o, ref, &wr, "spec.workloadRef"); err != nil {
			return err
		}
		if wr.Kind != "Deployment" || wr.Name == "" {
			return &ManifestError{Source: o.Source, Object: o.Ref(), Field: "spec.workloadRef",
				Err: fmt.Errorf("kind %q name %q: want a Deployment by name (the kind Argo Rollouts references)", wr.Kind, wr.Name)}
		}
		b.rollouts = append(b.rollouts, &rolloutRef{o: o, w: w, deployment: wr.Name})
		return nil
	default:
		return &ManifestError{Source: o.Source, Object: o.Ref(), Field: "spec.template",
			Err: errors.New("required: a Rollout needs spec.template or spec.workloadRef")}
	}
	b.inv.Index.UpsertWorkload(signals.WorkloadKey{Namespace: w.Namespace, Name: w.Name}, w.Template.Labels)
	return b.addWorkload(o, w)
}

// resolveRollouts gives each workloadRef Rollout its Deployment's pod
// template; a Rollout whose Deployment was not read is skipped.
func (b *builder) resolveRollouts() {
	for _, r := range b.rollouts {
		d, ok := b.inv.Workload(r.w.Namespace, r.deployment)
		if !ok || d.Kind != "Deployment" {
			b.inv.Skipped = append(b.inv.Skipped, SkippedObject{Source: r.o.Source.String(), Object: r.o.Ref(), Field: "spec.workloadRef",
				Reason: fmt.Sprintf("names Deployment %s/%s, which is not among the objects read: its pod template is unknown", r.w.Namespace, r.deployment)})
			continue
		}
		r.w.Template = *d.Template.DeepCopy()
		b.inv.Index.UpsertWorkload(signals.WorkloadKey{Namespace: r.w.Namespace, Name: r.w.Name}, r.w.Template.Labels)
		if d.Name == r.w.Name {
			// Argo's migration guide names the Rollout after the Deployment it
			// takes over: one workload, whose pods the Rollout now runs.
			*d = *r.w
			b.inv.Notes = append(b.inv.Notes, fmt.Sprintf("Rollout %s: pods from the template of the Deployment of the same name (spec.workloadRef); decided as the Rollout",
				r.w.Key()))
			continue
		}
		b.inv.Notes = append(b.inv.Notes, fmt.Sprintf("Rollout %s: pods from the template of Deployment %s/%s (spec.workloadRef)",
			r.w.Key(), r.w.Namespace, r.deployment))
		if err := b.addWorkload(r.o, r.w); err != nil {
			b.inv.Skipped = append(b.inv.Skipped, skippedOf(r.o, err)...)
		}
	}
}

// cannotRestart says why a migration could not move a workload's running
// pods to a new mode, as the migrator's precheck says it: a
// ReplicationController that runs pods does not replace them when its
// template changes. "" when the migrator can (Jobs and CronJobs are not
// restarted: their next run is admitted in the new mode).
func cannotRestart(w *WorkloadInfo) string {
	if w.Kind == "ReplicationController" && w.Replicas > 0 {
		return "a ReplicationController does not replace its pods when its template changes: they would keep the old mode; move it to a Deployment, or delete its pods yourself after the flip"
	}
	return ""
}

// restartNote says how a migration moves a workload of this kind to its new
// mode, where that differs from a rolling restart of its pod template.
func restartNote(w *WorkloadInfo) string {
	if why := cannotRestart(w); why != "" {
		return why
	}
	switch w.Kind {
	case "Job":
		return "a migration does not restart a Job or wait for it: pods it creates after the flip are admitted in the new mode; running pods keep theirs"
	case "CronJob":
		return "a migration does not restart a CronJob or wait for it: its next run is admitted in the new mode"
	case "Rollout":
		return "a migration restarts it as Argo Rollouts does (spec.restartAt): pods are recreated one at a time, without a canary or blue-green step"
	}
	return ""
}
