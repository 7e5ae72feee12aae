package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/migrator"
	"github.com/meshshift/meshshift/test/prom"
)

// TestMigrator runs the migrator's end-to-end scenarios on one shared
// environment; each scenario uses namespaces of its own.
func TestMigrator(t *testing.T) {
	e := startEnv(t)
	t.Run("HappyPath", func(t *testing.T) { testHappyPath(t, e) })
	t.Run("JobsAndCronJobs", func(t *testing.T) { testJobsAndCronJobs(t, e) })
	t.Run("BreachRollsBackWave2", func(t *testing.T) { testBreach(t, e) })
	t.Run("InconclusivePauses", func(t *testing.T) { testInconclusive(t, e) })
	t.Run("Waypoint", func(t *testing.T) { testWaypoint(t, e) })
	t.Run("PauseApprovalOwnership", func(t *testing.T) { testPauseApproval(t, e) })
	t.Run("KillAtEachStep", func(t *testing.T) { testKill(t, e) })
}

// makeStatefulSetAndDaemonSet adds a 1-replica StatefulSet "db" and a
// DaemonSet "agent" to a namespace and waits for their pods.
func (e *env) makeStatefulSetAndDaemonSet(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	tmpl := func(name string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: name + ":1"}}},
		}
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1), ServiceName: "db",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, Template: tmpl("db")},
	}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent"},
		Spec:       appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}}, Template: tmpl("agent")},
	}
	for _, o := range []client.Object{sts, ds} {
		if err := e.cl.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	e.waitPodsOf(t, ns, "db", 1, meshv1alpha1.ModeSidecar)
	e.waitPodsOf(t, ns, "agent", 2, meshv1alpha1.ModeSidecar)
}

func create(t *testing.T, e *env, mm *meshv1alpha1.MeshMigration) {
	t.Helper()
	if err := e.cl.Create(context.Background(), mm); err != nil {
		t.Fatalf("create migration %s: %v", mm.Name, err)
	}
}

func patchSpec(t *testing.T, e *env, name string, change func(*meshv1alpha1.MeshMigrationSpec)) {
	t.Helper()
	mm := &meshv1alpha1.MeshMigration{}
	if err := e.cl.Get(context.Background(), client.ObjectKey{Name: name}, mm); err != nil {
		t.Fatal(err)
	}
	p := client.MergeFrom(mm.DeepCopy())
	change(&mm.Spec)
	if err := e.cl.Patch(context.Background(), mm, p); err != nil {
		t.Fatalf("patch migration %s: %v", name, err)
	}
}

// released checks that a namespace no longer carries the migration's claim.
func released(t *testing.T, e *env, ns string) {
	t.Helper()
	if _, a := e.nsState(t, ns); a[migrator.AnnotationMigration] != "" {
		t.Errorf("namespace %s still claimed: %v", ns, a)
	}
}

// flippedTo checks a namespace carries exactly the target's labels (and the
// record), or for sidecar exactly what makeNamespaces created.
func flippedTo(t *testing.T, e *env, ns string, mode meshv1alpha1.Mode) {
	t.Helper()
	l, a := e.nsState(t, ns)
	switch mode {
	case meshv1alpha1.ModeSidecar:
		if l["istio-injection"] != "enabled" || l["istio.io/dataplane-mode"] != "" || l["istio.io/use-waypoint"] != "" {
			t.Errorf("namespace %s labels %v, want the original sidecar labels", ns, l)
		}
		for _, k := range []string{meshv1alpha1.AnnotationMode, migrator.AnnotationPreviousLabels} {
			if _, ok := a[k]; ok {
				t.Errorf("namespace %s has annotation %s in sidecar mode: %v", ns, k, a)
			}
		}
	default:
		if l["istio.io/dataplane-mode"] != "ambient" || l["istio-injection"] != "" || a[meshv1alpha1.AnnotationMode] != string(mode) {
			t.Errorf("namespace %s labels %v annotations %v, want fully flipped to %s", ns, l, a, mode)
		}
		if a[migrator.AnnotationPreviousLabels] == "" {
			t.Errorf("namespace %s has no record of its previous labels", ns)
		}
	}
}

