package bpf_test

import (
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/bpf/kerneltest"
)

// TestIPv6HTTPCounts runs keep-alive HTTP/1.1 over ::1: the programs parse
// IPv6 headers the same way.
func TestIPv6HTTPCounts(t *testing.T) {
	objs, mnt, srvCg, cliCg := setup(t)
	srvID, cliID := kerneltest.ID(t, srvCg), kerneltest.ID(t, cliCg)
	var ln net.Listener
	kerneltest.InCgroup(t, mnt, srvCg, func() {
		var err error
		if ln, err = net.Listen("tcp6", "[::1]:0"); err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		}
	})
	srv := &http.Server{Handler: httpHandler()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); wg.Wait() })

	base := "http://" + ln.Addr().String()
	kerneltest.InCgroup(t, mnt, cliCg, func() {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		for range 3 {
			get(t, c, base+"/ok", 200)
		}
		get(t, c, base+"/nope", 404)
		c.CloseIdleConnections()
	})
	m := waitFor(t, objs, []uint64{srvID, cliID}, func(m map[uint64]*bpf.Stats) bool {
		return m[srvID].ConnClosed == 1 && m[cliID].ConnClosed == 1
	})
	s, c := m[srvID], m[cliID]
	for _, ck := range []struct {
		name      string
		got, want uint64
	}{
		{"server accepted", s.ConnPassiveOpened, 1},
		{"client connected", c.ConnActiveOpened, 1},
		{"server requests", s.HttpRequests[bpf.SideServer], 4},
		{"client requests", c.HttpRequests[bpf.SideClient], 4},
		{"server 2xx", s.HttpResponses[bpf.SideServer][bpf.Status2xx], 3},
		{"server 4xx", s.HttpResponses[bpf.SideServer][bpf.Status4xx], 1},
		{"client 4xx", c.HttpResponses[bpf.SideClient][bpf.Status4xx], 1},
		{"server http1 connections", s.Proto[bpf.ProtoHTTP1], 1},
		{"bytes client to server", c.BytesSent, s.BytesReceived},
	} {
		if ck.got != ck.want {
			t.Errorf("%s: got %d, want %d", ck.name, ck.got, ck.want)
		}
	}
}
