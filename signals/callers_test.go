package signals_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshshift/meshshift/signals"
)

// fakeAgent serves whatever snapshot it was last given on 127.0.0.1, as a
// node agent serves its own.
type fakeAgent struct {
	mu   sync.Mutex
	snap signals.AgentSnapshot
	srv  *httptest.Server
}

func startFakeAgent(t *testing.T) *fakeAgent {
	t.Helper()
	a := &fakeAgent{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != signals.AgentSnapshotPath {
			http.NotFound(w, r)
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		_ = json.NewEncoder(w).Encode(&a.snap)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeAgent) set(at time.Time, ws ...signals.AgentWorkload) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.snap = signals.AgentSnapshot{Node: "n", Time: at, Workloads: ws}
}

func served(ns, name string, peers ...signals.AgentPeer) signals.AgentWorkload {
	var opened uint64
	for _, p := range peers {
		opened += p.Connections
	}
	return signals.AgentWorkload{Namespace: ns, Workload: name, Pods: 1,
		Counters: signals.AgentCounters{ConnectionsOpened: opened}, Peers: peers}
}

func peer(ip string, n uint64) signals.AgentPeer { return signals.AgentPeer{IP: ip, Connections: n} }

func key(s string) signals.WorkloadKey {
	ns, name, _ := strings.Cut(s, "/")
	return signals.WorkloadKey{Namespace: ns, Name: name}
}

// TestAgentSourceCallers reads two agents' snapshots over HTTP and checks
// that the peers resolve through the pod index to caller workloads, merged
// over nodes, sorted and without duplicates, that addresses of no pod (a
// host-network pod, a node, loopback) and the workload itself are not
// callers, that the window counts feed CallerEdges, and that callers older
// than the caller memory are forgotten.
func TestAgentSourceCallers(t *testing.T) {
	ix := signals.NewPodIPs()
	for _, p := range podsForCallers() {
		ix.Upsert(p)
	}
	a, b := startFakeAgent(t), startFakeAgent(t)
	src := &signals.AgentSource{
		Endpoints: func(context.Context) ([]string, error) { return []string{a.srv.URL, b.srv.URL}, nil },
		Peers:     ix,
	}
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)

	// First read: node a's agent has seen frontend (10.0.0.1) and a
	// host-network pod call orders/api since it started; node b's agent ran
	// long ago (its figures are old).
	a.set(now.Add(-time.Minute), served("orders", "api", peer("10.0.0.1", 5), peer("192.168.0.9", 3)))
	b.set(now.Add(-3*time.Hour), served("orders", "api", peer("10.0.0.3", 1)))
	if err := src.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(src.Snapshot().Workloads); n != 0 {
		t.Fatalf("first read published %d workloads, want none", n)
	}
	// Second read: frontend opened 2 more connections on node a, the cart
	// (10.0.0.2, on node a) 4 and an orders/api pod called its own workload;
	// on node b, frontend's second pod (10.0.0.4) 3 and the old caller
	// 10.0.0.3 (jobs/report) one, but node b's clock says three hours ago.
	a.set(now, served("orders", "api", peer("10.0.0.1", 7), peer("10.0.0.2", 4), peer("10.0.0.5", 2), peer("127.0.0.6", 9), peer("192.168.0.9", 3)))
	b.set(now.Add(-3*time.Hour+time.Minute), served("orders", "api", peer("10.0.0.3", 2), peer("10.0.0.4", 3)))
	if err := src.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	api, ok := src.Snapshot().Lookup("orders", "api")
	if !ok {
		t.Fatalf("no orders/api in %+v", src.Snapshot().Workloads)
	}
	// jobs/report was seen three hours ago by node b's clock: past the
	// default hour of caller memory.
	want := []signals.WorkloadKey{key("shop/cart"), key("shop/frontend")}
	if diff := cmp.Diff(want, api.Callers); diff != "" {
		t.Errorf("callers (-want +got):\n%s", diff)
	}
	// frontend's window: 2 on node a and 3 from its second pod on node b.
	wantEdges := signals.CallerEdges{key("orders/api"): {key("shop/frontend"): 2 + 3, key("shop/cart"): 4}}
	if diff := cmp.Diff(wantEdges, src.CallerEdges()); diff != "" {
		t.Errorf("caller edges (-want +got):\n%s", diff)
	}

	// A longer memory keeps jobs/report; frontend's connections on node b
	// were in node b's window too, so they add up.
	src2 := &signals.AgentSource{Endpoints: src.Endpoints, Peers: ix, CallerMemory: 4 * time.Hour}
	a.set(now.Add(-time.Minute), served("orders", "api", peer("10.0.0.1", 5)))
	b.set(now.Add(-3*time.Hour), served("orders", "api", peer("10.0.0.3", 1), peer("10.0.0.4", 1)))
	_ = src2.Refresh(ctx)
	a.set(now, served("orders", "api", peer("10.0.0.1", 6)))
	b.set(now.Add(-3*time.Hour+time.Minute), served("orders", "api", peer("10.0.0.3", 1), peer("10.0.0.4", 4)))
	if err := src2.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	api, _ = src2.Snapshot().Lookup("orders", "api")
	want = []signals.WorkloadKey{key("jobs/report"), key("shop/frontend")}
	if diff := cmp.Diff(want, api.Callers); diff != "" {
		t.Errorf("callers with 4h memory (-want +got):\n%s", diff)
	}
	wantEdges = signals.CallerEdges{key("orders/api"): {key("shop/frontend"): 1 + 3, key("jobs/report"): 0}}
	if diff := cmp.Diff(wantEdges, src2.CallerEdges()); diff != "" {
		t.Errorf("caller edges with 4h memory (-want +got):\n%s", diff)
	}

	// Without a resolver there are no callers at all.
	bare := &signals.AgentSource{Endpoints: src.Endpoints}
	_ = bare.Refresh(ctx)
	a.set(now.Add(time.Minute), served("orders", "api", peer("10.0.0.1", 9)))
	_ = bare.Refresh(ctx)
	if api, _ := bare.Snapshot().Lookup("orders", "api"); len(api.Callers) != 0 {
		t.Errorf("callers without a resolver: %v", api.Callers)
	}
}

