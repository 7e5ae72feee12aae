package migrator

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/migrator/l7policy"
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

// programWaypoint plays istiod: once the waypoint Gateway exists it gets
// Programmed=True and an available Deployment.
func programWaypoint(t *testing.T, r *Reconciler, ns string) {
	t.Helper()
	ctx := context.Background()
	gw := &gatewayv1.Gateway{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "waypoint"}, gw); err != nil {
		return
	}
	if !meta.IsStatusConditionTrue(gw.Status.Conditions, "Programmed") {
		meta.SetStatusCondition(&gw.Status.Conditions, metav1.Condition{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed", ObservedGeneration: gw.Generation})
		if err := r.Client.Update(ctx, gw); err != nil {
			t.Fatal(err)
		}
	}
	d := deployment(ns, "waypoint")
	d.Labels = map[string]string{LabelGatewayName: "waypoint"}
	if err := r.Client.Create(ctx, d); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// TestPolicyMoveOrder drives a policy-moving wave with a fake client: no
// copy exists before the waypoint is programmed (never, when it never is:
// the wave rolls back with the original untouched), the copy comes before
// the narrowing, the narrowing before the Service's use-waypoint label and
// the flip; a rollback restores the original's spec exactly and deletes the
// copy before the Gateway.
func TestPolicyMoveOrder(t *testing.T) {
	setup := func(t *testing.T) (*Reconciler, *[]write, string) {
		mm := migration("m", meshv1alpha1.ModeAmbientWaypoint, "shop")
		mm.Spec.PolicyMigration = meshv1alpha1.PolicyMigrationApply
		mm.Spec.BakeTime = &metav1.Duration{Duration: 2 * time.Second}
		mm.Spec.ReadyTimeout = &metav1.Duration{Duration: 5 * time.Second}
		mm.Spec.Gate = &meshv1alpha1.GateSpec{Interval: &metav1.Duration{Duration: time.Second}, FailuresToBreach: 2, InconclusiveLimit: 3,
			SLIs: []meshv1alpha1.SLI{{Name: "errorRate", Max: "0.1", MinSample: 100}}}
		pol := l7Allow("shop", "web-l7", map[string]string{"app": "web"})
		want := specOf(pol)
		r, writes := newTestReconciler(t, signals.Capabilities{Ztunnel: true}, trapFeatures(),
			sidecarNamespace("shop"), deployment("shop", "web"), service("shop", "web", map[string]string{"app": "web"}), pol, mm)
		fp := promFor(func() float64 { return 0 }, func() bool { return false })
		r.NewQuerier = func(string) (Querier, error) { return fp, nil }
		return r, writes, want
	}
	index := func(ws []write, match func(write) bool) int {
		for i, w := range ws {
			if match(w) {
				return i
			}
		}
		return -1
	}
	isCopy := func(w write) bool { return w.kind == "AuthorizationPolicy" && w.labels[l7policy.LabelMigration] == "m" }

	t.Run("never programmed rolls back untouched", func(t *testing.T) {
		r, writes, want := setup(t)
		drive(t, r, "m", 40, has(ConditionRolledBack, ReasonWaypointNotReady))
		if i := index(*writes, isCopy); i >= 0 {
			t.Errorf("copy created at write %d although the waypoint was never programmed", i)
		}
		if got := policySpec(t, r, "web-l7"); got != want {
			t.Errorf("original after rollback %s, want %s", got, want)
		}
		if err := r.Client.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: "waypoint"}, &gatewayv1.Gateway{}); !apierrors.IsNotFound(err) {
			t.Errorf("waypoint gateway after rollback: %v", err)
		}
	})

	t.Run("programmed: order, promotion, exact rollback", func(t *testing.T) {
		r, writes, want := setup(t)
		drive(t, r, "m", 60, func(mm *meshv1alpha1.MeshMigration) bool {
			programWaypoint(t, r, "shop")
			return has(ConditionSucceeded, "")(mm)
		})
		ws := *writes
		gw := index(ws, func(w write) bool { return w.kind == "Gateway" })
		cp := index(ws, isCopy)
		nar := index(ws, func(w write) bool { return w.kind == "AuthorizationPolicy" && w.name == "web-l7" })
		svc := index(ws, func(w write) bool { return w.kind == "Service" && w.labels["istio.io/use-waypoint"] == "waypoint" })
		flip := index(ws, func(w write) bool { return w.kind == "Namespace" && w.labels["istio.io/dataplane-mode"] == "ambient" })
		if gw < 0 || gw >= cp || cp >= nar || nar >= svc || svc >= flip {
			t.Errorf("write order gateway %d, copy %d, narrow %d, service label %d, flip %d; want increasing", gw, cp, nar, svc, flip)
		}
		if got := policySpec(t, r, "web-l7"); got == want {
			t.Errorf("original not narrowed after promotion: %s", got)
		}
		mm := &meshv1alpha1.MeshMigration{}
		_ = r.Client.Get(context.Background(), client.ObjectKey{Name: "m"}, mm)
		mm.Spec.RollbackRequested = true
		if err := r.Client.Update(context.Background(), mm); err != nil {
			t.Fatal(err)
		}
		n := len(*writes)
		drive(t, r, "m", 40, has(ConditionRolledBack, ReasonRollbackRequested))
		if got := policySpec(t, r, "web-l7"); got != want {
			t.Errorf("original after rollback %s, want exactly %s", got, want)
		}
		ps, err := r.listPolicies(context.Background(), "shop")
		if err != nil || len(ps) != 1 {
			t.Errorf("policies after rollback: %d (%v), want only the original", len(ps), err)
		}
		if err := r.Client.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: "waypoint"}, &gatewayv1.Gateway{}); !apierrors.IsNotFound(err) {
			t.Errorf("waypoint gateway after rollback: %v", err)
		}
		rb := (*writes)[n:]
		restore := index(rb, func(w write) bool { return w.kind == "AuthorizationPolicy" && w.name == "web-l7" })
		unflip := index(rb, func(w write) bool { return w.kind == "Namespace" && w.labels["istio-injection"] == "enabled" })
		if restore < 0 || unflip < 0 || unflip > restore {
			t.Errorf("rollback writes: namespace restored at %d, original restored at %d; want the namespace (and the restart) first", unflip, restore)
		}
	})
}

func specOf(u *unstructured.Unstructured) string {
	b, _ := json.Marshal(u.Object["spec"])
	return string(b)
}

func policySpec(t *testing.T, r *Reconciler, name string) string {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvkAuthorizationPolicy)
	if err := r.Client.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: name}, u); err != nil {
		t.Fatal(err)
	}
	return specOf(u)
}
