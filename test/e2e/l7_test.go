package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/migrator"
	"github.com/meshshift/meshshift/migrator/l7policy"
	"github.com/meshshift/meshshift/test/prom"
)

// originals are the keys of the policies l7Policies creates.
var originals = []string{"AuthorizationPolicy/web-allow", "RequestAuthentication/web-jwt"}

// TestL7PolicyMigration moves selector-based L7 policies to a waypoint that
// the real istiod programs, on a control plane with Istio's and Gateway
// API's CRDs, and checks the protection invariant at every step.
func TestL7PolicyMigration(t *testing.T) {
	e := startEnvWith(t, true)
	t.Run("ApplyAndRollback", func(t *testing.T) { testL7Apply(t, e) })
	t.Run("RemoveOriginals", func(t *testing.T) { testL7Remove(t, e) })
	t.Run("KillAtEachPolicyStep", func(t *testing.T) { testL7Kill(t, e) })
}

// testL7Remove: with originalPolicies Remove the promoted wave deletes the
// narrowed originals; a requested rollback recreates them (narrowed, so the
// pods going back to sidecars are guarded at once) and then restores them
// byte for byte.
func testL7Remove(t *testing.T, e *env) {
	const ns, name = "l7-remove", "l7-remove"
	orig := e.makeL7Namespace(t, ns, 0)
	stop := e.startMigrator(t, migratorOpts{releaseLease: true, restartOnLeaseLoss: true})
	defer stop()
	w := e.watchProtection(t, ns, name)
	mm := l7Migration(name, ns, 3*time.Second)
	mm.Spec.OriginalPolicies = meshv1alpha1.OriginalPoliciesRemove
	create(t, e, mm)
	e.waitMigration(t, name, 2*time.Minute, "Succeeded", condTrue(migrator.ConditionSucceeded))
	e.waitPods(t, ns, meshv1alpha1.ModeAmbientWaypoint)
	ps, err := e.listPolicies(context.Background(), ns)
	if err != nil {
		t.Fatal(err)
	}
	copies := 0
	for i := range ps {
		if ps[i].GetLabels()[l7policy.LabelMigration] == "" {
			t.Errorf("original %s/%s still there after promotion with originalPolicies Remove", ps[i].GetKind(), ps[i].GetName())
		} else {
			copies++
		}
	}
	if copies < 2 {
		t.Errorf("%d copies after promotion, want at least 2", copies)
	}
	e.checkNow(t, ns, "promoted, originals removed")
	patchSpec(t, e, name, func(s *meshv1alpha1.MeshMigrationSpec) { s.RollbackRequested = true })
	e.waitMigration(t, name, 2*time.Minute, "RolledBack", condTrue(migrator.ConditionRolledBack))
	e.waitPods(t, ns, meshv1alpha1.ModeSidecar)
	w.finish(t)
	e.restoredState(t, ns, orig)
}

