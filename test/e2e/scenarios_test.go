package e2e_test

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/migrator"
	"github.com/meshshift/meshshift/test/prom"
)

// testWaypoint: a flip to ambient-waypoint creates the waypoint Gateway and
// labels the Service before the pods restart; a requested rollback undoes
// exactly that and leaves the namespace as it was.
func testWaypoint(t *testing.T, e *env) {
	ctx := context.Background()
	e.makeNamespaces(t, "waypoint-1")
	origL, origA := e.nsState(t, "waypoint-1")
	svc0 := &corev1.Service{}
	if err := e.cl.Get(ctx, client.ObjectKey{Namespace: "waypoint-1", Name: app}, svc0); err != nil {
		t.Fatal(err)
	}
	stop := e.startMigrator(t, migratorOpts{releaseLease: true})
	defer stop()
	create(t, e, &meshv1alpha1.MeshMigration{
		ObjectMeta: metav1.ObjectMeta{Name: "waypoint"},
		Spec: meshv1alpha1.MeshMigrationSpec{
			TargetMode: meshv1alpha1.ModeAmbientWaypoint,
			Namespaces: &meshv1alpha1.NamespaceTarget{Names: []string{"waypoint-1"}},
			BakeTime:   &metav1.Duration{Duration: 2 * time.Second},
			Gate:       gate(2, 10),
		},
	})
	e.waitMigration(t, "waypoint", time.Minute, "Succeeded", condTrue(migrator.ConditionSucceeded))
	e.waitPods(t, "waypoint-1", meshv1alpha1.ModeAmbientWaypoint)
	flippedTo(t, e, "waypoint-1", meshv1alpha1.ModeAmbientWaypoint)
	gw := &gatewayv1.Gateway{}
	if err := e.cl.Get(ctx, client.ObjectKey{Namespace: "waypoint-1", Name: "waypoint"}, gw); err != nil {
		t.Fatalf("waypoint gateway: %v", err)
	}
	if gw.Spec.GatewayClassName != migrator.WaypointClass || gw.Labels[migrator.LabelWaypointFor] != "all" ||
		len(gw.Spec.Listeners) != 1 || gw.Spec.Listeners[0].Port != 15008 || gw.Spec.Listeners[0].Protocol != "HBONE" {
		t.Errorf("waypoint gateway %+v %+v, want class istio-waypoint, waypoint-for all, HBONE 15008", gw.Labels, gw.Spec)
	}
	svc := &corev1.Service{}
	if err := e.cl.Get(ctx, client.ObjectKey{Namespace: "waypoint-1", Name: app}, svc); err != nil {
		t.Fatal(err)
	}
	if svc.Labels["istio.io/use-waypoint"] != "waypoint" {
		t.Errorf("service labels %v, want istio.io/use-waypoint=waypoint", svc.Labels)
	}

	patchSpec(t, e, "waypoint", func(s *meshv1alpha1.MeshMigrationSpec) { s.RollbackRequested = true })
	mm := e.waitMigration(t, "waypoint", time.Minute, "RolledBack", condTrue(migrator.ConditionRolledBack))
	if c := condition(mm, migrator.ConditionRolledBack); c.Reason != migrator.ReasonRollbackRequested {
		t.Errorf("RolledBack reason %s, want %s", c.Reason, migrator.ReasonRollbackRequested)
	}
	e.waitPods(t, "waypoint-1", meshv1alpha1.ModeSidecar)
	if err := e.cl.Get(ctx, client.ObjectKey{Namespace: "waypoint-1", Name: "waypoint"}, gw); !apierrors.IsNotFound(err) {
		t.Errorf("waypoint gateway after rollback: err %v, want not found", err)
	}
	if err := e.cl.Get(ctx, client.ObjectKey{Namespace: "waypoint-1", Name: app}, svc); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(svc.Labels, svc0.Labels) {
		t.Errorf("service labels after rollback %v, want %v", svc.Labels, svc0.Labels)
	}
	if l, a := e.nsState(t, "waypoint-1"); !maps.Equal(l, origL) || !maps.Equal(a, origA) {
		t.Errorf("namespace after rollback: labels %v annotations %v, want exactly %v %v", l, a, origL, origA)
	}
}

