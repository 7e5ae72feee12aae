package agent_test

import (
	"context"
	"math"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/meshshift/meshshift/bpf/agent"
	"github.com/meshshift/meshshift/test/prom"
)

// TestRealPrometheusReadsAgentMetrics: a real Prometheus scrapes the agent's
// /metrics while real traffic runs through the programs, and the SLO gate's
// kind of PromQL reads the exact counts back by namespace.
func TestRealPrometheusReadsAgentMetrics(t *testing.T) {
	mnt, root, srv, cli := kubeletTree(t)
	objs := loadAttached(t, root)
	col := agent.NewCollector(objs, root, agent.StaticPods{
		serverUID: {Namespace: "shop", Name: "web-1", Workload: "web"},
		clientUID: {Namespace: "load", Name: "loadgen-0", Workload: "loadgen"},
	}, nil)
	if _, err := col.Collect(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: agent.Handler("node-a", col)}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	p := prom.Start(t, ln.Addr().String())
	c, err := api.NewClient(api.Config{Address: p.URL})
	if err != nil {
		t.Fatal(err)
	}
	q := promv1.NewAPI(c)

	traffic(t, mnt, srv, cli, 6, 2)
	time.Sleep(100 * time.Millisecond)
	if _, err := col.Collect(); err != nil {
		t.Fatal(err)
	}
	eq := func(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
	for _, tc := range []struct {
		query string
		ok    func(float64) bool
		want  string
	}{
		{`sum(meshshift_http_requests_total{namespace="shop",side="server"})`, eq(8), "8"},
		{`sum(meshshift_http_requests_total{namespace="shop",side="server",status_class="5xx"})`, eq(2), "2"},
		{`sum(meshshift_http_request_duration_seconds_count{namespace="shop",side="server"})`, eq(8), "8"},
		{`sum(meshshift_tcp_connections_opened_total{namespace="shop",direction="passive"})`, eq(8), "8"},
		{`sum(meshshift_tcp_connections_opened_total{namespace="load"})`, eq(8), "8"},
		{`sum(meshshift_tcp_protocol_connections_total{namespace="load",protocol="http1"})`, eq(8), "8"},
		{`sum(meshshift_http_requests_total{namespace="load",side="client",status_class="2xx"})`, eq(6), "6"},
		{`sum(meshshift_tcp_resets_total{namespace=~"shop|load"})`, eq(0), "0"},
		// The server never called out: no client-side series at all.
		{`count(meshshift_http_requests_total{namespace="shop",side="client"})`, math.IsNaN, "no data"},
		{`histogram_quantile(0.99, sum by (le) (meshshift_http_request_duration_seconds_bucket{namespace="shop",side="server"}))`,
			func(v float64) bool { return v > 0 && v < 1 }, "a loopback latency in (0, 1) s"},
	} {
		waitFor(t, q, tc.query, tc.ok, tc.want)
	}
}

func waitFor(t *testing.T, q promv1.API, query string, ok func(float64) bool, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last float64
	for time.Now().Before(deadline) {
		last = math.NaN()
		res, _, _, err := q.Query(context.Background(), query, time.Now())
		if err == nil {
			if vec, isVec := res.(model.Vector); isVec && len(vec) == 1 {
				last = float64(vec[0].Value)
			}
		}
		if ok(last) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("%s = %v, want %s", query, last, want)
}