// makeL7Namespace is makeNamespacesSlow plus the original policies; it
// returns the originals as created.
func (e *env) makeL7Namespace(t *testing.T, ns string, minReady int32) map[string]*unstructured.Unstructured {
	t.Helper()
	e.makeNamespacesSlow(t, minReady, ns)
	out := map[string]*unstructured.Unstructured{}
	for _, u := range l7Policies(ns) {
		if err := e.cl.Create(context.Background(), u); err != nil {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		out[u.GetKind()+"/"+u.GetName()] = u
	}
	return out
}

// protectionWatch samples the invariant while a migration runs, and runs
// istioctl analyze at each phase the migration enters.
type protectionWatch struct {
	mu         sync.Mutex
	violations map[string]string // violation -> phase seen in
	analyze    []string
	phases     []string
	samples    int
	stop       chan struct{}
	done       sync.WaitGroup
}

func (e *env) watchProtection(t *testing.T, ns, name string) *protectionWatch {
	t.Helper()
	w := &protectionWatch{violations: map[string]string{}, stop: make(chan struct{})}
	start := time.Now()
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		last := ""
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			ctx := context.Background()
			mm := &meshv1alpha1.MeshMigration{}
			phase := "none"
			if err := e.cl.Get(ctx, client.ObjectKey{Name: name}, mm); err == nil && len(mm.Status.Waves) > 0 {
				phase = string(mm.Status.Waves[0].Phase)
				if mm.Status.Waves[0].Phase == meshv1alpha1.WaveMovingPolicies && mm.Status.Waves[0].PolicyStep != "" {
					phase += " (" + strings.SplitN(mm.Status.Waves[0].PolicyStep, ":", 2)[0] + ")"
				}
			}
			st, err := e.readProtection(ctx, ns)
			if err != nil {
				continue
			}
			vs := protectionViolations(st, originals)
			w.mu.Lock()
			w.samples++
			for _, v := range vs {
				if _, ok := w.violations[v]; !ok {
					w.violations[v] = phase
				}
			}
			if phase != last {
				w.phases = append(w.phases, fmt.Sprintf("+%v %s", time.Since(start).Round(time.Millisecond), phase))
				w.done.Add(1)
				go func(phase string) {
					defer w.done.Done()
					errs, err := istioctlAnalyze(t, e.c, ns)
					w.mu.Lock()
					defer w.mu.Unlock()
					if err != nil {
						w.analyze = append(w.analyze, phase+": "+err.Error())
					}
					for _, m := range errs {
						w.analyze = append(w.analyze, phase+": "+m)
					}
				}(phase)
				last = phase
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// finish stops the watch and fails the test on any violation or analyzer error.
func (w *protectionWatch) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	w.done.Wait()
	t.Logf("protection checked on %d samples; phases seen: %s", w.samples, strings.Join(w.phases, ", "))
	for v, phase := range w.violations {
		t.Errorf("in phase %s: %s", phase, v)
	}
	for _, a := range w.analyze {
		t.Errorf("istioctl analyze: %s", a)
	}
}

// checkNow checks the invariant and istioctl analyze on the state as it is.
func (e *env) checkNow(t *testing.T, ns, when string) {
	t.Helper()
	st, err := e.readProtection(context.Background(), ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range protectionViolations(st, originals) {
		t.Errorf("%s: %s", when, v)
	}
	errs, err := istioctlAnalyze(t, e.c, ns)
	if err != nil {
		t.Errorf("%s: %v", when, err)
	}
	for _, m := range errs {
		t.Errorf("%s: istioctl analyze: %s", when, m)
	}
}

// movedState checks a migrated namespace: originals narrowed, one copy of
// each on the Service, the Service on the programmed waypoint.
func (e *env) movedState(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	ps, err := e.listPolicies(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	narrowed, copies := 0, 0
	for i := range ps {
		switch {
		case ps[i].GetLabels()[l7policy.LabelMigration] != "":
			copies++
		case l7policy.IsNarrowed(&ps[i]):
			narrowed++
		}
	}
	if narrowed != 2 || copies < 2 {
		t.Errorf("%s: %d narrowed originals and %d copies, want 2 and at least 2", ns, narrowed, copies)
	}
	svc := &corev1.Service{}
	if err := e.cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: app}, svc); err != nil || svc.Labels["istio.io/use-waypoint"] != "waypoint" {
		t.Errorf("%s: service %v labels %v, want istio.io/use-waypoint=waypoint", ns, err, svc.Labels)
	}
}

// restoredState checks a rolled-back namespace: every original's spec byte
// for byte, its labels and annotations as created, no copy, no waypoint.
func (e *env) restoredState(t *testing.T, ns string, orig map[string]*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	ps, err := e.listPolicies(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := range ps {
		p := &ps[i]
		key := p.GetKind() + "/" + p.GetName()
		o, ok := orig[key]
		if !ok {
			t.Errorf("%s: %s left after the rollback (labels %v)", ns, key, p.GetLabels())
			continue
		}
		seen[key] = true
		if got, want := specJSON(p), specJSON(o); got != want {
			t.Errorf("%s: %s spec after rollback\n got %s\nwant %s", ns, key, got, want)
		}
		if len(p.GetAnnotations()) != 0 || len(p.GetLabels()) != 0 {
			t.Errorf("%s: %s metadata after rollback: labels %v annotations %v, want none", ns, key, p.GetLabels(), p.GetAnnotations())
		}
	}
	for key := range orig {
		if !seen[key] {
			t.Errorf("%s: original %s missing after the rollback", ns, key)
		}
	}
	if err := e.cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "waypoint"}, &gatewayv1.Gateway{}); !apierrors.IsNotFound(err) {
		t.Errorf("%s: waypoint gateway after rollback: %v, want not found", ns, err)
	}
}

func l7Migration(name, ns string, bake time.Duration) *meshv1alpha1.MeshMigration {
	return &meshv1alpha1.MeshMigration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: meshv1alpha1.MeshMigrationSpec{
			TargetMode:      meshv1alpha1.ModeAmbientWaypoint,
			Namespaces:      &meshv1alpha1.NamespaceTarget{Names: []string{ns}},
			PolicyMigration: meshv1alpha1.PolicyMigrationApply,
			BakeTime:        &metav1.Duration{Duration: bake},
			Gate:            gate(2, 10),
		},
	}
}

