package webhook_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/webhook"
	"github.com/meshshift/meshshift/webhook/webhooktest"
)

func createNamespace(t *testing.T, c client.Client, name string, labels, annotations map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

func newPod(name, ns string, labels, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			ServiceAccountName: "default",
			Containers:         []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
		},
	}
}

// wantLabels are the mesh labels each mode's pods must carry (DESIGN.md).
var wantLabels = map[v1alpha1.Mode]map[string]string{
	v1alpha1.ModeSidecar:         {"meshshift.io/dataplane": "sidecar", "sidecar.istio.io/inject": "true"},
	v1alpha1.ModeAmbient:         {"meshshift.io/dataplane": "ambient", "sidecar.istio.io/inject": "false", "istio.io/dataplane-mode": "ambient"},
	v1alpha1.ModeAmbientWaypoint: {"meshshift.io/dataplane": "ambient-waypoint", "sidecar.istio.io/inject": "false", "istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint"},
	v1alpha1.ModeCilium:          {"meshshift.io/dataplane": "cilium", "sidecar.istio.io/inject": "false", "istio.io/dataplane-mode": "none"},
	v1alpha1.ModeNone:            {"meshshift.io/dataplane": "none", "sidecar.istio.io/inject": "false", "istio.io/dataplane-mode": "none"},
}

func checkLabels(t *testing.T, pod *corev1.Pod, m v1alpha1.Mode) {
	t.Helper()
	for k, v := range wantLabels[m] {
		if pod.Labels[k] != v {
			t.Errorf("pod %s/%s: label %s = %q, want %q (labels %v)", pod.Namespace, pod.Name, k, pod.Labels[k], v, pod.Labels)
		}
	}
	if !strings.HasPrefix(pod.Annotations[v1alpha1.AnnotationDecision], string(m)+"/") {
		t.Errorf("pod %s/%s: decision %q, want mode %s", pod.Namespace, pod.Name, pod.Annotations[v1alpha1.AnnotationDecision], m)
	}
}

// TestIntegrationDecisionsAndRejections runs the shipped configurations in a
// real API server: namespaces annotated by app teams get their pods labelled;
// a disallowed mode, a contradicting label and a bad namespace are rejected
// with the field and the reason in the API error.
func TestIntegrationDecisionsAndRejections(t *testing.T) {
	c := harness.Start(t, harness.Options{})
	webhooktest.Start(t, c, webhooktest.Options{})
	ctx := context.Background()

	for _, m := range v1alpha1.Modes {
		ns := "team-" + string(m)
		createNamespace(t, c.Client, ns, nil, map[string]string{v1alpha1.AnnotationMode: string(m)})
		pod := newPod("app", ns, map[string]string{"app": "web"}, nil)
		if err := c.Client.Create(ctx, pod); err != nil {
			t.Fatalf("create pod in %s: %v", ns, err)
		}
		var got corev1.Pod
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(pod), &got); err != nil {
			t.Fatal(err)
		}
		checkLabels(t, &got, m)
		if got.Labels["app"] != "web" {
			t.Errorf("pod's own label app was lost: %v", got.Labels)
		}
	}

	// A policy that lets app teams in prod namespaces ask only for sidecar.
	dp := &v1alpha1.DataplanePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "prod"},
		Spec: v1alpha1.DataplanePolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}},
			AllowedModes:      []v1alpha1.AllowedModes{{Modes: []v1alpha1.Mode{v1alpha1.ModeSidecar}}},
		},
	}
	if err := c.Client.Create(ctx, dp); err != nil {
		t.Fatal(err)
	}
	createNamespace(t, c.Client, "prod-a", map[string]string{"tier": "prod"}, nil)
	waitFor(t, "the policy to reach the webhook's cache", func() bool {
		err := c.Client.Create(ctx, newPod("probe", "prod-a", nil, map[string]string{v1alpha1.AnnotationMode: "ambient"}), client.DryRunAll)
		return apierrors.IsInvalid(err)
	})
	err := c.Client.Create(ctx, newPod("asks-ambient", "prod-a", nil, map[string]string{v1alpha1.AnnotationMode: "ambient"}))
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.annotations[meshshift.io/mode]") ||
		!strings.Contains(err.Error(), "DataplanePolicy prod allows only sidecar in namespace prod-a") {
		t.Errorf("disallowed mode: got %v, want an Invalid error naming the annotation and the allowed modes", err)
	}
	if err := c.Client.Create(ctx, newPod("asks-sidecar", "prod-a", nil, map[string]string{v1alpha1.AnnotationMode: "sidecar"})); err != nil {
		t.Errorf("allowed mode rejected: %v", err)
	}

	err = c.Client.Create(ctx, newPod("both", "team-ambient", map[string]string{"sidecar.istio.io/inject": "true", "istio.io/dataplane-mode": "ambient"}, nil))
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "contradicts sidecar.istio.io/inject=true") {
		t.Errorf("contradicting labels: got %v, want an Invalid error", err)
	}

	err = c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bad-mode", Annotations: map[string]string{v1alpha1.AnnotationMode: "sidecarless"}}})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `supported values: "sidecar", "ambient", "ambient-waypoint", "cilium", "none"`) {
		t.Errorf("unknown namespace mode: got %v, want an Invalid error listing the modes", err)
	}
	err = c.Client.Create(ctx, &v1alpha1.DataplanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "bad-cel"},
		Spec: v1alpha1.DataplanePolicySpec{Rules: []v1alpha1.Rule{{Name: "r", When: "workload.labels[", Mode: "none"}}}})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.rules[0].when") {
		t.Errorf("bad CEL: got %v, want an Invalid error naming spec.rules[0].when", err)
	}

	// kube-system is skipped by the namespaceSelector: no decision there.
	ks := newPod("sys", "kube-system", nil, nil)
	if err := c.Client.Create(ctx, ks); err != nil {
		t.Fatal(err)
	}
	if _, ok := ks.Annotations[v1alpha1.AnnotationDecision]; ok {
		t.Errorf("kube-system pod was decided: %v", ks.Annotations)
	}
}

