package migrator

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RolloutGVK is Argo Rollouts' Rollout, read and patched unstructured
// (meshshift does not import Argo).
var RolloutGVK = schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Rollout"}

// listOtherWorkloads lists the ReplicationControllers, Jobs (not those a
// CronJob owns: they are its runs), CronJobs and Argo Rollouts of a
// namespace; deps are its Deployments (a Rollout's workloadRef names one).
func (r *Reconciler) listOtherWorkloads(ctx context.Context, ns string, deps []appsv1.Deployment) ([]workload, error) {
	var out []workload
	var rcs corev1.ReplicationControllerList
	if err := r.Client.List(ctx, &rcs, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list replicationcontrollers in %s: %w", ns, err)
	}
	for i := range rcs.Items {
		rc := &rcs.Items[i]
		if rc.Spec.Template != nil {
			out = append(out, workload{"ReplicationController", rc, rc.Spec.Template})
		}
	}
	var jobs batchv1.JobList
	if err := r.Client.List(ctx, &jobs, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list jobs in %s: %w", ns, err)
	}
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if c := metav1.GetControllerOf(j); c != nil && c.Kind == "CronJob" {
			continue
		}
		out = append(out, workload{"Job", j, &j.Spec.Template})
	}
	var cjs batchv1.CronJobList
	if err := r.Client.List(ctx, &cjs, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list cronjobs in %s: %w", ns, err)
	}
	for i := range cjs.Items {
		c := &cjs.Items[i]
		out = append(out, workload{"CronJob", c, &c.Spec.JobTemplate.Spec.Template})
	}
	rollouts, err := r.listRollouts(ctx, ns, deps)
	if err != nil {
		return nil, err
	}
	return append(out, rollouts...), nil
}

// listRollouts lists a namespace's Argo Rollouts when the cluster serves
// them. A Rollout's pod template is its spec.template, or the template of the
// Deployment its spec.workloadRef names; one whose template cannot be read is
// left out (the API server and Argo validate Rollouts, so it has no pods of
// meshshift's making either).
func (r *Reconciler) listRollouts(ctx context.Context, ns string, deps []appsv1.Deployment) ([]workload, error) {
	if served, err := r.rolloutsServed(); err != nil || !served {
		return nil, err
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(RolloutGVK.GroupVersion().WithKind("RolloutList"))
	if err := r.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
		if apimeta.IsNoMatchError(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list rollouts in %s: %w", ns, err)
	}
	var out []workload
	for i := range list.Items {
		u := &list.Items[i]
		if t := rolloutTemplate(u, deps); t != nil {
			out = append(out, workload{"Rollout", u, t})
		}
	}
	return out, nil
}

// rolloutsRecheck is how long the migrator trusts that the cluster does not
// serve Argo Rollouts before it asks discovery again: the REST mapper asks
// the API server on every lookup of a group it does not know, and a wave
// lists each namespace's workloads on every poll.
const rolloutsRecheck = 30 * time.Second

// rolloutsServed says whether the cluster serves Argo Rollouts.
func (r *Reconciler) rolloutsServed() (bool, error) {
	r.mu.Lock()
	absent := r.Clock.Now().Before(r.rolloutsAbsentUntil)
	r.mu.Unlock()
	if absent {
		return false, nil
	}
	if _, err := r.Client.RESTMapper().RESTMapping(RolloutGVK.GroupKind(), RolloutGVK.Version); err != nil {
		if apimeta.IsNoMatchError(err) {
			r.mu.Lock()
			r.rolloutsAbsentUntil = r.Clock.Now().Add(rolloutsRecheck)
			r.mu.Unlock()
			return false, nil
		}
		return false, fmt.Errorf("find argo rollouts: %w", err)
	}
	return true, nil
}

// rolloutTemplate is a Rollout's pod template, nil when it cannot be read.
func rolloutTemplate(u *unstructured.Unstructured, deps []appsv1.Deployment) *corev1.PodTemplateSpec {
	if m, ok, _ := unstructured.NestedMap(u.Object, "spec", "template"); ok {
		b, err := json.Marshal(m)
		if err != nil {
			return nil
		}
		t := &corev1.PodTemplateSpec{}
		if json.Unmarshal(b, t) != nil {
			return nil
		}
		return t
	}
	kind, _, _ := unstructured.NestedString(u.Object, "spec", "workloadRef", "kind")
	name, _, _ := unstructured.NestedString(u.Object, "spec", "workloadRef", "name")
	if kind != "Deployment" {
		return nil
	}
	for i := range deps {
		if deps[i].Name == name {
			return deps[i].Spec.Template.DeepCopy()
		}
	}
	return nil
}

// restartAt is the Rollout spec.restartAt a restart token asks for: the
// token's time rounded up to the second (Argo compares it with pods'
// creationTimestamps, which have seconds), so every pod admitted before the
// flip is older.
func restartAt(token string) (string, error) {
	t, err := time.Parse(time.RFC3339Nano, token)
	if err != nil {
		return "", fmt.Errorf("restart token %q: %w", token, err)
	}
	if t2 := t.Truncate(time.Second); !t2.Equal(t) {
		t = t2.Add(time.Second)
	}
	return t.UTC().Format(time.RFC3339), nil
}

// restartRollout sets a Rollout's spec.restartAt for token: the restart Argo
// Rollouts documents, which recreates the pods one at a time without a new
// canary or blue-green step.
func (r *Reconciler) restartRollout(ctx context.Context, w *workload, token string) error {
	at, err := restartAt(token)
	if err != nil {
		return err
	}
	u := w.obj.(*unstructured.Unstructured)
	if cur, _, _ := unstructured.NestedString(u.Object, "spec", "restartAt"); cur == at {
		return nil
	}
	patch := client.MergeFrom(u.DeepCopy())
	if err := unstructured.SetNestedField(u.Object, at, "spec", "restartAt"); err != nil {
		return fmt.Errorf("restart %s/%s: %w", u.GetNamespace(), w, err)
	}
	if err := r.Client.Patch(ctx, u, patch); err != nil {
		return fmt.Errorf("restart %s/%s: %w", u.GetNamespace(), w, err)
	}
	return nil
}

// rolloutRestarted says whether Argo has restarted a Rollout's pods for
// token: it sets status.restartedAt to spec.restartAt once every pod is newer.
// A Degraded Rollout cannot progress.
func rolloutRestarted(w *workload, token string) (bool, string, bool) {
	u := w.obj.(*unstructured.Unstructured)
	at, err := restartAt(token)
	if err != nil {
		return false, err.Error(), true
	}
	spec, _, _ := unstructured.NestedString(u.Object, "spec", "restartAt")
	if spec != at {
		return false, "not restarted yet", false
	}
	phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
	if phase == "Degraded" {
		msg, _, _ := unstructured.NestedString(u.Object, "status", "message")
		return false, "Degraded: " + msg, true
	}
	done, _, _ := unstructured.NestedString(u.Object, "status", "restartedAt")
	if done != at {
		return false, "Argo Rollouts has not restarted every pod yet (status.restartedAt " + orNone(done) + ", spec.restartAt " + at + ")", false
	}
	if phase != "" && phase != "Healthy" {
		return false, "phase " + phase, false
	}
	return true, "", false
}

func orNone(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}
