package signals_test

import (
	"context"
	"math"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/meshshift/meshshift/bpf/agent"
	"github.com/meshshift/meshshift/bpf/agent/agenttest"
	"github.com/meshshift/meshshift/signals"
)

func TestLatencyQuantile(t *testing.T) {
	tests := []struct {
		name    string
		buckets []uint64
		q       float64
		want    time.Duration
	}{
		{"empty", nil, 0.99, 0},
		{"all in 32-64ms bucket, p50 mid", bucketAt(15, 100), 0.5, time.Duration(49152) * time.Microsecond},
		{"p99 reaches the slow tail", append(bucketAt(3, 98), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2), 0.99, time.Duration(49152) * time.Microsecond},
		{"p100 is the top of the last used bucket", bucketAt(4, 5), 1, 32 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := signals.LatencyQuantile(tt.buckets, tt.q); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func bucketAt(i int, n uint64) []uint64 {
	b := make([]uint64, i+1)
	b[i] = n
	return b
}

// TestAgentSourceReadsRealAgents runs a real agent (programs attached to a
// test cgroup, collector, HTTP endpoints on 127.0.0.1) next to an agent that
// is down, and checks the rates, the error rate, the caller (the peer of the
// accepted connections resolved through the pod addresses) and the staleness
// marking.
func TestAgentSourceReadsRealAgents(t *testing.T) {
	const uid = "3a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	node := agenttest.Start(t, uid, agent.PodMeta{Namespace: "shop", Name: "web-1", Workload: "web"})
	col := node.Collector
	down, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + down.Addr().String()
	down.Close()

	// The test's client connects from 127.0.0.1: a running pod holding that
	// address is the caller the agent's peers resolve to.
	ix := signals.NewPodIPs()
	ix.Upsert(runningPod("shop", "loadgen", "u-loadgen", "", "", 0, "127.0.0.1"))
	src := &signals.AgentSource{Endpoints: func(context.Context) ([]string, error) {
		return []string{"http://" + node.Addr, downURL}, nil
	}, Peers: ix}
	ctx := context.Background()

	node.Collect(t)
	if err := src.Refresh(ctx); err == nil {
		t.Error("refresh with one agent down returned no error")
	}
	if n := len(src.Snapshot().Workloads); n != 0 {
		t.Errorf("first read: %d workloads, want none (rates need two reads)", n)
	}

	// Workload traffic: 6 requests on new connections, 2 of them 5xx.
	node.Burst(t, 4, 2)
	_ = src.Refresh(ctx)
	snap := src.Snapshot()
	web, ok := snap.Lookup("shop", "web")
	if !ok {
		t.Fatalf("snapshot has no shop/web: %+v", snap.Workloads)
	}
	agg := col.Last()
	secs := web.Window.Seconds()
	if web.Window <= 0 || !web.SampleTime.Equal(agg.Time) {
		t.Fatalf("window %v, sample time %v (agent collected at %v)", web.Window, web.SampleTime, agg.Time)
	}
	if got, want := web.RequestRate*secs, 6.0; math.Abs(got-want) > 1e-6 {
		t.Errorf("requests in window: %v, want %v", got, want)
	}
	if got, want := web.ConnectionRate*secs, 6.0; math.Abs(got-want) > 1e-6 {
		t.Errorf("connections in window: %v, want %v", got, want)
	}
	if math.Abs(web.ErrorRate-2.0/6) > 1e-9 {
		t.Errorf("error rate %v, want 1/3", web.ErrorRate)
	}
	if !web.HasProtocol(signals.ProtocolHTTP1) || len(web.Protocols) != 1 {
		t.Errorf("protocols %v, want [http1]", web.Protocols)
	}
	if web.P99Latency <= 0 || web.P99Latency > time.Second {
		t.Errorf("p99 %v, want a loopback latency", web.P99Latency)
	}
	if want := []signals.WorkloadKey{{Namespace: "shop", Name: "loadgen"}}; !slices.Equal(web.Callers, want) {
		t.Errorf("callers %v, want %v (the peers of the accepted connections, resolved)", web.Callers, want)
	}
	if n := src.CallerEdges()[signals.WorkloadKey{Namespace: "shop", Name: "web"}][signals.WorkloadKey{Namespace: "shop", Name: "loadgen"}]; n != 6 {
		t.Errorf("connections from shop/loadgen in the window: %d, want 6", n)
	}
	if web.Stale(time.Now(), time.Minute) {
		t.Error("fresh sample marked stale")
	}

	// The agent goes down: its figures stay, marked by their age.
	node.Server.Close()
	if err := src.Refresh(ctx); err == nil {
		t.Error("refresh with every agent down returned no error")
	}
	web2, ok := src.Snapshot().Lookup("shop", "web")
	if !ok || !web2.SampleTime.Equal(web.SampleTime) {
		t.Fatalf("after the agent went down: %+v, %v", web2, ok)
	}
	if !web2.Stale(web.SampleTime.Add(2*time.Minute), time.Minute) {
		t.Error("two-minute-old sample not stale at one minute")
	}
}
