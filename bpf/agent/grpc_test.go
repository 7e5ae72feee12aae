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
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/bpf/agent"
	"github.com/meshshift/meshshift/bpf/kerneltest"
	"github.com/meshshift/meshshift/test/prom"
)

// statusServer answers Check with the code its service names.
type statusServer struct {
	healthpb.UnimplementedHealthServer
}

func (statusServer) Check(_ context.Context, r *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch r.Service {
	case "unavailable":
		return nil, status.Error(codes.Unavailable, "down")
	case "notfound":
		return nil, status.Error(codes.NotFound, "no such thing")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// grpcTraffic makes calls from cgroup cli to a grpc-go server in cgroup srv
// over one h2c connection, n calls per service name.
func grpcTraffic(t *testing.T, mnt, srv, cli string, n map[string]int) {
	t.Helper()
	var ln net.Listener
	kerneltest.InCgroup(t, mnt, srv, func() {
		var err error
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	})
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, statusServer{})
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { s.Stop(); <-done })
	kerneltest.InCgroup(t, mnt, cli, func() {
		conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := healthpb.NewHealthClient(conn)
		for svc, k := range n {
			for range k {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
				cancel()
				if svc == "ok" && err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

// TestGateSLIsIncludeGRPC: HTTP/1 and gRPC calls to one pod; a real
// Prometheus reads the gate's kind of queries (error rate's numerator and
// denominator, the p99's histogram) with the gRPC calls counted in them,
// server errors (Unavailable) as 5xx and NotFound as 4xx.
func TestGateSLIsIncludeGRPC(t *testing.T) {
	mnt, root, srv, cli := kubeletTree(t)
	objs := loadAttached(t, root)
	col := agent.NewCollector(objs, root, agent.StaticPods{
		serverUID: {Namespace: "shop", Name: "web-1", Workload: "web"},
		clientUID: {Namespace: "load", Name: "loadgen-0", Workload: "loadgen"},
	}, nil)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: agent.Handler("node-a", col)}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	traffic(t, mnt, srv, cli, 6, 2)
	grpcTraffic(t, mnt, srv, cli, map[string]int{"ok": 10, "unavailable": 3, "notfound": 2})
	srvID := kerneltest.ID(t, srv)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := objs.Read()
		if err != nil {
			t.Fatal(err)
		}
		var answered uint64
		if s := m[srvID]; s != nil {
			for _, n := range s.L7.GRPC[bpf.SideServer].Responses {
				answered += n
			}
		}
		if answered >= 15 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := col.Collect(); err != nil {
		t.Fatal(err)
	}
	p := prom.Start(t, ln.Addr().String())
	c, err := api.NewClient(api.Config{Address: p.URL})
	if err != nil {
		t.Fatal(err)
	}
	q := promv1.NewAPI(c)
	eq := func(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
	for _, tc := range []struct {
		query string
		ok    func(float64) bool
		want  string
	}{
		{`sum(meshshift_http_requests_total{namespace="shop",side="server"})`, eq(8 + 15), "23"},
		{`sum(meshshift_http_requests_total{namespace="shop",side="server",status_class="5xx"})`, eq(2 + 3), "5"},
		{`sum(meshshift_http_requests_total{namespace="shop",side="server",protocol="grpc",status_class="4xx"})`, eq(2), "2"},
		{`sum(meshshift_http_request_duration_seconds_count{namespace="shop",side="server"})`, eq(23), "23"},
		{`sum(meshshift_grpc_requests_total{namespace="shop",side="server",grpc_code="Unavailable"})`, eq(3), "3"},
		{`sum(meshshift_grpc_requests_total{namespace="load",side="client",grpc_code="OK"})`, eq(10), "10"},
		{`count(meshshift_http2_desynchronised_connections_total{namespace=~"shop|load"})`, math.IsNaN, "no data"},
	} {
		waitFor(t, q, tc.query, tc.ok, tc.want)
	}
}