// testPauseApproval: manual approval holds each wave, a second migration
// claiming an owned namespace is rejected, pause holds a wave and resume
// lets it go on.
func testPauseApproval(t *testing.T, e *env) {
	e.makeNamespaces(t, "approve-1", "approve-2")
	stop := e.startMigrator(t, migratorOpts{releaseLease: true})
	defer stop()
	create(t, e, &meshv1alpha1.MeshMigration{
		ObjectMeta: metav1.ObjectMeta{Name: "approve"},
		Spec: meshv1alpha1.MeshMigrationSpec{
			TargetMode: meshv1alpha1.ModeAmbient,
			Waves: []meshv1alpha1.WaveSpec{
				{Name: "first", Namespaces: []string{"approve-1"}},
				{Name: "second", Namespaces: []string{"approve-2"}},
			},
			Approval: meshv1alpha1.ApprovalManual,
			BakeTime: &metav1.Duration{Duration: 2 * time.Second},
			Gate:     gate(2, 10),
		},
	})
	awaiting := func(mm *meshv1alpha1.MeshMigration) bool {
		return condition(mm, migrator.ConditionProgressing).Reason == migrator.ReasonAwaitingApproval
	}
	e.waitMigration(t, "approve", 30*time.Second, "awaiting approval of wave 1", awaiting)
	time.Sleep(2 * time.Second)
	mm := e.waitMigration(t, "approve", time.Second, "read", awaiting)
	if mm.Status.Waves[0].Phase != meshv1alpha1.WavePending {
		t.Fatalf("wave 1 started without approval: %s", statusString(mm))
	}
	flippedTo(t, e, "approve-1", meshv1alpha1.ModeSidecar)

	rival := &meshv1alpha1.MeshMigration{
		ObjectMeta: metav1.ObjectMeta{Name: "rival"},
		Spec: meshv1alpha1.MeshMigrationSpec{TargetMode: meshv1alpha1.ModeCilium,
			Namespaces: &meshv1alpha1.NamespaceTarget{Names: []string{"approve-2"}}},
	}
	err := e.cl.Create(context.Background(), rival)
	if err == nil || !strings.Contains(err.Error(), "approve-2") || !strings.Contains(err.Error(), "owned by MeshMigration approve") {
		t.Fatalf("second migration claiming approve-2: err %v, want rejected as owned by approve", err)
	}
	t.Logf("second migration rejected: %v", err)

	patchSpec(t, e, "approve", func(s *meshv1alpha1.MeshMigrationSpec) { s.ApprovedWaves = 1 })
	e.waitMigration(t, "approve", time.Minute, "wave 1 promoted", waveIs(0, meshv1alpha1.WavePromoted))
	e.waitMigration(t, "approve", 30*time.Second, "awaiting approval of wave 2", awaiting)
	flippedTo(t, e, "approve-1", meshv1alpha1.ModeAmbient)

	patchSpec(t, e, "approve", func(s *meshv1alpha1.MeshMigrationSpec) { s.Paused, s.ApprovedWaves = true, 2 })
	mm = e.waitMigration(t, "approve", 30*time.Second, "paused", condTrue(migrator.ConditionPaused))
	if c := condition(mm, migrator.ConditionPaused); c.Reason != migrator.ReasonPausedByUser {
		t.Errorf("Paused reason %s, want %s", c.Reason, migrator.ReasonPausedByUser)
	}
	time.Sleep(2 * time.Second)
	mm = e.waitMigration(t, "approve", time.Second, "read", func(*meshv1alpha1.MeshMigration) bool { return true })
	if mm.Status.Waves[1].Phase != meshv1alpha1.WavePending {
		t.Fatalf("wave 2 started while paused: %s", statusString(mm))
	}
	flippedTo(t, e, "approve-2", meshv1alpha1.ModeSidecar)

	patchSpec(t, e, "approve", func(s *meshv1alpha1.MeshMigrationSpec) { s.Paused = false })
	mm = e.waitMigration(t, "approve", time.Minute, "Succeeded", condTrue(migrator.ConditionSucceeded))
	if c := condition(mm, migrator.ConditionPaused); c.Status != metav1.ConditionFalse || c.Reason != migrator.ReasonResumed {
		t.Errorf("Paused condition after resume: %+v", c)
	}
	e.waitPods(t, "approve-2", meshv1alpha1.ModeAmbient)
	evs := strings.Join(e.events(t, "approve"), "\n")
	for _, want := range []string{migrator.ReasonAwaitingApproval, migrator.ReasonPausedByUser, migrator.ReasonResumed} {
		if !strings.Contains(evs, want+":") {
			t.Errorf("no %s event in:\n%s", want, evs)
		}
	}
}

