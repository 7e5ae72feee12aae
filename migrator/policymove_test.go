package migrator

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// fakeFeatures gives each selector's features to the pods it selects.
type fakeFeatures map[string][]struct {
	sel labels.Set
	ref signals.FeatureRef
}

func (f fakeFeatures) FeaturesFor(ns string, podLabels map[string]string) signals.Features {
	var out signals.Features
	for _, e := range f[ns] {
		if labels.SelectorFromSet(e.sel).Matches(labels.Set(podLabels)) {
			out = append(out, e.ref)
		}
	}
	return out
}

// l7Allow is a selector-based ALLOW AuthorizationPolicy with only L7 rules.
func l7Allow(ns, name string, sel map[string]string) *unstructured.Unstructured {
	ml := map[string]any{}
	for k, v := range sel {
		ml[k] = v
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
		"metadata": map[string]any{"namespace": ns, "name": name},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": ml},
			"action":   "ALLOW",
			"rules":    []any{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"methods": []any{"GET"}, "paths": []any{"/api/*"}}}}}},
		},
	}}
	return u
}

func service(ns, name string, sel map[string]string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{{Port: 80}}}}
}

// trapFeatures: the L7 ALLOW policy shop/web-l7 selects app=web in shop.
func trapFeatures() fakeFeatures {
	return fakeFeatures{"shop": {{sel: labels.Set{"app": "web"},
		ref: signals.FeatureRef{Feature: signals.FeatureL7AuthzSelector, Kind: "AuthorizationPolicy", Namespace: "shop", Name: "web-l7"}}}}
}

// runPrecheck reconciles a migration until its first wave leaves Pending or
// the migration pauses.
func runPrecheck(t *testing.T, r *Reconciler) *meshv1alpha1.MeshMigration {
	t.Helper()
	ctx := context.Background()
	mm := &meshv1alpha1.MeshMigration{}
	for i := 0; i < 10; i++ {
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "m"}}); err != nil {
			t.Fatalf("reconcile %d: %v", i, err)
		}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: "m"}, mm); err != nil {
			t.Fatal(err)
		}
		if mm.Spec.Paused || (len(mm.Status.Waves) > 0 && mm.Status.Waves[0].Phase != meshv1alpha1.WavePending) {
			return mm
		}
	}
	t.Fatalf("precheck never ran: %+v", mm.Status)
	return nil
}

// TestCallerAwarePrecheck builds a traffic snapshot in which shop/web, whose
// selector-based L7 policy would move to the waypoint, is called by a
// sidecar workload in another namespace, an ambient one, and one of the wave:
// only the sidecar caller outside the wave blocks the wave, by name.
func TestCallerAwarePrecheck(t *testing.T) {
	ambientNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Labels: map[string]string{"istio.io/dataplane-mode": "ambient"}}}
	snap := &signals.TrafficSnapshot{Time: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Workloads: map[signals.WorkloadKey]signals.WorkloadTraffic{
		{Namespace: "shop", Name: "web"}: {Callers: []signals.WorkloadKey{
			{Namespace: "front", Name: "client"}, {Namespace: "mesh", Name: "gw"}, {Namespace: "shop", Name: "batch"}, {Namespace: "gone", Name: "old"},
		}},
	}}
	setup := func(t *testing.T, mode meshv1alpha1.PolicyMigrationMode, nss ...string) *Reconciler {
		mm := migration("m", meshv1alpha1.ModeAmbientWaypoint, nss...)
		mm.Spec.PolicyMigration = mode
		r, _ := newTestReconciler(t, signals.Capabilities{Ztunnel: true}, trapFeatures(),
			sidecarNamespace("shop"), sidecarNamespace("front"), ambientNS,
			deployment("shop", "web"), deployment("shop", "batch"), deployment("front", "client"), deployment("mesh", "gw"),
			service("shop", "web", map[string]string{"app": "web"}), l7Allow("shop", "web-l7", map[string]string{"app": "web"}), mm)
		r.Traffic = func() *signals.TrafficSnapshot { return snap }
		return r
	}

	t.Run("sidecar caller outside the wave blocks", func(t *testing.T) {
		mm := runPrecheck(t, setup(t, meshv1alpha1.PolicyMigrationApply, "shop"))
		c := meta.FindStatusCondition(mm.Status.Conditions, ConditionPaused)
		if c == nil || c.Reason != ReasonPrecheckFailed {
			t.Fatalf("conditions %+v, want Paused by PrecheckFailed", mm.Status.Conditions)
		}
		if !strings.Contains(c.Message, "shop/Deployment/web") || !strings.Contains(c.Message, "front/client") {
			t.Errorf("blocker %q, want shop/Deployment/web and its sidecar caller front/client named", c.Message)
		}
		for _, notBlocking := range []string{"mesh/gw", "shop/batch", "gone/old"} {
			if strings.Contains(c.Message, notBlocking) {
				t.Errorf("blocker %q names %s (ambient, in the wave, or gone)", c.Message, notBlocking)
			}
		}
		if len(mm.Status.Waves[0].PolicyProposal) == 0 {
			t.Errorf("no policy proposal in the wave's status")
		}
	})

	t.Run("caller in the same wave passes", func(t *testing.T) {
		mm := runPrecheck(t, setup(t, meshv1alpha1.PolicyMigrationApply, "front", "shop"))
		if mm.Spec.Paused || mm.Status.Waves[0].Phase != meshv1alpha1.WavePrechecking {
			t.Fatalf("wave %+v paused %v, want the precheck passed", mm.Status.Waves[0], mm.Spec.Paused)
		}
	})

	t.Run("propose blocks with the proposal in status", func(t *testing.T) {
		mm := runPrecheck(t, setup(t, meshv1alpha1.PolicyMigrationPropose, "front", "shop"))
		c := meta.FindStatusCondition(mm.Status.Conditions, ConditionPaused)
		if c == nil || !strings.Contains(c.Message, "spec.policyMigration is Propose") {
			t.Fatalf("conditions %+v, want paused naming spec.policyMigration", mm.Status.Conditions)
		}
		p := strings.Join(mm.Status.Waves[0].PolicyProposal, "\n")
		if !strings.Contains(p, "web-l7") {
			t.Errorf("proposal %q does not name AuthorizationPolicy web-l7", p)
		}
		t.Logf("proposal:\n%s", p)
	})
}
