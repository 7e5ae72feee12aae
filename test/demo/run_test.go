package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/cmd/meshshift/app"
	"github.com/meshshift/meshshift/migrator"
	"github.com/meshshift/meshshift/test/prom"
)

// demoNamespaces are the namespaces config/samples/demo creates.
var demoNamespaces = []string{"catalog", "search", "shop", "payments", "istio-system"}

const (
	migrationName = "demo-to-ambient"
	// breachWave is the wave (0-based) whose namespace starts failing.
	breachWave = 2
)

// breach is the traffic of the breaching wave once it bakes: half the
// requests fail, five times the gate's limit.
var breach = prom.Traffic{Requests: 100, ErrorRatio: 0.5, Latency: 0.02, Connections: 20}

// gate is a short SLO gate for a demo: a check every second over a 5 s window,
// two failing checks in a row break it.
func gate() *meshv1alpha1.GateSpec {
	return &meshv1alpha1.GateSpec{
		Interval: &metav1.Duration{Duration: time.Second}, Window: &metav1.Duration{Duration: 5 * time.Second},
		FailuresToBreach: 2, InconclusiveLimit: 15,
		SLIs: []meshv1alpha1.SLI{
			{Name: "errorRate", Max: "0.1", MinSample: 50},
			{Name: "latencyP99", MaxIncrease: "1", MinSample: 50},
		},
	}
}

// TestDemo is `make demo`.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo needs the real control plane; run without -short")
	}
	p := &printer{w: os.Stdout, start: time.Now()}
	p.say("meshshift demo: sidecar → ambient in SLO-gated waves, on a local control plane (no cluster needed)")
	c, cl, exp := setUp(t, p)
	ctx := context.Background()

	ready, total := waitWorkloadsReady(ctx, t, cl, 2*time.Minute)
	p.say("all %d/%d pods Ready; modes as the webhook admitted them: %s", ready, total, modeSummary(ctx, t, cl))

	run := func(args ...string) string {
		var out bytes.Buffer
		if code := app.Run(args, &out, &out); code != app.ExitOK && code != app.ExitBlocked {
			t.Fatalf("meshshift %s: exit %d\n%s", strings.Join(args, " "), code, &out)
		}
		return out.String()
	}
	kc := []string{"--kubeconfig", c.Kubeconfig}
	p.block("$ meshshift plan --cluster --target ambient", run(append([]string{"plan", "--cluster", "--target", "ambient"}, kc...)...))
	p.block("$ meshshift precheck --cluster -n catalog,search,payments   (shop is left out: its DENY-all trap; payments-api will keep its sidecar)",
		run(append([]string{"precheck", "--cluster", "-n", "catalog,search,payments"}, kc...)...))

	// The migration is the one the plan proposes.
	mm := &meshv1alpha1.MeshMigration{}
	raw := run(append([]string{"plan", "--cluster", "--target", "ambient", "--emit-migration", migrationName, "-o", "json"}, kc...)...)
	if err := json.Unmarshal([]byte(raw[strings.Index(raw, "{"):]), mm); err != nil {
		t.Fatalf("read the plan's migration: %v\n%s", err, raw)
	}
	if len(mm.Spec.Waves) != 3 {
		t.Fatalf("the plan proposes %d waves, want 3: %+v", len(mm.Spec.Waves), mm.Spec.Waves)
	}
	mm.Spec.BakeTime = &metav1.Duration{Duration: 8 * time.Second}
	mm.Spec.Gate = gate()
	if err := cl.Create(ctx, mm); err != nil {
		t.Fatalf("create the migration: %v", err)
	}
	var waves []string
	for i, w := range mm.Spec.Waves {
		waves = append(waves, fmt.Sprintf("%d=%s", i+1, strings.Join(w.Namespaces, ",")))
	}
	p.say("MeshMigration %s created from the plan: waves %s; bake 8s; gate errorRate ≤ 0.1, p99 ≤ 2× baseline, checked every 1s",
		migrationName, strings.Join(waves, " "))

	final := watch(ctx, t, p, cl, exp, 150*time.Second)

	ready, total = waitWorkloadsReady(ctx, t, cl, 2*time.Minute)
	p.say("final modes: %s", modeSummary(ctx, t, cl))
	p.block("$ meshshift status "+migrationName, run(append([]string{"status", migrationName}, kc...)...))

	migrated, rolledBack := 0, 0
	for _, w := range final.Status.Waves {
		switch w.Phase {
		case meshv1alpha1.WavePromoted:
			migrated++
		case meshv1alpha1.WaveRolledBack:
			rolledBack++
		}
	}
	p.say("done; stopping the manager, Prometheus and the control plane, removing their folders")
	summary = fmt.Sprintf("demo: waves=%d migrated=%d rolled_back=%d pods_ready=%d/%d", len(final.Status.Waves), migrated, rolledBack, ready, total)
	if len(final.Status.Waves) != 3 || migrated != 2 || rolledBack != 1 || ready != total {
		t.Errorf("the demo did not end as designed: %s", summary)
	}
}