// testL7Apply: the wave moves the policies to the waypoint istiod programs,
// flips and promotes; a requested rollback restores the originals exactly.
// The invariant and istioctl analyze are checked throughout.
func testL7Apply(t *testing.T, e *env) {
	const ns, name = "l7-apply", "l7-apply"
	orig := e.makeL7Namespace(t, ns, 0)
	e.checkNow(t, ns, "before the migration")
	stop := e.startMigrator(t, migratorOpts{releaseLease: true, restartOnLeaseLoss: true})
	defer stop()
	w := e.watchProtection(t, ns, name)
	start := time.Now()
	create(t, e, l7Migration(name, ns, 4*time.Second))
	mm := e.waitMigration(t, name, 2*time.Minute, "Succeeded", condTrue(migrator.ConditionSucceeded))
	wv := mm.Status.Waves[0]
	t.Logf("succeeded in %v: baseline done %s, policies moved (waypoint programmed) %s, bake %s, promoted %s; proposal %q",
		time.Since(start).Round(time.Millisecond), wv.StartedAt.Format("15:04:05.000"), wv.WaypointProgrammedAt.Format("15:04:05.000"),
		wv.BakeStartedAt.Format("15:04:05.000"), wv.FinishedAt.Format("15:04:05.000"), wv.PolicyProposal)
	e.waitPods(t, ns, meshv1alpha1.ModeAmbientWaypoint)
	e.movedState(t, ns)
	e.checkNow(t, ns, "promoted")

	rb := time.Now()
	patchSpec(t, e, name, func(s *meshv1alpha1.MeshMigrationSpec) { s.RollbackRequested = true })
	e.waitMigration(t, name, 2*time.Minute, "RolledBack", condTrue(migrator.ConditionRolledBack))
	t.Logf("rolled back in %v", time.Since(rb).Round(time.Millisecond))
	e.waitPods(t, ns, meshv1alpha1.ModeSidecar)
	w.finish(t)
	e.restoredState(t, ns, orig)
	e.checkNow(t, ns, "rolled back")
	released(t, e, ns)
}

