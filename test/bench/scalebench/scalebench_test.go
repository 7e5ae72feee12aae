package main

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

// TestTinyScale runs the whole bench on a tiny cluster (three namespaces,
// thirty pods, one namespace per wave), so that its code keeps working
// against the real control plane, manager binary and Prometheus.
func TestTinyScale(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs the real control plane and Prometheus; run without -short")
	}
	var out bytes.Buffer
	c := config{scale: 0.001, namespaces: 1000, meshObjects: 5000, policies: 3, waveNamespaces: 50,
		rate: 200, loadPods: 50000, workers: 8, settle: time.Second, out: &out}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := run(ctx, c)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{"rss_mib": r.rssMiB, "heap_mib": r.heapMiB, "ready_s": r.readyS,
		"p99_ms": r.p99ms, "wave_s": r.waveS, "rollback_s": r.rollbackS, "plan_s": r.planS} {
		if !(v > 0) || math.IsInf(v, 0) {
			t.Errorf("%s = %v, want a positive figure", name, v)
		}
	}
	last := strings.TrimSpace(out.String())
	last = last[strings.LastIndex(last, "\n")+1:]
	if !strings.HasPrefix(last, "scale: rss_mib=") {
		t.Errorf("last line %q, want the scale: line", last)
	}
}
