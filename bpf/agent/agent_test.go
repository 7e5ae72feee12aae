package agent_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/bpf/agent"
	"github.com/meshshift/meshshift/bpf/kerneltest"
	"github.com/meshshift/meshshift/signals"
)

const (
	serverUID = "0f5c3a2e-8b1d-4c6e-9a7f-1234567890ab"
	clientUID = "7d2e9c41-3f5a-4b8e-a1c2-abcdefabcdef"
	serverCID = "4b825dc642cb6eb9a060e54bf8d69288fbee49044b825dc642cb6eb9a060e54b"
	clientCID = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391e69de29bb2d1d6434b8b29ae"
)

// kubeletTree makes a kubelet-shaped tree below a fresh test cgroup: the
// server pod as the systemd driver lays it out (containerd), the client pod
// as the cgroupfs driver does. It returns the root and both container paths.
func kubeletTree(t *testing.T) (mnt, root, srv, cli string) {
	t.Helper()
	mnt = kerneltest.RequireRoot(t)
	root = kerneltest.Cgroup(t, mnt, kerneltest.RandName("meshshift-test-"))
	srv = kerneltest.Cgroup(t, root, filepath.Join("kubepods.slice", "kubepods-burstable.slice",
		"kubepods-burstable-pod"+strings.ReplaceAll(serverUID, "-", "_")+".slice", "cri-containerd-"+serverCID+".scope"))
	cli = kerneltest.Cgroup(t, root, filepath.Join("kubepods", "besteffort", "pod"+clientUID, clientCID))
	return mnt, root, srv, cli
}

func loadAttached(t *testing.T, root string) *bpf.Objects {
	t.Helper()
	objs, err := bpf.Load(bpf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { objs.Close() })
	if _, err := objs.AttachCgroup(root); err != nil {
		t.Fatal(err)
	}
	if err := objs.StartHTTP2(5 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return objs
}

// traffic serves HTTP from srv and sends ok requests plus fails 5xx from
// cli, each on a new connection.
func traffic(t *testing.T, mnt, srv, cli string, ok, fails int) {
	t.Helper()
	var ln net.Listener
	kerneltest.InCgroup(t, mnt, srv, func() {
		var err error
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	})
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "boom", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	defer func() { hs.Close(); <-done }()
	kerneltest.InCgroup(t, mnt, cli, func() {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		for i := range ok + fails {
			path := "/ok"
			if i >= ok {
				path = "/fail"
			}
			resp, err := c.Get("http://" + ln.Addr().String() + path)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

func findPod(agg *agent.Aggregate, uid string) *agent.PodStats {
	for i := range agg.Pods {
		if agg.Pods[i].UID == uid {
			return &agg.Pods[i]
		}
	}
	return nil
}

func TestAttributionToPodsThroughKubeletTree(t *testing.T) {
	mnt, root, srv, cli := kubeletTree(t)
	objs := loadAttached(t, root)
	pods := agent.StaticPods{
		serverUID: {Namespace: "shop", Name: "web-7d9f-abcde", Workload: "web"},
		clientUID: {Namespace: "shop", Name: "loadgen-0", Workload: "loadgen"},
	}
	col := agent.NewCollector(objs, root, pods, nil)
	col.SetWalkInterval(0)
	traffic(t, mnt, srv, cli, 3, 1)

	var agg *agent.Aggregate
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		if agg, err = col.Collect(); err != nil {
			t.Fatal(err)
		}
		if p := findPod(agg, serverUID); (p != nil && p.Stats.ConnClosed == 4) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s, c := findPod(agg, serverUID), findPod(agg, clientUID)
	if s == nil || c == nil {
		t.Fatalf("pods in aggregate: %+v; want both %s and %s", agg.Pods, serverUID, clientUID)
	}
	if !s.Known || s.Meta.Workload != "web" || !c.Known || c.Meta.Workload != "loadgen" {
		t.Errorf("pod names: server %+v, client %+v", s.Meta, c.Meta)
	}
	if got := s.Stats.ConnPassiveOpened; got != 4 {
		t.Errorf("server pod accepted %d connections, want 4", got)
	}
	if got := c.Stats.ConnActiveOpened; got != 4 {
		t.Errorf("client pod opened %d connections, want 4", got)
	}
	if got := s.Stats.HttpRequests[bpf.SideServer]; got != 4 {
		t.Errorf("server pod requests %d, want 4", got)
	}
	if got := s.Stats.HttpResponses[bpf.SideServer][bpf.Status5xx]; got != 1 {
		t.Errorf("server pod 5xx %d, want 1", got)
	}
	if s.Stats.ConnActiveOpened != 0 || c.Stats.ConnPassiveOpened != 0 {
		t.Errorf("traffic attributed to the wrong pod: server active %d, client passive %d", s.Stats.ConnActiveOpened, c.Stats.ConnPassiveOpened)
	}

	// The real endpoints, served on loopback.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: agent.Handler("node-a", col)}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	base := "http://" + ln.Addr().String()

	metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{
		`meshshift_http_requests_total{namespace="shop",pod="web-7d9f-abcde",protocol="http1",side="server",status_class="2xx",workload="web"} 3`,
		`meshshift_http_requests_total{namespace="shop",pod="web-7d9f-abcde",protocol="http1",side="server",status_class="5xx",workload="web"} 1`,
		`meshshift_tcp_resets_total{direction="received",namespace="shop",pod="loadgen-0",workload="loadgen"} 0`,
		`meshshift_tcp_connections_opened_total{direction="active",namespace="shop",pod="loadgen-0",workload="loadgen"} 4`,
		`meshshift_http_request_duration_seconds_count{namespace="shop",pod="loadgen-0",protocol="http1",side="client",workload="loadgen"} 4`,
		`meshshift_tcp_protocol_connections_total{namespace="shop",pod="web-7d9f-abcde",protocol="http1",workload="web"} 4`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	var snap signals.AgentSnapshot
	if err := json.Unmarshal([]byte(httpGet(t, base+signals.AgentSnapshotPath)), &snap); err != nil {
		t.Fatal(err)
	}
	if snap.Node != "node-a" || len(snap.Workloads) != 2 {
		t.Fatalf("snapshot: %+v", snap)
	}
	web := snap.Workloads[1]
	if web.Workload != "web" || web.Pods != 1 || web.Counters.Server.Requests != 4 || web.Counters.Server.Responses[4] != 1 {
		t.Errorf("snapshot web: %+v", web)
	}

	// The client's container goes away: its counters stay with the pod and
	// its kernel slot is freed.
	cliID := kerneltest.ID(t, cli)
	if err := os.Remove(cli); err != nil {
		t.Fatal(err)
	}
	agg, err = col.Collect()
	if err != nil {
		t.Fatal(err)
	}
	if c := findPod(agg, clientUID); c == nil || c.Stats.ConnActiveOpened != 4 {
		t.Errorf("client pod after its container's cgroup went: %+v", c)
	}
	raw, err := objs.Read()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := raw[cliID]; ok {
		t.Errorf("kernel still has counters for removed cgroup %d", cliID)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("get %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}
