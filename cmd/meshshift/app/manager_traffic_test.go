package app

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/meshshift/meshshift/bpf/agent"
	"github.com/meshshift/meshshift/bpf/agent/agenttest"
	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/test/harness"
)

func TestTrafficFlagsRejectBadValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags trafficFlags
		want  string
	}{
		{"unknown source", trafficFlags{source: "kafka", interval: time.Second}, `flag --traffic-source "kafka": must be one of agents, prometheus, none`},
		{"interval too short", trafficFlags{source: trafficAgents, interval: time.Millisecond}, "flag --traffic-interval 1ms: must be at least 1s"},
		{"bad selector", trafficFlags{source: trafficAgents, interval: time.Second, agentSelector: "a in (", agentPort: 9990}, `flag --agent-selector "a in ("`},
		{"bad port", trafficFlags{source: trafficAgents, interval: time.Second, agentSelector: "a=b", agentPort: 70000}, "flag --agent-port 70000: must be 1-65535"},
		{"prometheus without url", trafficFlags{source: trafficPrometheus, interval: time.Second}, "needs --traffic-prometheus-url or --prometheus-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.flags.setup(nil, "meshshift-system", "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("setup = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	src, err := (&trafficFlags{source: trafficNone, interval: time.Second}).setup(nil, "x", "")
	if err != nil || src != nil {
		t.Fatalf("--traffic-source=none: source %v, err %v; want no source and no error", src, err)
	}
}

// TestManagerTrafficFromRealAgent wires the manager's traffic loop the way
// `meshshift manager` does: it finds a real node agent through its pod in the
// API server, reads its snapshot endpoint, and what the webhook reads then
// shows the workload's live request and error rates.
func TestManagerTrafficFromRealAgent(t *testing.T) {
	const uid = "5b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	c := harness.Start(t, harness.Options{})
	node := agenttest.Start(t, uid, agent.PodMeta{Namespace: "shop", Name: "web-1", Workload: "web"})
	_, portStr, err := net.SplitHostPort(node.Addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "meshshift-system"}}); err != nil {
		t.Fatal(err)
	}
	// The agent's pod, as the DaemonSet would make it; and one not running yet,
	// which must be left out.
	for _, name := range []string{"agent-a", "agent-pending"} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "meshshift-system", Name: name, Labels: map[string]string{"app.kubernetes.io/component": "agent"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "meshshift:dev"}}},
		}
		if err := c.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		if name == "agent-a" {
			pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1", PodIPs: []corev1.PodIP{{IP: "127.0.0.1"}}}
			if err := c.Client.Status().Update(ctx, pod); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The client that calls shop/web: a pod holding the loopback address
	// too, created after the agent pod, so the manager's pod address index
	// names it (the newer pod) as the caller of the connections the agent
	// saw from 127.0.0.1.
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // creation times have one-second resolution
	loadgen := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "loadgen"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "loadgen", Image: "loadgen:dev"}}},
	}
	if err := c.Client.Create(ctx, loadgen); err != nil {
		t.Fatal(err)
	}
	loadgen.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1", PodIPs: []corev1.PodIP{{IP: "127.0.0.1"}}}
	if err := c.Client.Status().Update(ctx, loadgen); err != nil {
		t.Fatal(err)
	}

	mgr, err := ctrl.NewManager(c.Config, ctrl.Options{Scheme: newScheme(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	flags := trafficFlags{source: trafficAgents, interval: time.Second, agentSelector: "app.kubernetes.io/component=agent", agentPort: port}
	traffic, err := flags.setup(mgr, "meshshift-system", "")
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() { stop(); <-done })

	// The agent collects on its own schedule in a real node; here the test
	// collects while the workload serves 12 requests, 4 of them 5xx.
	node.Collect(t)
	time.Sleep(1500 * time.Millisecond) // the loop reads the agent once before the traffic
	node.Burst(t, 8, 4)

	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(context.Context) (bool, error) {
		snap := traffic()
		if snap == nil {
			return false, nil
		}
		web, ok := snap.Lookup("shop", "web")
		if !ok || web.RequestRate <= 0 {
			return false, nil
		}
		if got := web.ErrorRate; got < 0.333 || got > 0.334 {
			t.Fatalf("error rate read through the manager = %v, want 4/12", got)
		}
		if len(web.Callers) == 0 {
			return false, nil // the pod address index may still be syncing
		}
		if want := []signals.WorkloadKey{{Namespace: "shop", Name: "loadgen"}}; !slices.Equal(web.Callers, want) {
			t.Fatalf("callers of shop/web read through the manager = %v, want %v", web.Callers, want)
		}
		t.Logf("manager read shop/web from agent pod 127.0.0.1:%s: %.2f req/s, error rate %.3f, window %v, callers %v",
			strconv.Itoa(port), web.RequestRate, web.ErrorRate, web.Window, web.Callers)
		return true, nil
	})
	if err != nil {
		t.Fatalf("the manager's traffic snapshot never showed shop/web with its caller: %v (last %+v)", err, traffic())
	}
	// The caller metric, as the manager's /metrics serves it.
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "meshshift_workload_caller_connections" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["namespace"] == "shop" && l["workload"] == "web" && l["caller_namespace"] == "shop" && l["caller_workload"] == "loadgen" {
				found = true
				if v := m.GetGauge().GetValue(); v < 1 || v > 12 {
					t.Errorf("meshshift_workload_caller_connections shop/web <- shop/loadgen = %v, want 1-12 (the burst's connections in the window)", v)
				}
			}
		}
	}
	if !found {
		t.Error("no meshshift_workload_caller_connections series for shop/web called by shop/loadgen")
	}
}