// testL7Kill stops the migrator (no lease hand-over, as in a crash) at the
// new steps of a policy-moving wave, checks at that moment that no
// targetRefs policy exists without a programmed waypoint and no policy is
// half-narrowed, starts a new manager and checks the wave finishes (or is
// rolled back) with the invariant kept throughout.
func testL7Kill(t *testing.T, e *env) {
	type scenario struct {
		name   string
		breach bool
		when   func(ctx context.Context, ns string, mm *meshv1alpha1.MeshMigration, d *appsv1.Deployment) bool
	}
	rolling := func(d *appsv1.Deployment, token string) bool {
		return token != "" && d.Spec.Template.Annotations[migrator.AnnotationRestartedAt] == token &&
			d.Status.ObservedGeneration == d.Generation && (d.Status.UpdatedReplicas < 2 || d.Status.AvailableReplicas < 2 || d.Status.Replicas > 2)
	}
	scenarios := []scenario{
		{"waypoint-not-programmed", false, func(ctx context.Context, ns string, mm *meshv1alpha1.MeshMigration, _ *appsv1.Deployment) bool {
			gw := &gatewayv1.Gateway{}
			return waveIs(0, meshv1alpha1.WaveMovingPolicies)(mm) && e.cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "waypoint"}, gw) == nil
		}},
		{"policies-moved", false, func(ctx context.Context, ns string, mm *meshv1alpha1.MeshMigration, _ *appsv1.Deployment) bool {
			ps, err := e.listPolicies(ctx, ns)
			n := 0
			for i := range ps {
				if ps[i].GetLabels()[l7policy.LabelMigration] != "" || l7policy.IsNarrowed(&ps[i]) {
					n++
				}
			}
			return err == nil && n > 0 && len(mm.Status.Waves) > 0 && mm.Status.Waves[0].Phase != meshv1alpha1.WaveBaking
		}},
		{"mid-restart", false, func(_ context.Context, _ string, mm *meshv1alpha1.MeshMigration, d *appsv1.Deployment) bool {
			return waveIs(0, meshv1alpha1.WaveRestarting)(mm) && rolling(d, mm.Status.Waves[0].RestartToken)
		}},
		{"mid-rollback", true, func(_ context.Context, _ string, mm *meshv1alpha1.MeshMigration, d *appsv1.Deployment) bool {
			return waveIs(0, meshv1alpha1.WaveRollingBack)(mm) && rolling(d, mm.Status.Waves[0].RollbackToken)
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			ns, name := "l7kill-"+sc.name, "l7kill-"+sc.name
			orig := e.makeL7Namespace(t, ns, 2)
			stop := e.startMigrator(t, migratorOpts{restartOnLeaseLoss: true})
			w := e.watchProtection(t, ns, name)
			create(t, e, l7Migration(name, ns, 4*time.Second))
			if sc.breach {
				e.waitMigration(t, name, 2*time.Minute, "baking", waveIs(0, meshv1alpha1.WaveBaking))
				e.exp.Set(ns, prom.Traffic{Requests: 100, ErrorRatio: 0.5, Latency: 0.02, Connections: 20})
			}
			dep := &appsv1.Deployment{}
			mm := e.waitMigration(t, name, 2*time.Minute, "the kill point", func(mm *meshv1alpha1.MeshMigration) bool {
				ctx := context.Background()
				if err := e.cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: app}, dep); err != nil {
					return false
				}
				return sc.when(ctx, ns, mm, dep)
			})
			stop()
			killedAt := time.Now()
			t.Logf("killed the manager in phase %s (%s)", mm.Status.Waves[0].Phase, mm.Status.Waves[0].PolicyStep)
			if sc.breach {
				e.exp.Set(ns, prom.DefaultTraffic)
			}
			e.checkNow(t, ns, "at the kill")
			e.startMigrator(t, migratorOpts{releaseLease: true, restartOnLeaseLoss: true})
			if sc.breach {
				e.waitMigration(t, name, 2*time.Minute, "RolledBack", condTrue(migrator.ConditionRolledBack))
				t.Logf("rolled back %v after the restart", time.Since(killedAt).Round(time.Millisecond))
				e.waitPods(t, ns, meshv1alpha1.ModeSidecar)
				w.finish(t)
				e.restoredState(t, ns, orig)
				flippedTo(t, e, ns, meshv1alpha1.ModeSidecar)
				released(t, e, ns)
				return
			}
			e.waitMigration(t, name, 2*time.Minute, "Succeeded", condTrue(migrator.ConditionSucceeded))
			t.Logf("succeeded %v after the restart", time.Since(killedAt).Round(time.Millisecond))
			e.waitPods(t, ns, meshv1alpha1.ModeAmbientWaypoint)
			w.finish(t)
			e.movedState(t, ns)
			flippedTo(t, e, ns, meshv1alpha1.ModeAmbientWaypoint)
		})
	}
}