// watch prints the migration's timeline until it ends: wave phases, gate
// checks, pods re-admitted with their modes; it injects the breach when the
// last wave bakes.
func watch(ctx context.Context, t *testing.T, p *printer, cl client.Client, exp *prom.Exporter, timeout time.Duration) *meshv1alpha1.MeshMigration {
	t.Helper()
	seen := map[types.UID]bool{}
	for _, pod := range listPods(ctx, t, cl) {
		seen[pod.UID] = true
	}
	phases := map[int]meshv1alpha1.WavePhase{}
	checks := map[int]string{}
	conds := map[string]bool{}
	injected := false
	mm := &meshv1alpha1.MeshMigration{}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := cl.Get(ctx, client.ObjectKey{Name: migrationName}, mm); err != nil {
			return false, err
		}
		for i, w := range mm.Status.Waves {
			if phases[i] != w.Phase {
				phases[i] = w.Phase
				msg := ""
				if w.Message != "" {
					msg = " — " + w.Message
				}
				p.say("wave %d %s (%s): %s%s", i+1, w.Name, strings.Join(w.Namespaces, ","), w.Phase, msg)
			}
			if g := gateText(&w); g != "" && g != checks[i] && w.Phase == meshv1alpha1.WaveBaking {
				checks[i] = g
				p.say("  gate of wave %d: %s", i+1, g)
			}
			// Inject once the wave restarts: its baseline is recorded, and the
			// whole bake sees the errors.
			if i == breachWave && (w.Phase == meshv1alpha1.WaveRestarting || w.Phase == meshv1alpha1.WaveBaking) && !injected {
				injected = true
				for _, ns := range w.Namespaces {
					exp.Set(ns, breach)
				}
				p.say("BREACH injected: %s now answers 50%% of its requests with 5xx (the gate allows 10%%)", strings.Join(w.Namespaces, ","))
			}
		}
		for _, pod := range listPods(ctx, t, cl) {
			if seen[pod.UID] || pod.DeletionTimestamp != nil {
				continue
			}
			seen[pod.UID] = true
			decision := pod.Annotations[meshv1alpha1.AnnotationDecision]
			p.say("  pod %s/%s admitted as %s (%s)", pod.Namespace, pod.Name, orNone(pod.Labels[meshv1alpha1.LabelDataplane]), orNone(decision))
		}
		for _, c := range mm.Status.Conditions {
			on := c.Status == metav1.ConditionTrue
			if on && !conds[c.Type] && c.Type != migrator.ConditionProgressing {
				p.say("condition %s: %s — %s", c.Type, c.Reason, c.Message)
			}
			conds[c.Type] = on
		}
		return conds[migrator.ConditionSucceeded] || conds[migrator.ConditionRolledBack] || conds[migrator.ConditionFailed] ||
			conds[migrator.ConditionPaused], nil
	})
	if err != nil {
		t.Fatalf("the migration did not finish within %v: %v", timeout, err)
	}
	return mm
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// gateText is a wave's latest gate check, e.g. "errorRate 0.5 > 0.1 Fail;
// failures 1".
func gateText(w *meshv1alpha1.WaveStatus) string {
	if len(w.LastGate) == 0 {
		return ""
	}
	var parts []string
	for _, g := range w.LastGate {
		s := g.Name + " " + orNone(g.Value)
		if g.Limit != "" {
			s += " (limit " + g.Limit + ")"
		}
		parts = append(parts, s+" "+g.Result)
	}
	return fmt.Sprintf("%s; consecutive failures %d", strings.Join(parts, ", "), w.Failures)
}

