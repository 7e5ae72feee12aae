package bpf_test

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/bpf/kerneltest"
)

// A keep-alive connection established before the programs were attached has
// no entry in the connection table (sock_ops never saw it): its state goes to
// socket storage, and its requests count like those of a connection made
// afterwards, which uses the table.
func TestHTTPOnConnectionsFromBeforeAttach(t *testing.T) {
	mnt := kerneltest.RequireRoot(t)
	parent := kerneltest.Cgroup(t, mnt, kerneltest.RandName("meshshift-test-"))
	srvCg := kerneltest.Cgroup(t, parent, "srv")
	cliCg := kerneltest.Cgroup(t, parent, "cli")
	srvID, cliID := kerneltest.ID(t, srvCg), kerneltest.ID(t, cliCg)
	objs, err := bpf.Load(bpf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := objs.Close(); err != nil {
			t.Error(err)
		}
	})

	var ln net.Listener
	kerneltest.InCgroup(t, mnt, srvCg, func() {
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	})
	var conns atomic.Int32
	srv := &http.Server{Handler: httpHandler(), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); wg.Wait() })

	base := "http://" + ln.Addr().String()
	kerneltest.InCgroup(t, mnt, cliCg, func() {
		old := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		get(t, old, base+"/ok", 200) // before: not counted
		if _, err := objs.AttachCgroup(parent); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			get(t, old, base+"/ok", 200)
		}
		get(t, old, base+"/fail", 500)
		fresh := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		for range 2 {
			get(t, fresh, base+"/ok", 200)
		}
		old.CloseIdleConnections()
		fresh.CloseIdleConnections()
	})
	if n := conns.Load(); n != 2 {
		t.Fatalf("server saw %d connections, want 2 (one from before the attach, one after)", n)
	}

	m := waitFor(t, objs, []uint64{srvID, cliID}, func(m map[uint64]*bpf.Stats) bool {
		return m[srvID].HttpResponses[bpf.SideServer][bpf.Status2xx] >= 5 && m[cliID].HttpResponses[bpf.SideClient][bpf.Status2xx] >= 5
	})
	for _, c := range []struct {
		name string
		s    *bpf.Stats
		side int
	}{{"server", m[srvID], bpf.SideServer}, {"client", m[cliID], bpf.SideClient}} {
		if got := c.s.HttpRequests[c.side]; got != 6 {
			t.Errorf("%s: %d requests, want 6", c.name, got)
		}
		if got := c.s.HttpResponses[c.side][bpf.Status2xx]; got != 5 {
			t.Errorf("%s: %d 2xx responses, want 5", c.name, got)
		}
		if got := c.s.HttpResponses[c.side][bpf.Status5xx]; got != 1 {
			t.Errorf("%s: %d 5xx responses, want 1", c.name, got)
		}
		var lat uint64
		for _, n := range c.s.HttpLatency[c.side] {
			lat += n
		}
		if lat != 6 {
			t.Errorf("%s: %d latency samples, want 6", c.name, lat)
		}
		if got := c.s.Proto[bpf.ProtoHTTP1]; got != 2 {
			t.Errorf("%s: %d HTTP/1 connections, want 2", c.name, got)
		}
	}
	if got := m[srvID].ConnPassiveOpened; got != 1 {
		t.Errorf("server: %d passive opens, want 1 (the connection made after the attach)", got)
	}
	if got := m[cliID].ConnActiveOpened; got != 1 {
		t.Errorf("client: %d active opens, want 1", got)
	}
}
