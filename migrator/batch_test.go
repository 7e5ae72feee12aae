package migrator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/meshshift/meshshift/signals"
)

func podTemplate(app string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: app + ":1"}}}}
}

func rollout(name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(RolloutGVK)
	u.SetNamespace("batch")
	u.SetName(name)
	return u
}

// batchNamespace is a namespace with one of every kind the migrator counts.
func batchNamespace(t *testing.T) (*Reconciler, client.Client) {
	t.Helper()
	s := testScheme()
	mapper := meta.NewDefaultRESTMapper(nil)
	for gvk := range s.AllKnownTypes() {
		mapper.Add(gvk, meta.RESTScopeNamespace)
	}
	mapper.Add(RolloutGVK, meta.RESTScopeNamespace)
	tmpl := podTemplate("web")
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "batch"},
		Spec:   appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Template: tmpl},
		Status: appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1}}
	cron := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "report", Namespace: "batch"},
		Spec: batchv1.CronJobSpec{Schedule: "0 * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: podTemplate("report")}}}}
	run := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "report-29000000", Namespace: "batch",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "report", UID: "c", Controller: ptr.To(true)}}},
		Spec: batchv1.JobSpec{Template: podTemplate("report")}}
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "migrate", Namespace: "batch"}, Spec: batchv1.JobSpec{Template: podTemplate("migrate")}}
	idle := &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "idle", Namespace: "batch"},
		Spec: corev1.ReplicationControllerSpec{Replicas: ptr.To[int32](0), Template: ptr.To(podTemplate("idle"))}}
	old := &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "old", Namespace: "batch"},
		Spec: corev1.ReplicationControllerSpec{Replicas: ptr.To[int32](2), Template: ptr.To(podTemplate("old"))}}
	canary := rollout("canary", map[string]any{"replicas": int64(2), "template": map[string]any{
		"metadata": map[string]any{"labels": map[string]any{"app": "canary"}},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": "c:1"}}}}})
	ref := rollout("takeover", map[string]any{"workloadRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}})
	broken := rollout("dangling", map[string]any{"workloadRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "gone"}})
	c := fake.NewClientBuilder().WithScheme(s).WithRESTMapper(mapper).
		WithObjects(dep, cron, run, job, idle, old, canary, ref, broken).Build()
	r := &Reconciler{Client: c, APIReader: c, Clock: clocktesting.NewFakeClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))}
	return r, c
}

// TestWaveCountsJobsCronJobsAndRollouts: a wave lists every kind whose pods
// are admitted; it restarts Deployments and Rollouts (spec.restartAt, as Argo
// Rollouts documents), counts Jobs and CronJobs without restarting or waiting
// for them, and blocks on a ReplicationController that runs pods.
func TestWaveCountsJobsCronJobsAndRollouts(t *testing.T) {
	r, c := batchNamespace(t)
	ctx := context.Background()
	ws, err := r.listWorkloads(ctx, "batch")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range ws {
		got = append(got, ws[i].String()+" app="+ws[i].template.Labels["app"])
	}
	want := []string{"CronJob/report app=report", "Deployment/web app=web", "Job/migrate app=migrate",
		"ReplicationController/idle app=idle", "ReplicationController/old app=old", "Rollout/canary app=canary", "Rollout/takeover app=web"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("workloads (-want +got):\n%s", diff)
	}
	var blocked []string
	for i := range ws {
		if why := cannotRestart(&ws[i]); why != "" {
			blocked = append(blocked, ws[i].String())
		}
	}
	if diff := cmp.Diff([]string{"ReplicationController/old"}, blocked); diff != "" {
		t.Errorf("workloads that cannot restart (-want +got):\n%s", diff)
	}

	token := "2026-11-26T12:00:00.25Z"
	restarted, waiting, err := r.restartNamespace(ctx, "batch", token)
	if err != nil {
		t.Fatal(err)
	}
	if restarted != 3 || waiting != 2 {
		t.Errorf("restarted %d, waiting for their next run %d; want 3 (web, canary, takeover) and 2 (report, migrate)", restarted, waiting)
	}
	for _, name := range []string{"canary", "takeover"} {
		u := rollout(name, nil)
		if err := c.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
			t.Fatal(err)
		}
		if at, _, _ := unstructured.NestedString(u.Object, "spec", "restartAt"); at != "2026-11-26T12:00:01Z" {
			t.Errorf("Rollout %s spec.restartAt %q, want the token rounded up to the second", name, at)
		}
		if _, ok, _ := unstructured.NestedMap(u.Object, "spec", "template", "metadata", "annotations"); ok {
			t.Errorf("Rollout %s: template changed (a new canary step), want only spec.restartAt", name)
		}
	}
	var cj batchv1.CronJob
	if err := c.Get(ctx, client.ObjectKey{Namespace: "batch", Name: "report"}, &cj); err != nil {
		t.Fatal(err)
	}
	var j batchv1.Job
	if err := c.Get(ctx, client.ObjectKey{Namespace: "batch", Name: "migrate"}, &j); err != nil {
		t.Fatal(err)
	}
	if cj.Spec.JobTemplate.Spec.Template.Annotations[AnnotationRestartedAt] != "" || j.Spec.Template.Annotations[AnnotationRestartedAt] != "" {
		t.Error("a CronJob or Job was restarted")
	}

	ready, why, failed, err := r.namespaceReady(ctx, "batch", token)
	if err != nil || ready || failed || !strings.Contains(why, "Rollout/canary: Argo Rollouts has not restarted every pod yet") {
		t.Errorf("before Argo restarts: ready %t failed %t why %q err %v; want waiting on Rollout/canary", ready, failed, why, err)
	}
	for _, name := range []string{"canary", "takeover"} {
		u := rollout(name, nil)
		if err := c.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
			t.Fatal(err)
		}
		_ = unstructured.SetNestedField(u.Object, "2026-11-26T12:00:01Z", "status", "restartedAt")
		_ = unstructured.SetNestedField(u.Object, "Healthy", "status", "phase")
		if err := c.Update(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if ready, why, _, err := r.namespaceReady(ctx, "batch", token); err != nil || !ready {
		t.Errorf("after Argo restarted the Rollouts: ready %t (%s) %v; want ready without waiting for the Jobs and CronJobs", ready, why, err)
	}
}

func TestRolloutsNotServed(t *testing.T) {
	r, _ := newTestReconciler(t, signals.Capabilities{Ztunnel: true}, nil)
	ws, err := r.listRollouts(context.Background(), "batch", nil)
	if err != nil || len(ws) != 0 {
		t.Errorf("cluster without Argo Rollouts: %v, %v; want none and no error", ws, err)
	}
	if _, err := restartAt("yesterday"); err == nil {
		t.Error("restartAt accepted a token that is no time")
	}
}
