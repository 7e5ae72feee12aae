package signals_test

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/bpf/agent"
	"github.com/meshshift/meshshift/bpf/kerneltest"
	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/test/prom"
)

// TestPromSourceOverRealAgentMetrics: a real agent counts real traffic, a
// real Prometheus scrapes it, and PromSource's queries give the workload's
// error rate and protocols.
func TestPromSourceOverRealAgentMetrics(t *testing.T) {
	const uid = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"
	mnt := kerneltest.RequireRoot(t)
	root := kerneltest.Cgroup(t, mnt, kerneltest.RandName("meshshift-test-"))
	srvCg := kerneltest.Cgroup(t, root, filepath.Join("kubepods", "pod"+uid))
	cliCg := kerneltest.Cgroup(t, root, "loadgen")
	objs, err := bpf.Load(bpf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { objs.Close() })
	if _, err := objs.AttachCgroup(root); err != nil {
		t.Fatal(err)
	}
	col := agent.NewCollector(objs, root, agent.StaticPods{uid: {Namespace: "shop", Name: "web-1", Workload: "web"}}, nil)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: agent.Handler("node-a", col)}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	p := prom.Start(t, ln.Addr().String())
	pc, err := api.NewClient(api.Config{Address: p.URL})
	if err != nil {
		t.Fatal(err)
	}
	src := &signals.PromSource{API: promv1.NewAPI(pc), Window: 20 * time.Second}

	var srvLn net.Listener
	kerneltest.InCgroup(t, mnt, srvCg, func() {
		if srvLn, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	})
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})}
	go app.Serve(srvLn)
	t.Cleanup(func() { app.Close() })
	burst := func(ok, fail int) {
		kerneltest.InCgroup(t, mnt, cliCg, func() {
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			for i := range ok + fail {
				path := "/ok"
				if i >= ok {
					path = "/fail"
				}
				resp, err := c.Get("http://" + srvLn.Addr().String() + path)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
		time.Sleep(100 * time.Millisecond)
		if _, err := col.Collect(); err != nil {
			t.Fatal(err)
		}
	}
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