func testHappyPath(t *testing.T, e *env) {
	nss := []string{"happy-1", "happy-2", "happy-3", "happy-4", "happy-5", "happy-6"}
	e.makeNamespaces(t, nss...)
	// happy-1 also runs a StatefulSet and a DaemonSet (one pod per kwok node).
	e.makeStatefulSetAndDaemonSet(t, "happy-1")
	stop := e.startMigrator(t, migratorOpts{releaseLease: true})
	defer stop()
	start := time.Now()
	create(t, e, &meshv1alpha1.MeshMigration{
		ObjectMeta: metav1.ObjectMeta{Name: "happy"},
		Spec: meshv1alpha1.MeshMigrationSpec{
			TargetMode: meshv1alpha1.ModeAmbient,
			Namespaces: &meshv1alpha1.NamespaceTarget{Names: nss},
			BatchSize:  ptr.To(intstr.FromString("33%")),
			BakeTime:   &metav1.Duration{Duration: 3 * time.Second},
			Gate:       gate(2, 10),
		},
	})
	mm := e.waitMigration(t, "happy", 90*time.Second, "Succeeded", condTrue(migrator.ConditionSucceeded))
	t.Logf("3 waves over 6 namespaces succeeded in %v", time.Since(start).Round(time.Millisecond))
	if len(mm.Status.Waves) != 3 {
		t.Fatalf("waves = %s, want 3 of 2 namespaces", statusString(mm))
	}
	for _, w := range mm.Status.Waves {
		if w.Phase != meshv1alpha1.WavePromoted || len(w.Namespaces) != 2 || len(w.Baseline) != 2 || len(w.LastGate) != 2 {
			t.Errorf("wave %+v, want Promoted with 2 namespaces, baseline and gate values", w)
		}
		t.Logf("wave %s %v: started %s, bake %s, promoted %s; baseline %v; last gate %v", w.Name, w.Namespaces,
			w.StartedAt.Format(time.TimeOnly), w.BakeStartedAt.Format(time.TimeOnly), w.FinishedAt.Format(time.TimeOnly), w.Baseline, w.LastGate)
	}
	for _, ns := range nss {
		e.waitPods(t, ns, meshv1alpha1.ModeAmbient)
		flippedTo(t, e, ns, meshv1alpha1.ModeAmbient)
	}
	e.waitPodsOf(t, "happy-1", "db", 1, meshv1alpha1.ModeAmbient)
	e.waitPodsOf(t, "happy-1", "agent", 2, meshv1alpha1.ModeAmbient)
	for _, w := range mm.Status.Waves {
		if v := metricValue(t, "meshshift_migration_wave", map[string]string{"migration": "happy", "wave": w.Name, "phase": "Promoted"}); v != 1 {
			t.Errorf("meshshift_migration_wave{wave=%s,phase=Promoted} = %v, want 1", w.Name, v)
		}
	}
	if v := metricValue(t, "meshshift_migration_gate_evaluations_total", map[string]string{"migration": "happy", "result": "Pass"}); v < 3 {
		t.Errorf("meshshift_migration_gate_evaluations_total{result=Pass} = %v, want >= 3", v)
	}
	evs := e.events(t, "happy")
	t.Logf("events:\n  %s", strings.Join(evs, "\n  "))
	for _, want := range []string{migrator.ReasonPlanned, migrator.ReasonPrecheckPassed, migrator.ReasonBaselineRecorded,
		migrator.ReasonFlipped, migrator.ReasonReady, migrator.ReasonWavePromoted, migrator.ReasonSucceeded} {
		n := 0
		for _, ev := range evs {
			if strings.HasPrefix(ev, want+":") {
				n++
			}
		}
		wantN := 3
		if want == migrator.ReasonPlanned || want == migrator.ReasonSucceeded {
			wantN = 1
		}
		if n < wantN {
			t.Errorf("%d events %s, want %d", n, want, wantN)
		}
	}
}