// testKill stops the migrator manager (no lease hand-over, as in a crash) at
// each step of a wave, checks that no namespace is half-flipped at that
// moment, starts a new manager and checks that the wave finishes or is
// rolled back correctly.
func testKill(t *testing.T, e *env) {
	type scenario struct {
		name   string
		breach bool
		// killWhen says when to stop the manager.
		killWhen func(*meshv1alpha1.MeshMigration, *appsv1.Deployment) bool
	}
	rolling := func(d *appsv1.Deployment, token string) bool {
		// The controller has seen the new template and the rollout is under way.
		return token != "" && d.Spec.Template.Annotations[migrator.AnnotationRestartedAt] == token &&
			d.Status.ObservedGeneration == d.Generation && (d.Status.UpdatedReplicas < 2 || d.Status.AvailableReplicas < 2 || d.Status.Replicas > 2)
	}
	scenarios := []scenario{
		{"after-flip", false, func(mm *meshv1alpha1.MeshMigration, _ *appsv1.Deployment) bool {
			return waveIs(0, meshv1alpha1.WaveRestarting)(mm)
		}},
		{"mid-restart", false, func(mm *meshv1alpha1.MeshMigration, d *appsv1.Deployment) bool {
			return waveIs(0, meshv1alpha1.WaveRestarting)(mm) && rolling(d, mm.Status.Waves[0].RestartToken)
		}},
		{"mid-bake", false, func(mm *meshv1alpha1.MeshMigration, _ *appsv1.Deployment) bool {
			return waveIs(0, meshv1alpha1.WaveBaking)(mm) && mm.Status.Waves[0].LastCheckAt != nil
		}},
		{"mid-rollback", true, func(mm *meshv1alpha1.MeshMigration, d *appsv1.Deployment) bool {
			return waveIs(0, meshv1alpha1.WaveRollingBack)(mm) && rolling(d, mm.Status.Waves[0].RollbackToken)
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			ns, name := "kill-"+sc.name, "kill-"+sc.name
			e.makeNamespacesSlow(t, 2, ns)
			stop := e.startMigrator(t, migratorOpts{})
			create(t, e, &meshv1alpha1.MeshMigration{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: meshv1alpha1.MeshMigrationSpec{
					TargetMode: meshv1alpha1.ModeAmbient,
					Namespaces: &meshv1alpha1.NamespaceTarget{Names: []string{ns}},
					BakeTime:   &metav1.Duration{Duration: 4 * time.Second},
					Gate:       gate(2, 10),
				},
			})
			if sc.breach {
				e.waitMigration(t, name, time.Minute, "baking", waveIs(0, meshv1alpha1.WaveBaking))
				e.exp.Set(ns, prom.Traffic{Requests: 100, ErrorRatio: 0.5, Latency: 0.02, Connections: 20})
			}
			dep := &appsv1.Deployment{}
			mm := e.waitMigration(t, name, time.Minute, "the kill point", func(mm *meshv1alpha1.MeshMigration) bool {
				if err := e.cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: app}, dep); err != nil {
					return false
				}
				return sc.killWhen(mm, dep)
			})
			stop()
			killedAt := time.Now()
			phase := mm.Status.Waves[0].Phase
			t.Logf("killed the manager in phase %s (deployment generation %d observed %d: %d pods, %d updated, %d available of 2)", phase,
				dep.Generation, dep.Status.ObservedGeneration, dep.Status.Replicas, dep.Status.UpdatedReplicas, dep.Status.AvailableReplicas)
			if sc.breach {
				e.exp.Set(ns, prom.DefaultTraffic)
			}
			// At the kill, the namespace is wholly flipped or wholly restored.
			l, _ := e.nsState(t, ns)
			if l["istio.io/dataplane-mode"] == "ambient" {
				flippedTo(t, e, ns, meshv1alpha1.ModeAmbient)
			} else {
				flippedTo(t, e, ns, meshv1alpha1.ModeSidecar)
			}
			e.startMigrator(t, migratorOpts{releaseLease: true})
			if sc.breach {
				e.waitMigration(t, name, time.Minute, "RolledBack", condTrue(migrator.ConditionRolledBack))
				t.Logf("rolled back %v after the restart", time.Since(killedAt).Round(time.Millisecond))
				e.waitPods(t, ns, meshv1alpha1.ModeSidecar)
				flippedTo(t, e, ns, meshv1alpha1.ModeSidecar)
				released(t, e, ns)
				return
			}
			mm = e.waitMigration(t, name, time.Minute, "Succeeded", condTrue(migrator.ConditionSucceeded))
			t.Logf("succeeded %v after the restart", time.Since(killedAt).Round(time.Millisecond))
			e.waitPods(t, ns, meshv1alpha1.ModeAmbient)
			flippedTo(t, e, ns, meshv1alpha1.ModeAmbient)
			if w := mm.Status.Waves[0]; w.Phase != meshv1alpha1.WavePromoted {
				t.Errorf("wave %+v, want Promoted", w)
			}
		})
	}
}
