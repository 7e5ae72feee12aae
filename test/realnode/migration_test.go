package realnode_test

import (
	"math"
	"testing"
	"time"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/test/realnode"
)

// TestMigrationRollsBackOnAgentMeasuredBreach is the whole loop on a real
// node: meshshift from the shipped overlay and image, the test app's real
// requests counted by the real agent, Prometheus discovering the agent
// through the API server, and a two-wave MeshMigration whose healthy wave
// is promoted and whose breaking wave is rolled back by the gate itself.
func TestMigrationRollsBackOnAgentMeasuredBreach(t *testing.T) {
	c := harness.Start(t, harness.Options{RealNode: &harness.NodeOptions{Meshshift: true}})
	res, err := realnode.Run(t, c, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Waves) != 2 {
		t.Fatalf("%d waves ran, want 2: %+v", len(res.Waves), res.Waves)
	}
	healthy, breaking := res.Waves[0], res.Waves[1]
	for _, w := range res.Waves {
		t.Logf("wave %-8s %-10s before %s | after %s", w.Name, w.Phase, w.Before, w.After)
	}
	if healthy.Phase != meshv1alpha1.WavePromoted {
		t.Errorf("healthy wave ended %s, want Promoted", healthy.Phase)
	}
	if breaking.Phase != meshv1alpha1.WaveRolledBack {
		t.Fatalf("breaking wave ended %s, want RolledBack", breaking.Phase)
	}
	if breaking.After.ErrorRate <= 0.05 {
		t.Errorf("breaking wave's agent-measured error rate when its rollback started = %.3f, want above the gate's 0.05", breaking.After.ErrorRate)
	}
	delay := breaking.RollbackStarted.Sub(res.FirstBreach)
	t.Logf("first scrape showing the breach %s, rollback started %s: %v later (gate interval %v)",
		res.FirstBreach.Format(time.TimeOnly), breaking.RollbackStarted.Format(time.TimeOnly), delay, res.GateInterval)
	if delay > 2*res.GateInterval {
		t.Errorf("rollback started %v after the first scrape showing the breach, want within two gate intervals (%v)", delay, 2*res.GateInterval)
	}
	if res.TargetPodsLeft != 0 {
		t.Errorf("%d pod(s) of %s still labelled %s after the rollback, want none", res.TargetPodsLeft, realnode.BreakingNS, realnode.TargetMode)
	}
	if res.AfterRollback.ErrorRate > breaking.Before.ErrorRate+0.01 || math.IsNaN(res.AfterRollback.ErrorRate) {
		t.Errorf("agent error rate in %s after the rollback = %.4f, want back at its baseline %.4f", realnode.BreakingNS,
			res.AfterRollback.ErrorRate, breaking.Before.ErrorRate)
	}
	for _, ns := range []string{realnode.HealthyNS, realnode.BreakingNS} {
		for i, what := range []string{"requests", "5xx"} {
			r := res.Ratio(ns, i)
			t.Logf("%s %s: agent %.0f, client %.0f (ratio %.4f)", ns, what, res.Agent[ns][i], res.Client[ns][i], r)
			if math.Abs(r-1) > 0.01 {
				t.Errorf("%s %s: agent counted %.0f, the load client %.0f: ratio %.4f, want within 1%%", ns, what, res.Agent[ns][i], res.Client[ns][i], r)
			}
		}
	}
	if res.Client[realnode.BreakingNS][1] == 0 {
		t.Error("the load client saw no 5xx from the breaking namespace: the fault never tripped")
	}
	if res.PodsReady != res.PodsTotal {
		t.Errorf("pods ready %d/%d at the end", res.PodsReady, res.PodsTotal)
	}
}
