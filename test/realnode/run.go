package realnode

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/test/harness"
)

// WaveResult is one wave as it ran, with the agent's figures for its
// namespace over the gate window before the flip and at the end of its bake
// (promoted) or when its rollback started.
type WaveResult struct {
	Name, Namespace string
	Phase           meshv1alpha1.WavePhase
	Before, After   Figures
	Started         time.Time
	BakeStarted     time.Time
	Finished        time.Time
	RollbackStarted time.Time
}

// Result is what the scenario measured.
type Result struct {
	Waves []WaveResult
	// GateInterval is the gate's check interval.
	GateInterval time.Duration
	// FirstBreach is the first scrape showing a 5xx in the breaking namespace.
	FirstBreach time.Time
	// TargetPodsLeft counts pods of the breaking namespace still labelled
	// with the target mode after the rollback.
	TargetPodsLeft int
	// AfterRollback are the breaking namespace's figures once it is back.
	AfterRollback Figures
	// Agent and Client are each namespace's request and 5xx totals.
	Agent, Client map[string][2]float64
	// PodsReady and PodsTotal count the workload's pods at the end.
	PodsReady, PodsTotal int
}

// Ratio is the agent's count over the client's for namespace ns and index
// i (0 requests, 1 5xx); 1 when both are zero.
func (r *Result) Ratio(ns string, i int) float64 {
	a, c := r.Agent[ns][i], r.Client[ns][i]
	if a == 0 && c == 0 {
		return 1
	}
	return a / c
}

// Env is meshshift installed on a real node with Prometheus and the test app.
type Env struct {
	Prom     *Prometheus
	Workload *Workload
	Load     *LoadClient
	// Start is when the set-up began.
	Start time.Time
}

