package signals_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/meshshift/meshshift/bpf/agent"
	"github.com/meshshift/meshshift/bpf/agent/agenttest"
	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/test/prom"
)

// TestPromSourceOverRealAgentMetrics: a real agent counts real traffic, a
// real Prometheus scrapes it, and PromSource's queries give the workload's
// error rate and protocols.
func TestPromSourceOverRealAgentMetrics(t *testing.T) {
	const uid = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"
	node := agenttest.Start(t, uid, agent.PodMeta{Namespace: "shop", Name: "web-1", Workload: "web"})
	p := prom.Start(t, node.Addr)
	pc, err := api.NewClient(api.Config{Address: p.URL})
	if err != nil {
		t.Fatal(err)
	}
	src := &signals.PromSource{API: promv1.NewAPI(pc), Window: 20 * time.Second}

	burst := func(ok, fail int) { node.Burst(t, ok, fail) }
	// The first burst creates the series; rates see the second one.
	ctx := context.Background()
	burst(2, 1)
	// Wait until Prometheus has scraped the first burst.
	for deadline := time.Now().Add(30 * time.Second); ; {
		res, _, _, err := src.API.Query(ctx, `sum(meshshift_http_requests_total{namespace="shop",side="server"})`, time.Now())
		if vec, ok := res.(model.Vector); err == nil && ok && len(vec) == 1 && vec[0].Value == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus never scraped the first burst: %v %v", res, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	burst(6, 3)

	deadline := time.Now().Add(30 * time.Second)
	var web signals.WorkloadTraffic
	for {
		if err := src.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		var ok bool
		web, ok = src.Snapshot().Lookup("shop", "web")
		if ok && web.RequestRate > 0 && math.Abs(web.ErrorRate-1.0/3) < 0.01 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shop/web never showed an error rate of 1/3: %+v (found %v)", web, ok)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !web.HasProtocol(signals.ProtocolHTTP1) {
		t.Errorf("protocols %v, want http1", web.Protocols)
	}
	if web.ConnectionRate <= 0 || web.P99Latency <= 0 || web.P99Latency > time.Second {
		t.Errorf("connection rate %v, p99 %v; want > 0 and a loopback latency", web.ConnectionRate, web.P99Latency)
	}
	if web.Window != 20*time.Second || web.Stale(time.Now(), time.Minute) {
		t.Errorf("window %v, sample time %v", web.Window, web.SampleTime)
	}
	if err := (&signals.PromSource{API: src.API}).Refresh(ctx); err == nil {
		t.Error("a source without a window refreshed")
	}
}
