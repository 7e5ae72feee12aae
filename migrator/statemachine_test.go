package migrator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// promFor answers the gate's queries: errors() is the error rate, the sample
// is always 1000, latency 0.02; nothing at all while down() is true.
func promFor(errors func() float64, down func() bool) *fakeProm {
	return &fakeProm{answers: map[string]func() (model.Value, error){}, fallback: func(q string) (model.Value, error) {
		if down() {
			return model.Vector{}, nil
		}
		v := 0.02
		switch {
		case strings.Contains(q, "increase("):
			v = 1000
		case strings.Contains(q, `status_class="5xx"`):
			v = errors()
		}
		return model.Vector{&model.Sample{Value: model.SampleValue(v)}}, nil
	}}
}

// drive reconciles a migration until done says so, stepping the fake clock
// by one second between reconciles, and marking every Deployment rolled out
// (the fake client has no controllers).
func drive(t *testing.T, r *Reconciler, name string, max int, done func(*meshv1alpha1.MeshMigration) bool) *meshv1alpha1.MeshMigration {
	t.Helper()
	return driveWith(t, r, name, max, func(*meshv1alpha1.MeshMigration) bool { return true }, done)
}

// driveWith is drive where rollouts complete only while ready says so.
func driveWith(t *testing.T, r *Reconciler, name string, max int, ready, done func(*meshv1alpha1.MeshMigration) bool) *meshv1alpha1.MeshMigration {
	t.Helper()
	ctx := context.Background()
	mm := &meshv1alpha1.MeshMigration{}
	for i := 0; i < max; i++ {
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: name}}); err != nil {
			t.Fatalf("reconcile %d: %v", i, err)
		}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, mm); err != nil {
			t.Fatal(err)
		}
		var deps appsv1.DeploymentList
		_ = r.Client.List(ctx, &deps)
		for j := range deps.Items {
			d := &deps.Items[j]
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1,
				Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}}
			if !ready(mm) {
				// The new pod never becomes available.
				d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 2, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1}
			}
			if err := r.Client.Status().Update(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, mm); err != nil {
			t.Fatal(err)
		}
		if done(mm) {
			return mm
		}
		r.Clock.(*clocktesting.FakeClock).Step(time.Second)
	}
	t.Fatalf("not done after %d reconciles: %+v", max, mm.Status)
	return nil
}

func has(typ, reason string) func(*meshv1alpha1.MeshMigration) bool {
	return func(mm *meshv1alpha1.MeshMigration) bool {
		c := meta.FindStatusCondition(mm.Status.Conditions, typ)
		return c != nil && c.Status == metav1.ConditionTrue && (reason == "" || c.Reason == reason)
	}
}