func testBreach(t *testing.T, e *env) {
	e.makeNamespaces(t, "breach-1", "breach-2", "breach-3")
	stop := e.startMigrator(t, migratorOpts{releaseLease: true})
	defer stop()
	create(t, e, &meshv1alpha1.MeshMigration{
		ObjectMeta: metav1.ObjectMeta{Name: "breach"},
		Spec: meshv1alpha1.MeshMigrationSpec{
			TargetMode: meshv1alpha1.ModeAmbient,
			Waves: []meshv1alpha1.WaveSpec{
				{Name: "one", Namespaces: []string{"breach-1"}},
				{Name: "two", Namespaces: []string{"breach-2"}},
				{Name: "three", Namespaces: []string{"breach-3"}},
			},
			BakeTime: &metav1.Duration{Duration: 6 * time.Second},
			Gate:     gate(2, 10),
		},
	})
	e.waitMigration(t, "breach", 2*time.Minute, "wave two flipped", func(mm *meshv1alpha1.MeshMigration) bool {
		return waveIs(1, meshv1alpha1.WaveRestarting)(mm) || waveIs(1, meshv1alpha1.WaveBaking)(mm)
	})
	e.exp.Set("breach-2", prom.Traffic{Requests: 100, ErrorRatio: 0.5, Latency: 0.02, Connections: 20})
	e.waitMigration(t, "breach", 2*time.Minute, "wave two rolling back", waveIs(1, meshv1alpha1.WaveRollingBack))
	firstScrape := e.exp.ChangeScrapedAt()
	mm := e.waitMigration(t, "breach", 2*time.Minute, "RolledBack", condTrue(migrator.ConditionRolledBack))
	seenDone := time.Now()
	w1, w2, w3 := mm.Status.Waves[0], mm.Status.Waves[1], mm.Status.Waves[2]
	if w1.Phase != meshv1alpha1.WavePromoted || w2.Phase != meshv1alpha1.WaveRolledBack || w3.Phase != meshv1alpha1.WavePending {
		t.Fatalf("waves: %s", statusString(mm))
	}
	rbStart, err := time.Parse(time.RFC3339Nano, w2.RollbackToken)
	if err != nil {
		t.Fatalf("rollback token %q: %v", w2.RollbackToken, err)
	}
	c := condition(mm, migrator.ConditionRolledBack)
	rbDone := seenDone
	if _, at, ok := strings.Cut(c.Message, "rolled back at "); ok {
		if d, err := time.Parse(time.RFC3339Nano, at); err == nil {
			rbDone = d
		}
	}
	t.Logf("breach: first scrape with errors %s; rollback started +%v; rollback complete +%v (goals: <= 2 gate intervals = 2s; <= 60s)",
		firstScrape.Format("15:04:05.000"), rbStart.Sub(firstScrape).Round(time.Millisecond), rbDone.Sub(firstScrape).Round(time.Millisecond))
	if firstScrape.IsZero() || rbDone.Sub(firstScrape) > 60*time.Second {
		t.Errorf("rollback complete %v after the first breaching scrape, want <= 60s", rbDone.Sub(firstScrape))
	}
	if c.Reason != migrator.ReasonGateBreached || !strings.Contains(c.Message, "SLI errorRate") || !strings.Contains(c.Message, "limit 0.1") {
		t.Errorf("RolledBack condition %s: %s, want the SLI errorRate, its value and limit 0.1", c.Reason, c.Message)
	}
	t.Logf("condition: %s: %s", c.Reason, c.Message)
	e.waitPods(t, "breach-1", meshv1alpha1.ModeAmbient)
	flippedTo(t, e, "breach-1", meshv1alpha1.ModeAmbient)
	e.waitPods(t, "breach-2", meshv1alpha1.ModeSidecar)
	flippedTo(t, e, "breach-2", meshv1alpha1.ModeSidecar)
	released(t, e, "breach-2")
	e.waitPods(t, "breach-3", meshv1alpha1.ModeSidecar)
	if l, a := e.nsState(t, "breach-3"); l["istio-injection"] != "enabled" || a[migrator.AnnotationMigration] != "" {
		t.Errorf("breach-3 (never started) labels %v annotations %v, want untouched and released", l, a)
	}
	if v := metricValue(t, "meshshift_migration_rollbacks_total", map[string]string{"migration": "breach", "reason": "GateBreached"}); v != 1 {
		t.Errorf("meshshift_migration_rollbacks_total{reason=GateBreached} = %v, want 1", v)
	}
	if v := metricValue(t, "meshshift_migration_gate_evaluations_total", map[string]string{"migration": "breach", "result": "Fail"}); v < 2 {
		t.Errorf("meshshift_migration_gate_evaluations_total{result=Fail} = %v, want >= 2", v)
	}
	evs := strings.Join(e.events(t, "breach"), "\n")
	for _, want := range []string{migrator.ReasonGateBreached, migrator.ReasonRollbackStarted, migrator.ReasonWaveRolledBack} {
		if !strings.Contains(evs, want+":") {
			t.Errorf("no %s event in:\n%s", want, evs)
		}
	}
}