func podsForCallers() []*corev1.Pod {
	host := runningPod("kube-system", "node-exporter-x", "u-host", "DaemonSet", "node-exporter", 0, "192.168.0.9")
	host.Spec.HostNetwork = true
	return []*corev1.Pod{
		runningPod("shop", "frontend-a", "u-f1", "StatefulSet", "frontend", 0, "10.0.0.1"),
		runningPod("shop", "cart-0", "u-c", "StatefulSet", "cart", 0, "10.0.0.2"),
		runningPod("jobs", "report", "u-r", "", "", 0, "10.0.0.3"),
		runningPod("shop", "frontend-b", "u-f2", "StatefulSet", "frontend", 0, "10.0.0.4"),
		runningPod("orders", "api-0", "u-o", "StatefulSet", "api", 0, "10.0.0.5"),
		host,
	}
}

// TestCallersCollector: per callee, the busiest callers get a series each,
// the rest one "other" series, and the metric passes promlint.
func TestCallersCollector(t *testing.T) {
	edges := signals.CallerEdges{
		key("orders/api"): {key("shop/a"): 9, key("shop/b"): 7, key("shop/c"): 7, key("shop/d"): 1, key("shop/e"): 0},
		key("shop/a"):     {key("shop/b"): 2},
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(signals.NewCallersCollector(func() signals.CallerEdges { return edges }, 3)); err != nil {
		t.Fatal(err)
	}
	const want = `
# HELP meshshift_workload_caller_connections Connections a workload accepted from each workload that called it in the traffic source's last window, summed over nodes (0 for a caller seen within the caller memory but not in the last window). Bounded: per workload the 3 busiest callers have a series each; the rest are summed into one series with caller_workload="other".
# TYPE meshshift_workload_caller_connections gauge
meshshift_workload_caller_connections{caller_namespace="",caller_workload="other",namespace="orders",workload="api"} 1
meshshift_workload_caller_connections{caller_namespace="shop",caller_workload="a",namespace="orders",workload="api"} 9
meshshift_workload_caller_connections{caller_namespace="shop",caller_workload="b",namespace="orders",workload="api"} 7
meshshift_workload_caller_connections{caller_namespace="shop",caller_workload="c",namespace="orders",workload="api"} 7
meshshift_workload_caller_connections{caller_namespace="shop",caller_workload="b",namespace="shop",workload="a"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "meshshift_workload_caller_connections"); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	// The default bound.
	many := signals.CallerEdges{key("x/callee"): {}}
	for i := 0; i < 25; i++ {
		many[key("x/callee")][signals.WorkloadKey{Namespace: "y", Name: string(rune('a' + i))}] = uint64(i)
	}
	if n := testutil.CollectAndCount(signals.NewCallersCollector(func() signals.CallerEdges { return many }, 0)); n != signals.MaxCallerSeries+1 {
		t.Errorf("25 callers gave %d series, want %d", n, signals.MaxCallerSeries+1)
	}
}