func listPods(ctx context.Context, t *testing.T, cl client.Client) []corev1.Pod {
	t.Helper()
	var out []corev1.Pod
	for _, ns := range demoNamespaces {
		var pods corev1.PodList
		if err := cl.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			t.Fatalf("list pods in %s: %v", ns, err)
		}
		out = append(out, pods.Items...)
	}
	return out
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitWorkloadsReady waits until every workload of the samples is rolled out
// and Ready with no pod terminating, and returns the Ready and total pods.
func waitWorkloadsReady(ctx context.Context, t *testing.T, cl client.Client, timeout time.Duration) (int, int) {
	t.Helper()
	var ready, total int
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ready, total, last = 0, 0, ""
		for _, ns := range demoNamespaces {
			var deps appsv1.DeploymentList
			var sts appsv1.StatefulSetList
			var dss appsv1.DaemonSetList
			for _, l := range []client.ObjectList{&deps, &sts, &dss} {
				if err := cl.List(ctx, l, client.InNamespace(ns)); err != nil {
					return false, err
				}
			}
			for _, d := range deps.Items {
				want := ptrValue(d.Spec.Replicas)
				if d.Status.ObservedGeneration != d.Generation || d.Status.UpdatedReplicas != want || d.Status.ReadyReplicas != want || d.Status.Replicas != want {
					last = "Deployment " + ns + "/" + d.Name + " rolling out"
				}
			}
			for _, s := range sts.Items {
				want := ptrValue(s.Spec.Replicas)
				if s.Status.ObservedGeneration != s.Generation || s.Status.UpdatedReplicas != want || s.Status.ReadyReplicas != want {
					last = "StatefulSet " + ns + "/" + s.Name + " rolling out"
				}
			}
			for _, d := range dss.Items {
				if d.Status.DesiredNumberScheduled == 0 || d.Status.NumberReady != d.Status.DesiredNumberScheduled {
					last = "DaemonSet " + ns + "/" + d.Name + " not ready"
				}
			}
		}
		for _, p := range listPods(ctx, t, cl) {
			if p.DeletionTimestamp != nil {
				last = "pod " + p.Namespace + "/" + p.Name + " terminating"
				continue
			}
			total++
			if podReady(&p) {
				ready++
			}
		}
		return last == "" && total > 0, nil
	})
	if err != nil {
		t.Fatalf("workloads not Ready within %v: %s (%d/%d pods Ready)", timeout, last, ready, total)
	}
	return ready, total
}

func ptrValue(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// modeSummary counts the pods of each namespace by their decided mode.
func modeSummary(ctx context.Context, t *testing.T, cl client.Client) string {
	t.Helper()
	counts := map[string]map[string]int{}
	for _, p := range listPods(ctx, t, cl) {
		if p.DeletionTimestamp != nil {
			continue
		}
		if counts[p.Namespace] == nil {
			counts[p.Namespace] = map[string]int{}
		}
		counts[p.Namespace][orNone(p.Labels[meshv1alpha1.LabelDataplane])]++
	}
	var parts []string
	for _, ns := range demoNamespaces {
		var modes []string
		for m, n := range counts[ns] {
			modes = append(modes, fmt.Sprintf("%d %s", n, m))
		}
		sort.Strings(modes)
		parts = append(parts, ns+" ["+strings.Join(modes, ", ")+"]")
	}
	return strings.Join(parts, " ")
}
