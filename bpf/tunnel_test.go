package bpf_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/bpf/kerneltest"
)

// TestHTTPTunnelsStopCounting: after a CONNECT is answered, or after 101
// Switching Protocols, the bytes on the connection are no longer HTTP/1.x
// and must not count as requests; an interim 100 Continue is not a response.
func TestHTTPTunnelsStopCounting(t *testing.T) {
	objs, mnt, srvCg, cliCg := setup(t)
	srvID, cliID := kerneltest.ID(t, srvCg), kerneltest.ID(t, cliCg)
	var ln net.Listener
	kerneltest.InCgroup(t, mnt, srvCg, func() {
		var err error
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { ln.Close() })
	// The server answers each message it reads with the next scripted reply;
	// client messages end in "|".
	replies := make(chan []string, 3)
	go func() {
		for script := range replies {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r := bufio.NewReader(c)
			for _, reply := range script {
				if _, err := r.ReadString('|'); err != nil {
					break
				}
				io.WriteString(c, reply)
			}
			io.Copy(io.Discard, r)
			c.Close()
		}
	}()
	exchange := func(lines, script []string) {
		t.Helper()
		replies <- script
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		for i, l := range lines {
			io.WriteString(c, l)
			want := script[i]
			got := make([]byte, len(want))
			if _, err := io.ReadFull(r, got); err != nil || string(got) != want {
				t.Fatalf("reply %d: %q, %v; want %q", i, got, err, want)
			}
		}
		c.Close()
	}
	kerneltest.InCgroup(t, mnt, cliCg, func() {
		// CONNECT, then TLS-looking and request-looking bytes in the tunnel.
		exchange(
			[]string{"CONNECT db.example:443 HTTP/1.1\r\nHost: db.example:443\r\n\r\n|", "\x16\x03\x01 hello through the tunnel|", "GET /inside HTTP/1.1|"},
			[]string{"HTTP/1.1 200 Connection established\r\n\r\n", "\x16\x03\x03 server hello back\n", "HTTP/1.1 404 inside\n"})
		// Upgrade to websocket-like frames.
		exchange(
			[]string{"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n|", "frame one from the client|", "frame two from the client|"},
			[]string{"HTTP/1.1 101 Switching Protocols\r\n\r\n", "HTTP/1.1 500 looks like a status but is a frame\n", "frame\n"})
		// 100 Continue, then the body, then the final response.
		exchange(
			[]string{"POST /upload HTTP/1.1\r\nExpect: 100-continue\r\n\r\n|", strings.Repeat("b", 40) + "|"},
			[]string{"HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"})
	})
	m := waitFor(t, objs, []uint64{srvID, cliID}, func(m map[uint64]*bpf.Stats) bool {
		return m[srvID].ConnClosed == 3 && m[cliID].ConnClosed == 3
	})
	for _, st := range []struct {
		who  string
		s    *bpf.Stats
		side int
	}{{"server", m[srvID], bpf.SideServer}, {"client", m[cliID], bpf.SideClient}} {
		r := st.s.HttpResponses[st.side]
		if st.s.HttpRequests[st.side] != 3 || r[bpf.Status2xx] != 2 || r[bpf.Status4xx] != 0 || r[bpf.Status5xx] != 0 || r[bpf.Status1xx] != 0 {
			t.Errorf("%s: requests %d, responses by class %v; want 3 requests, 2 answered 2xx, nothing else",
				st.who, st.s.HttpRequests[st.side], r)
		}
		if st.s.Proto[bpf.ProtoHTTP1] != 3 {
			t.Errorf("%s: %d http1 connections, want 3", st.who, st.s.Proto[bpf.ProtoHTTP1])
		}
	}
}
