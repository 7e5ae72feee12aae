package webhook_test

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/webhook"
	"github.com/meshshift/meshshift/webhook/webhooktest"
)

// decisionOf dry-runs a pod and returns its decision annotation.
func decisionOf(t *testing.T, c client.Client, ns string, labels map[string]string) string {
	t.Helper()
	p := newPod("probe", ns, labels, nil)
	if err := c.Create(context.Background(), p, client.DryRunAll); err != nil {
		t.Fatalf("dry-run pod: %v", err)
	}
	return p.Annotations[v1alpha1.AnnotationDecision] + " | " + p.Annotations[v1alpha1.AnnotationReason]
}

// TestIntegrationInputsFromInformers runs the webhook with its inputs from
// the cluster, not from test doubles: capabilities detected from DaemonSets
// (a sidecar namespace asked to go ambient keeps its sidecar until a ztunnel
// DaemonSet is ready) and mesh
// features from the signals index fed by informers (an EnvoyFilter keeps the
// pods it selects on sidecar).
func TestIntegrationInputsFromInformers(t *testing.T) {
	c := harness.Start(t, harness.Options{CRDPaths: []string{istioCRDs(t)}})
	webhooktest.Start(t, c, webhooktest.Options{DetectCapabilities: true,
		Webhook: webhook.Options{CapabilityInterval: 200 * time.Millisecond}})
	ctx := context.Background()
	createNamespace(t, c.Client, "shop", map[string]string{"istio-injection": "enabled"}, map[string]string{v1alpha1.AnnotationMode: "ambient"})

	if got := decisionOf(t, c.Client, "shop", nil); !strings.HasPrefix(got, "sidecar/capability-fallback") ||
		!strings.Contains(got, "keeps its current mode sidecar") || !strings.Contains(got, "no ztunnel") {
		t.Fatalf("without ztunnel: decision %q, want the current sidecar kept by the capability fallback", got)
	}
	createNamespace(t, c.Client, "istio-system", nil, nil)
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "ztunnel", Namespace: "istio-system"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "ztunnel"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "ztunnel"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "ztunnel", Image: "istio/ztunnel:1"}}}},
		},
	}
	if err := c.Client.Create(ctx, ds); err != nil {
		t.Fatal(err)
	}
	ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: 1, CurrentNumberScheduled: 1, NumberReady: 1, NumberAvailable: 1}
	if err := c.Client.Status().Update(ctx, ds); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ambient once ztunnel is ready", func() bool {
		return strings.HasPrefix(decisionOf(t, c.Client, "shop", nil), "ambient/namespace-annotation")
	})

	ef := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
		"metadata": map[string]any{"name": "lua-auth", "namespace": "shop"},
		"spec": map[string]any{
			"workloadSelector": map[string]any{"labels": map[string]any{"app": "payments"}},
			"configPatches": []any{map[string]any{"applyTo": "HTTP_FILTER", "patch": map[string]any{"operation": "INSERT_BEFORE",
				"value": map[string]any{"name": "envoy.filters.http.lua"}}}},
		},
	}}
	if err := c.Client.Create(ctx, ef); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the EnvoyFilter to keep payments on sidecar", func() bool {
		got := decisionOf(t, c.Client, "shop", map[string]string{"app": "payments"})
		return strings.HasPrefix(got, "sidecar/feature-requires-sidecar") && strings.Contains(got, "EnvoyFilter shop/lua-auth")
	})
	if got := decisionOf(t, c.Client, "shop", map[string]string{"app": "web"}); !strings.HasPrefix(got, "ambient/") {
		t.Errorf("a pod the EnvoyFilter does not select: decision %q, want ambient", got)
	}
}