func testInconclusive(t *testing.T, e *env) {
	e.makeNamespaces(t, "inconclusive-1")
	// The namespace's series come from the second exporter, which stops below.
	e.expStop.Set("inconclusive-1", prom.DefaultTraffic)
	e.exp.Remove("inconclusive-1")
	e.waitSeries(t, "inconclusive-1")
	stop := e.startMigrator(t, migratorOpts{releaseLease: true})
	defer stop()
	bake := 12 * time.Second
	create(t, e, &meshv1alpha1.MeshMigration{
		ObjectMeta: metav1.ObjectMeta{Name: "inconclusive"},
		Spec: meshv1alpha1.MeshMigrationSpec{
			TargetMode: meshv1alpha1.ModeAmbient,
			Namespaces: &meshv1alpha1.NamespaceTarget{Names: []string{"inconclusive-1"}},
			BakeTime:   &metav1.Duration{Duration: bake},
			Gate:       gate(2, 3),
		},
	})
	e.waitMigration(t, "inconclusive", 2*time.Minute, "baking", waveIs(0, meshv1alpha1.WaveBaking))
	e.expStop.Stop() // Prometheus sees the target down; the series go stale
	stopped := time.Now()
	mm := e.waitMigration(t, "inconclusive", time.Minute, "paused", condTrue(migrator.ConditionPaused))
	c := condition(mm, migrator.ConditionPaused)
	t.Logf("paused %v after the exporter stopped: %s: %s", time.Since(stopped).Round(time.Millisecond), c.Reason, c.Message)
	if c.Reason != migrator.ReasonGateInconclusive || !mm.Spec.Paused || mm.Status.Waves[0].Phase != meshv1alpha1.WaveBaking {
		t.Fatalf("after inconclusive checks: %s", statusString(mm))
	}
	// Past the bake time it still never promotes.
	time.Sleep(time.Until(mm.Status.Waves[0].BakeStartedAt.Add(bake + 3*time.Second)))
	mm = e.waitMigration(t, "inconclusive", time.Second, "read", func(*meshv1alpha1.MeshMigration) bool { return true })
	if mm.Status.Waves[0].Phase != meshv1alpha1.WaveBaking || condTrue(migrator.ConditionSucceeded)(mm) {
		t.Fatalf("promoted while inconclusive: %s", statusString(mm))
	}
	flippedTo(t, e, "inconclusive-1", meshv1alpha1.ModeAmbient)
}