// TestIntegrationMissedDecisions stops the webhook: pods are still created
// (failurePolicy Ignore), and once meshshift is back the detector reports them
// with an Event on each pod, the gauge, and the MeshMigration's status count.
func TestIntegrationMissedDecisions(t *testing.T) {
	c := harness.Start(t, harness.Options{})
	wh := webhooktest.Start(t, c, webhooktest.Options{})
	ctx := context.Background()
	createNamespace(t, c.Client, "shop", nil, map[string]string{v1alpha1.AnnotationMode: "ambient"})
	createNamespace(t, c.Client, "blog", nil, nil)
	mm := &v1alpha1.MeshMigration{ObjectMeta: metav1.ObjectMeta{Name: "shop-to-ambient"},
		Spec: v1alpha1.MeshMigrationSpec{TargetMode: v1alpha1.ModeAmbient, Namespaces: &v1alpha1.NamespaceTarget{Names: []string{"shop"}}}}
	if err := c.Client.Create(ctx, mm); err != nil {
		t.Fatal(err)
	}
	decided := newPod("decided", "shop", nil, nil)
	if err := c.Client.Create(ctx, decided); err != nil {
		t.Fatal(err)
	}
	checkLabels(t, decided, v1alpha1.ModeAmbient)

	wh.Stop()
	start := time.Now()
	missed := []*corev1.Pod{newPod("missed-1", "shop", nil, nil), newPod("missed-2", "shop", nil, nil), newPod("missed-3", "blog", nil, nil)}
	for _, p := range missed {
		if err := c.Client.Create(ctx, p); err != nil {
			t.Fatalf("pod creation failed while the webhook was down: %v", err)
		}
		if _, ok := p.Annotations[v1alpha1.AnnotationDecision]; ok {
			t.Fatalf("pod %s decided while the webhook was down", p.Name)
		}
	}
	t.Logf("3 pods created with the webhook down in %v", time.Since(start))

	wh.Restart()
	waitFor(t, "status.missedDecisions = 2", func() bool {
		var got v1alpha1.MeshMigration
		return c.Client.Get(ctx, client.ObjectKeyFromObject(mm), &got) == nil && got.Status.MissedDecisions == 2
	})
	waitFor(t, "meshshift_webhook_missed_decisions = 3", func() bool { return gauge(t, "meshshift_webhook_missed_decisions") == 3 })
	for _, p := range missed {
		waitFor(t, "a MissedDecision event on "+p.Name, func() bool {
			var evs corev1.EventList
			if err := c.Client.List(ctx, &evs, client.InNamespace(p.Namespace)); err != nil {
				return false
			}
			for _, e := range evs.Items {
				if e.Reason == webhook.EventReasonMissedDecision && e.InvolvedObject.Name == p.Name && e.Type == corev1.EventTypeWarning {
					return true
				}
			}
			return false
		})
	}
	// The detector does not touch running pods.
	var p corev1.Pod
	if err := c.Client.Get(ctx, client.ObjectKeyFromObject(missed[0]), &p); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Labels[v1alpha1.LabelDataplane]; ok {
		t.Errorf("detector changed a running pod: %v", p.Labels)
	}
	// Deleting the missed pods brings the count back to zero.
	for _, p := range missed {
		if err := c.Client.Delete(ctx, p, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "status.missedDecisions = 0", func() bool {
		var got v1alpha1.MeshMigration
		return c.Client.Get(ctx, client.ObjectKeyFromObject(mm), &got) == nil && got.Status.MissedDecisions == 0
	})
}

// gauge reads a metric of the controller-runtime registry (the webhook runs
// in this process).
func gauge(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	return -1
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