// Setup installs meshshift on the real node of c as a user does, starts
// Prometheus, deploys the test app and waits until the gate has a full
// window of the agent's figures for both namespaces.
func Setup(ctx context.Context, t testing.TB, c *harness.Cluster, logf func(format string, args ...any)) (*Env, error) {
	start := time.Now()
	root, err := harness.RepoRoot()
	if err != nil {
		return nil, err
	}
	prom := StartPrometheus(t, c, time.Second)
	objs, err := Render(root, t.TempDir(), Options{
		ManagerArgs: []string{
			// No Istio runs here: say ztunnel serves ambient, as the flag
			// allows where detection cannot see it.
			"--capabilities=ztunnel",
			"--prometheus-url=" + prom.URL,
		},
		// The agent reads its counters every second (shipped: 5 s), so a
		// breach reaches Prometheus within a second or two, not up to 5 s later.
		AgentInterval: time.Second,
	})
	if err != nil {
		return nil, err
	}
	if err := Apply(ctx, c.Client, objs); err != nil {
		return nil, err
	}
	if err := WaitReady(ctx, c); err != nil {
		return nil, err
	}
	logf("meshshift installed from config/default (manager x2, agent DaemonSet), webhook answering through its Service (%v)", time.Since(start).Round(time.Second))
	w, err := Deploy(ctx, c.Client)
	if err != nil {
		return nil, err
	}
	lc, err := FindLoadClient(ctx, c.Client)
	if err != nil {
		return nil, err
	}
	gate := Gate()
	window := gate.Window.Duration
	logf("test app: 2 servers each in %s and %s, load client in %s at %d req/s per Service", HealthyNS, BreakingNS, LoadNS, RPS)
	// The gate's baseline needs a full window of the agent's figures.
	if err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, ns := range []string{HealthyNS, BreakingNS} {
			f, err := prom.FiguresAt(ctx, ns, window, time.Now())
			if err != nil || math.IsNaN(f.RPS) || f.RPS < RPS/2 {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		return nil, fmt.Errorf("the agent's figures never reached Prometheus: %w", err)
	}
	time.Sleep(window)
	for _, ns := range []string{HealthyNS, BreakingNS} {
		f, err := prom.FiguresAt(ctx, ns, window, time.Now())
		if err != nil {
			return nil, err
		}
		logf("baseline %-7s %s (agent, %v window)", ns, f, window)
	}
	return &Env{Prom: prom, Workload: w, Load: lc, Start: start}, nil
}

// Run sets up (Setup), runs the two-wave MeshMigration to its end and
// measures. logf receives the timeline as it happens.
func Run(t testing.TB, c *harness.Cluster, logf func(format string, args ...any)) (*Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	env, err := Setup(ctx, t, c, logf)
	if err != nil {
		return nil, err
	}
	prom, w, lc, start := env.Prom, env.Workload, env.Load, env.Start
	gate := Gate()
	window := gate.Window.Duration

	mm := Migration()
	if err := c.Client.Create(ctx, mm); err != nil {
		return nil, fmt.Errorf("create MeshMigration: %w", err)
	}
	migStart := time.Now()
	logf("MeshMigration %s: %s → %s, waves healthy=[%s] breaking=[%s], gate every %v over %v", mm.Name, "current", TargetMode,
		HealthyNS, BreakingNS, gate.Interval.Duration, window)
	final, err := FollowMigration(ctx, c.Client, MigrationName, logf)
	if err != nil {
		return nil, err
	}
	res := &Result{GateInterval: gate.Interval.Duration}
	for _, ws := range final.Status.Waves {
		wr := WaveResult{Name: ws.Name, Phase: ws.Phase}
		if len(ws.Namespaces) > 0 {
			wr.Namespace = ws.Namespaces[0]
		}
		wr.Started, wr.BakeStarted = timeOf(ws.StartedAt), timeOf(ws.BakeStartedAt)
		wr.Finished, wr.RollbackStarted = timeOf(ws.FinishedAt), timeOf(ws.RollbackStartedAt)
		end := wr.Finished
		if !wr.RollbackStarted.IsZero() {
			end = wr.RollbackStarted
		}
		if wr.Before, err = prom.FiguresAt(ctx, wr.Namespace, window, wr.Started); err != nil {
			return nil, err
		}
		if wr.After, err = prom.FiguresAt(ctx, wr.Namespace, window, end); err != nil {
			return nil, err
		}
		res.Waves = append(res.Waves, wr)
	}
	for _, wr := range res.Waves {
		if !wr.RollbackStarted.IsZero() {
			if res.FirstBreach, err = prom.FirstBreachScrape(ctx, wr.Namespace, migStart, wr.RollbackStarted.Add(time.Minute)); err != nil {
				return nil, err
			}
		}
	}
	// The rolled-back namespace settles: its pods restarted in their previous mode.
	if err := WaitPodsReady(ctx, c.Client, BreakingNS, 2); err != nil {
		return nil, err
	}
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods, client.InNamespace(BreakingNS)); err != nil {
		return nil, err
	}
	for _, p := range pods.Items {
		if p.Labels[meshv1alpha1.LabelDataplane] == TargetMode {
			res.TargetPodsLeft++
		}
	}
	// A full window after the rollback, plus the agent's interval and a scrape.
	time.Sleep(window + 7*time.Second)
	if res.AfterRollback, err = prom.FiguresAt(ctx, BreakingNS, window, time.Now()); err != nil {
		return nil, err
	}
	logf("after rollback %-7s %s (agent)", BreakingNS, res.AfterRollback)

	// Quiesce the load, let the agent collect and Prometheus scrape, compare totals.
	if err := lc.Pause(ctx, true); err != nil {
		return nil, err
	}
	time.Sleep(8 * time.Second)
	counts, err := lc.Counts(ctx, w)
	if err != nil {
		return nil, err
	}
	res.Agent, res.Client = map[string][2]float64{}, map[string][2]float64{}
	for _, ns := range []string{HealthyNS, BreakingNS} {
		req, e5, err := prom.AgentTotals(ctx, ns, time.Since(start)+time.Minute)
		if err != nil {
			return nil, err
		}
		res.Agent[ns] = [2]float64{req, e5}
		res.Client[ns] = [2]float64{float64(counts[ns].Requests), float64(counts[ns].Errors)}
		logf("totals %-7s agent requests=%.0f 5xx=%.0f; load client requests=%d 5xx=%d failed=%d", ns, req, e5,
			counts[ns].Requests, counts[ns].Errors, counts[ns].Failed)
	}
	for _, ns := range []string{HealthyNS, BreakingNS, LoadNS} {
		var pl corev1.PodList
		if err := c.Client.List(ctx, &pl, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for _, p := range pl.Items {
			res.PodsTotal++
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					res.PodsReady++
				}
			}
		}
	}
	return res, nil
}

func timeOf(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}

// FollowMigration polls MeshMigration name and logs every wave phase change
// until each wave is Promoted, or one is RolledBack or Failed.
func FollowMigration(ctx context.Context, cl client.Client, name string, logf func(string, ...any)) (*meshv1alpha1.MeshMigration, error) {
	seen := map[string]meshv1alpha1.WavePhase{}
	var mm meshv1alpha1.MeshMigration
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := cl.Get(ctx, client.ObjectKey{Name: name}, &mm); err != nil {
			return false, nil
		}
		done := len(mm.Status.Waves) == len(mm.Spec.Waves)
		for _, ws := range mm.Status.Waves {
			if seen[ws.Name] != ws.Phase {
				seen[ws.Name] = ws.Phase
				msg := ""
				if ws.Reason != "" || ws.Message != "" {
					msg = ": " + ws.Reason + " " + ws.Message
				}
				logf("wave %-8s %s%s", ws.Name, ws.Phase, msg)
			}
			switch ws.Phase {
			case meshv1alpha1.WavePromoted, meshv1alpha1.WaveRolledBack, meshv1alpha1.WaveFailed:
			default:
				done = false
			}
			if ws.Phase == meshv1alpha1.WaveRolledBack || ws.Phase == meshv1alpha1.WaveFailed {
				// A rolled-back wave stops the migration.
				return true, nil
			}
		}
		return done, nil
	})
	if err != nil {
		return nil, fmt.Errorf("follow MeshMigration %s: %w (wave phases %v)", name, err, seen)
	}
	return &mm, nil
}
