package bpf_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/bpf/kerneltest"
)

const slowDelay = 40 * time.Millisecond

// setup loads the programs, attaches them to a fresh parent cgroup and
// returns the parent and two children: srv and cli.
func setup(t *testing.T) (objs *bpf.Objects, mnt, srv, cli string) {
	t.Helper()
	mnt = kerneltest.RequireRoot(t)
	parent := kerneltest.Cgroup(t, mnt, kerneltest.RandName("meshshift-test-"))
	srv = kerneltest.Cgroup(t, parent, "srv")
	cli = kerneltest.Cgroup(t, parent, "cli")
	objs, err := bpf.Load(bpf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := objs.Close(); err != nil {
			t.Error(err)
		}
	})
	if _, err := objs.AttachCgroup(parent); err != nil {
		t.Fatal(err)
	}
	if _, err := objs.AttachTracing(); err != nil {
		t.Fatal(err)
	}
	return objs, mnt, srv, cli
}

func httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(slowDelay)
		io.WriteString(w, "slow")
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	return mux // anything else: 404
}

func get(t *testing.T, c *http.Client, url string, want int) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("get %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("get %s: status %d, want %d", url, resp.StatusCode, want)
	}
}

// waitFor polls the counters until cond holds for both cgroups or 10 s pass.
func waitFor(t *testing.T, objs *bpf.Objects, ids []uint64, cond func(m map[uint64]*bpf.Stats) bool) map[uint64]*bpf.Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := objs.Read()
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if m[id] == nil {
				m[id] = &bpf.Stats{}
			}
		}
		if cond(m) || time.Now().After(deadline) {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTCPAndHTTPCountsPerCgroup(t *testing.T) {
	objs, mnt, srvCg, cliCg := setup(t)
	srvID, cliID := kerneltest.ID(t, srvCg), kerneltest.ID(t, cliCg)

	var httpLn, rawLn, prefaceLn, tlsLn, closedLn net.Listener
	kerneltest.InCgroup(t, mnt, srvCg, func() {
		var err error
		for _, ln := range []*net.Listener{&httpLn, &rawLn, &prefaceLn, &tlsLn, &closedLn} {
			if *ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
		}
	})
	closedAddr := closedLn.Addr().String()
	closedLn.Close() // a port nobody listens on: connects are refused

	srv := &http.Server{Handler: httpHandler()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(httpLn) }()
	t.Cleanup(func() { srv.Close(); wg.Wait() })

	serve := func(ln net.Listener, handle func(net.Conn)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() { defer wg.Done(); defer c.Close(); handle(c) }()
			}
		}()
		t.Cleanup(func() { ln.Close() })
	}
	// raw TCP: echo one line.
	serve(rawLn, func(c net.Conn) {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil {
			io.WriteString(c, line)
		}
	})
	// HTTP/2 preface: read until the client closes.
	serve(prefaceLn, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	// TLS: read exactly the ClientHello record, then close.
	serve(tlsLn, func(c net.Conn) {
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		n := int(hdr[3])<<8 | int(hdr[4])
		_, _ = io.CopyN(io.Discard, c, int64(n))
	})

	base := "http://" + httpLn.Addr().String()
	kerneltest.InCgroup(t, mnt, cliCg, func() {
		// Keep-alive: 13 requests on one connection.
		ka := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		for range 5 {
			get(t, ka, base+"/ok", 200)
		}
		for range 3 {
			get(t, ka, base+"/missing", 404)
		}
		for range 2 {
			get(t, ka, base+"/fail", 500)
		}
		for range 3 {
			get(t, ka, base+"/slow", 200)
		}
		ka.CloseIdleConnections()
		// No keep-alive: 4 requests, 4 connections.
		nk := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		for range 2 {
			get(t, nk, base+"/ok", 200)
		}
		for range 2 {
			get(t, nk, base+"/fail", 500)
		}

		// Raw TCP.
		c, err := net.Dial("tcp4", rawLn.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		msg := "hello over raw tcp\n"
		io.WriteString(c, msg)
		if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != msg {
			t.Fatalf("raw echo: %q, %v", got, err)
		}
		c.Close()

		// HTTP/2 connection preface (what gRPC clients send first).
		c, err = net.Dial("tcp4", prefaceLn.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
		c.Close()

		// TLS ClientHello; the server hangs up, so the handshake fails.
		c, err = net.Dial("tcp4", tlsLn.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(c, &tls.Config{ServerName: "example.test", InsecureSkipVerify: true})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := tc.HandshakeContext(ctx); err == nil {
			t.Fatal("tls handshake against a hang-up server succeeded")
		}
		cancel()
		c.Close()

		// A refused connect.
		if c, err := net.Dial("tcp4", closedAddr); err == nil {
			c.Close()
			t.Fatal("connect to a closed port succeeded")
		} else if !errors.Is(err, errConnRefused) && !strings.Contains(err.Error(), "refused") {
			t.Fatalf("connect to a closed port: %v", err)
		}
	})

	const conns = 1 + 4 + 3 // http keep-alive, http one-shot, raw + preface + tls
	m := waitFor(t, objs, []uint64{srvID, cliID}, func(m map[uint64]*bpf.Stats) bool {
		return m[srvID].ConnClosed == conns && m[cliID].ConnClosed == conns &&
			m[srvID].HttpResponses[bpf.SideServer][bpf.Status5xx] == 4 &&
			m[cliID].HttpResponses[bpf.SideClient][bpf.Status5xx] == 4
	})
	s, c := m[srvID], m[cliID]

	type kv struct {
		name      string
		got, want uint64
	}
	checks := []kv{
		{"client active opened", c.ConnActiveOpened, conns},
		{"client passive opened", c.ConnPassiveOpened, 0},
		{"client failed", c.ConnFailed, 1},
		{"client closed", c.ConnClosed, conns},
		{"client resets received", c.ResetsReceived, 1},
		{"client resets sent", c.ResetsSent, 0},
		{"client retransmits", c.Retransmits, 0},
		{"server passive opened", s.ConnPassiveOpened, conns},
		{"server active opened", s.ConnActiveOpened, 0},
		{"server failed", s.ConnFailed, 0},
		{"server closed", s.ConnClosed, conns},
		{"server resets", s.ResetsReceived + s.ResetsSent, 0},
		{"client bytes sent = server bytes received", c.BytesSent, s.BytesReceived},
		{"server bytes sent = client bytes received", s.BytesSent, c.BytesReceived},
		{"active connections", c.ActiveConnections() + s.ActiveConnections(), 0},
	}
	for _, st := range []struct {
		who  string
		s    *bpf.Stats
		side int
	}{{"server", s, bpf.SideServer}, {"client", c, bpf.SideClient}} {
		checks = append(checks,
			kv{st.who + " proto http1", st.s.Proto[bpf.ProtoHTTP1], 5},
			kv{st.who + " proto http2", st.s.Proto[bpf.ProtoHTTP2], 1},
			kv{st.who + " proto tls", st.s.Proto[bpf.ProtoTLS], 1},
			kv{st.who + " proto other", st.s.Proto[bpf.ProtoOther], 1},
			kv{st.who + " requests", st.s.HttpRequests[st.side], 17},
			kv{st.who + " requests other side", st.s.HttpRequests[1-st.side], 0},
			kv{st.who + " 2xx", st.s.HttpResponses[st.side][bpf.Status2xx], 10},
			kv{st.who + " 3xx", st.s.HttpResponses[st.side][bpf.Status3xx], 0},
			kv{st.who + " 4xx", st.s.HttpResponses[st.side][bpf.Status4xx], 3},
			kv{st.who + " 5xx", st.s.HttpResponses[st.side][bpf.Status5xx], 4},
		)
		// Latency: 17 samples; exactly the 3 slow ones at or above the
		// bucket holding the injected delay ([32.768, 65.536) ms).
		var total, slow, above uint64
		slowBucket := 15
		for b, n := range st.s.HttpLatency[st.side] {
			total += n
			if b >= slowBucket {
				slow += n
			}
			if b > slowBucket+1 {
				above += n
			}
		}
		checks = append(checks,
			kv{st.who + " latency samples", total, 17},
			kv{st.who + " latency samples >= 32.768ms", slow, 3},
			kv{st.who + " latency samples >= 131ms", above, 0},
		)
		if sum := time.Duration(st.s.HttpLatencySumNs[st.side]); sum < 3*slowDelay {
			t.Errorf("%s latency sum %v, want >= %v", st.who, sum, 3*slowDelay)
		}
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %d, want %d", ck.name, ck.got, ck.want)
		}
	}
	if c.BytesSent == 0 || s.BytesSent == 0 {
		t.Errorf("bytes: client sent %d, server sent %d; want both > 0", c.BytesSent, s.BytesSent)
	}
	var rtts uint64
	for _, n := range c.Rtt {
		rtts += n
	}
	if rtts != conns {
		t.Errorf("client rtt samples: got %d, want %d", rtts, conns)
	}
	if t.Failed() {
		t.Logf("server: %+v", *s)
		t.Logf("client: %+v", *c)
	}
}

var errConnRefused = fmt.Errorf("connection refused")
