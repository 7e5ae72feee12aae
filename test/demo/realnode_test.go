//go:build realnodedemo

package demo_test

import (
	"math"
	"os"
	"testing"
	"time"

	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/test/realnode"
)

// TestDemoRealNode is `make demo`, built only with the realnodedemo tag (in
// `make test` the same scenario runs as test/realnode's end-to-end test): meshshift installed from the shipped
// overlay and image onto a real node, the test app's real traffic measured
// by the real agent, and a two-wave MeshMigration whose breaking wave the
// gate rolls back. It prints a timeline with the agent's figures per wave
// and ends with one summary line.
func TestDemoRealNode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the real-node demo needs root (a real kubelet and containerd); `make demo-sim` runs without")
	}
	p := &printer{w: os.Stdout, start: time.Now()}
	p.say("meshshift demo on a real node: containerd + kubelet + kube-proxy, meshshift from config/default and `make image`")
	c := harness.Start(t, harness.Options{RealNode: &harness.NodeOptions{Meshshift: true}})
	for _, ph := range c.Node.Phases() {
		p.say("node %-10s %v", ph.Name, ph.Took.Round(time.Millisecond))
	}
	res, err := realnode.Run(t, c, p.say)
	if err != nil {
		t.Fatal(err)
	}
	p.say("timeline (agent-measured, %v window, per wave):", realnode.Gate().Window.Duration)
	migrated, rolledBack := 0, 0
	for _, w := range res.Waves {
		p.say("  wave %-8s ns=%-7s before flip: %s", w.Name, w.Namespace, w.Before)
		end := "end of bake"
		if !w.RollbackStarted.IsZero() {
			end = "breach     "
			rolledBack++
		} else if w.Phase == "Promoted" {
			migrated++
		}
		p.say("  wave %-8s ns=%-7s %s: %s  → %s", w.Name, w.Namespace, end, w.After, w.Phase)
	}
	p.say("  after rollback ns=%-7s %s", realnode.BreakingNS, res.AfterRollback)
	p.say("  first scrape showing the breach %s; rollback started %v later (gate interval %v)",
		res.FirstBreach.Format(time.TimeOnly), res.Waves[len(res.Waves)-1].RollbackStarted.Sub(res.FirstBreach).Round(100*time.Millisecond), res.GateInterval)
	worst := 1.0
	for _, ns := range []string{realnode.HealthyNS, realnode.BreakingNS} {
		r := res.Ratio(ns, 0)
		if math.Abs(r-1) > math.Abs(worst-1) {
			worst = r
		}
	}
	p.say("demo: waves=%d migrated=%d rolled_back=%d pods_ready=%d/%d agent_vs_client=%.2fx",
		len(res.Waves), migrated, rolledBack, res.PodsReady, res.PodsTotal, worst)
}
