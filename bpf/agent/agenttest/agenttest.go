// Package agenttest runs a real node agent for tests of what reads it: the
// eBPF programs attached to a test cgroup tree, a collector that attributes
// one pod, the agent's HTTP endpoints on 127.0.0.1, and an HTTP workload in
// the pod's cgroup driven from a client cgroup. It needs root (see
// kerneltest) and is imported only by tests.
package agenttest

import (
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/bpf/agent"
	"github.com/meshshift/meshshift/bpf/kerneltest"
)

// Node is one running agent and its workload; everything is removed when the
// test ends.
type Node struct {
	// Collector is the agent's collector; Burst collects after the traffic.
	Collector *agent.Collector
	// Server serves the agent's /metrics and /snapshot; close it to take the agent down.
	Server *http.Server
	// Addr is the agent's host:port on 127.0.0.1.
	Addr string
	// App is the workload's host:port: /ok answers 200, /fail 503.
	App string

	mnt, client string
}

// Start loads and attaches the programs to a new cgroup tree holding the pod
// uid (attributed to pod) and a client cgroup, and starts the agent's server
// and the workload.
func Start(t testing.TB, uid string, pod agent.PodMeta) *Node {
	t.Helper()
	mnt := kerneltest.RequireRoot(t)
	root := kerneltest.Cgroup(t, mnt, kerneltest.RandName("meshshift-test-"))
	srvCg := kerneltest.Cgroup(t, root, filepath.Join("kubepods", "pod"+uid))
	n := &Node{mnt: mnt, client: kerneltest.Cgroup(t, root, "loadgen")}

	objs, err := bpf.Load(bpf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = objs.Close() })
	if _, err := objs.AttachCgroup(root); err != nil {
		t.Fatal(err)
	}
	if err := objs.StartHTTP2(0); err != nil {
		t.Fatal(err)
	}
	n.Collector = agent.NewCollector(objs, root, agent.StaticPods{uid: pod}, nil)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.Addr = ln.Addr().String()
	n.Server = &http.Server{Handler: agent.Handler("node-a", n.Collector), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = n.Server.Serve(ln) }()
	t.Cleanup(func() { _ = n.Server.Close() })

	var appLn net.Listener
	kerneltest.InCgroup(t, mnt, srvCg, func() {
		if appLn, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	})
	n.App = appLn.Addr().String()
	app := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})}
	go func() { _ = app.Serve(appLn) }()
	t.Cleanup(func() { _ = app.Close() })
	return n
}

// Collect reads the kernel's counters once, as the agent does on its schedule.
func (n *Node) Collect(t testing.TB) {
	t.Helper()
	if _, err := n.Collector.Collect(); err != nil {
		t.Fatal(err)
	}
}

// Burst sends ok requests to /ok, then fail to /fail, each on a new
// connection from the client cgroup, and collects once they have passed the
// kernel's hooks.
func (n *Node) Burst(t testing.TB, ok, fail int) {
	t.Helper()
	kerneltest.InCgroup(t, n.mnt, n.client, func() {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		for i := range ok + fail {
			path := "/ok"
			if i >= ok {
				path = "/fail"
			}
			resp, err := c.Get("http://" + n.App + path)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	})
	time.Sleep(100 * time.Millisecond) // let the last server writes pass the egress hook
	n.Collect(t)
}
