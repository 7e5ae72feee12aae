package policies

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// TestConcurrentDecide runs decisions of different inputs on one policy from
// many goroutines (the pooled activations must not leak between them) while
// the index they read is updated.
func TestConcurrentDecide(t *testing.T) {
	p := mustCompile(t, "conc", 1, v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeSidecar), Rules: benchRules})
	mk := func(app string, rate float64) Input {
		in := baseInput(p)
		in.Workload.Labels = map[string]string{"app": app}
		in.HasTraffic = true
		in.Traffic = signals.WorkloadTraffic{RequestRate: rate, P99Latency: 30 * time.Millisecond, SampleTime: testNow,
			Protocols: []signals.Protocol{signals.ProtocolHTTP1}}
		return in
	}
	inputs := []Input{mk("a", 500), mk("b", 1), mk("c", 500)}
	inputs[2].Workload.Labels["canary"] = "cilium"
	inputs[2].Traffic.RequestRate = 1
	want := make([]Decision, len(inputs))
	for i, in := range inputs {
		want[i] = Decide(in)
	}
	if want[0].Rule != "rule:high-rate-l4" || want[1].Rule != RuleDefault || want[2].Rule != "rule:cilium-canary" {
		t.Fatalf("reference decisions: %s, %s, %s", want[0].Rule, want[1].Rule, want[2].Rule)
	}
	ix := signals.NewIndex("")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ix.UpsertService("shop", "a", map[string]string{"app": "a", "n": string(rune('a' + i%26))})
		}
	}()
	var dwg sync.WaitGroup
	for g := range 8 {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			for n := range 300 {
				i := (g + n) % len(inputs)
				in := inputs[i]
				in.Features = ix.FeaturesFor("shop", in.Workload.Labels)
				if d := Decide(in); !cmp.Equal(d, want[i]) {
					t.Errorf("goroutine %d: decision differs:\n%s", g, cmp.Diff(want[i], d))
					return
				}
			}
		}()
	}
	dwg.Wait()
	close(stop)
	wg.Wait()
}