// TestReconcileStateMachine drives whole migrations with a fake client, a
// fake Prometheus and a fake clock.
func TestReconcileStateMachine(t *testing.T) {
	setup := func(t *testing.T, errs func() float64, down func() bool, change func(*meshv1alpha1.MeshMigrationSpec)) *Reconciler {
		mm := migration("m", meshv1alpha1.ModeAmbient, "a", "b")
		mm.Spec.BatchSize = ptr.To(intstrOne)
		mm.Spec.BakeTime = &metav1.Duration{Duration: 5 * time.Second}
		mm.Spec.Gate = &meshv1alpha1.GateSpec{Interval: &metav1.Duration{Duration: time.Second}, FailuresToBreach: 2, InconclusiveLimit: 3,
			SLIs: []meshv1alpha1.SLI{{Name: "errorRate", Max: "0.1", MinSample: 100}, {Name: "latencyP99", MaxIncrease: "1", MinSample: 100}}}
		if change != nil {
			change(&mm.Spec)
		}
		r, _ := newTestReconciler(t, signals.Capabilities{Ztunnel: true}, nil,
			sidecarNamespace("a"), sidecarNamespace("b"), deployment("a", "web"), deployment("b", "web"), mm)
		fp := promFor(errs, down)
		r.NewQuerier = func(string) (Querier, error) { return fp, nil }
		return r
	}
	nsLabel := func(t *testing.T, r *Reconciler, ns, k string) string {
		n := &corev1.Namespace{}
		_ = r.Client.Get(context.Background(), client.ObjectKey{Name: ns}, n)
		return n.Labels[k]
	}
	never := func() bool { return false }

	t.Run("promotes every wave", func(t *testing.T) {
		r := setup(t, func() float64 { return 0 }, never, nil)
		mm := drive(t, r, "m", 60, has(ConditionSucceeded, ReasonAllWavesPromoted))
		for _, w := range mm.Status.Waves {
			if w.Phase != meshv1alpha1.WavePromoted || w.BakeStartedAt == nil || w.FinishedAt.Sub(w.BakeStartedAt.Time) < 5*time.Second {
				t.Errorf("wave %+v, want promoted after at least the bake time", w)
			}
		}
		if nsLabel(t, r, "b", "istio.io/dataplane-mode") != "ambient" {
			t.Error("namespace b not flipped")
		}
	})

	t.Run("breach rolls back the second wave", func(t *testing.T) {
		var r *Reconciler
		errs := func() float64 {
			mm := &meshv1alpha1.MeshMigration{}
			_ = r.Client.Get(context.Background(), client.ObjectKey{Name: "m"}, mm)
			if len(mm.Status.Waves) > 1 && mm.Status.Waves[1].Phase == meshv1alpha1.WaveBaking {
				return 0.5
			}
			return 0
		}
		r = setup(t, errs, never, nil)
		mm := drive(t, r, "m", 60, has(ConditionRolledBack, ReasonGateBreached))
		if mm.Status.Waves[0].Phase != meshv1alpha1.WavePromoted || mm.Status.Waves[1].Phase != meshv1alpha1.WaveRolledBack {
			t.Errorf("waves %+v", mm.Status.Waves)
		}
		if c := meta.FindStatusCondition(mm.Status.Conditions, ConditionRolledBack); !strings.Contains(c.Message, "SLI errorRate = 0.5, limit 0.1") {
			t.Errorf("condition message %q", c.Message)
		}
		if nsLabel(t, r, "a", "istio.io/dataplane-mode") != "ambient" || nsLabel(t, r, "b", "istio-injection") != "enabled" || nsLabel(t, r, "b", "istio.io/dataplane-mode") != "" {
			t.Error("wave one must stay flipped and wave two be restored")
		}
	})

	t.Run("breach without automatic rollback pauses", func(t *testing.T) {
		r := setup(t, func() float64 { return 0.5 }, never, func(s *meshv1alpha1.MeshMigrationSpec) {
			s.Rollback = &meshv1alpha1.RollbackPolicy{Automatic: ptr.To(false)}
		})
		mm := drive(t, r, "m", 30, has(ConditionPaused, ReasonGateBreached))
		if !mm.Spec.Paused || mm.Status.Waves[0].Phase != meshv1alpha1.WaveBaking {
			t.Errorf("spec.paused %v, wave %+v, want paused while baking", mm.Spec.Paused, mm.Status.Waves[0])
		}
	})

	t.Run("inconclusive pauses and never promotes", func(t *testing.T) {
		var r *Reconciler
		down := func() bool {
			mm := &meshv1alpha1.MeshMigration{}
			_ = r.Client.Get(context.Background(), client.ObjectKey{Name: "m"}, mm)
			return len(mm.Status.Waves) > 0 && mm.Status.Waves[0].Phase == meshv1alpha1.WaveBaking
		}
		r = setup(t, func() float64 { return 0 }, down, nil)
		drive(t, r, "m", 30, has(ConditionPaused, ReasonGateInconclusive))
		n := 0
		mm := drive(t, r, "m", 30, func(*meshv1alpha1.MeshMigration) bool { n++; return n == 20 })
		if !mm.Spec.Paused || mm.Status.Waves[0].Phase != meshv1alpha1.WaveBaking || has(ConditionSucceeded, "")(mm) {
			t.Errorf("20 s after the pause: spec.paused %v, wave %+v", mm.Spec.Paused, mm.Status.Waves[0])
		}
	})

	t.Run("not ready in time rolls back", func(t *testing.T) {
		r := setup(t, func() float64 { return 0 }, never, func(s *meshv1alpha1.MeshMigrationSpec) {
			s.ReadyTimeout = &metav1.Duration{Duration: 4 * time.Second}
		})
		// Rollouts hang while the first wave restarts into ambient.
		stuck := func(mm *meshv1alpha1.MeshMigration) bool {
			return len(mm.Status.Waves) == 0 || mm.Status.Waves[0].Phase != meshv1alpha1.WaveRestarting
		}
		mm := driveWith(t, r, "m", 30, stuck, has(ConditionRolledBack, ReasonNotReady))
		w := mm.Status.Waves[0]
		if w.Phase != meshv1alpha1.WaveRolledBack || !strings.Contains(w.Message, "not Ready after the flip") {
			t.Errorf("wave %+v, want rolled back for NotReady", w)
		}
		if nsLabel(t, r, "a", "istio-injection") != "enabled" {
			t.Error("namespace a not restored")
		}
	})

	t.Run("requested rollback undoes every wave", func(t *testing.T) {
		r := setup(t, func() float64 { return 0 }, never, nil)
		drive(t, r, "m", 60, has(ConditionSucceeded, ""))
		mm := &meshv1alpha1.MeshMigration{}
		_ = r.Client.Get(context.Background(), client.ObjectKey{Name: "m"}, mm)
		mm.Spec.RollbackRequested = true
		if err := r.Client.Update(context.Background(), mm); err != nil {
			t.Fatal(err)
		}
		mm = drive(t, r, "m", 30, has(ConditionRolledBack, ReasonRollbackRequested))
		for _, w := range mm.Status.Waves {
			if w.Phase != meshv1alpha1.WaveRolledBack {
				t.Errorf("wave %s %s, want RolledBack", w.Name, w.Phase)
			}
		}
		for _, ns := range []string{"a", "b"} {
			if nsLabel(t, r, ns, "istio-injection") != "enabled" || nsLabel(t, r, ns, "istio.io/dataplane-mode") != "" {
				t.Errorf("namespace %s not restored", ns)
			}
		}
	})
}

var intstrOne = intstr.FromInt32(1)
