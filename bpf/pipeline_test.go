package bpf_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/bpf/kerneltest"
)

// pipelined writes raw HTTP/1.1 requests (each element of writes one write),
// then reads one response per method in methods (the requests' methods, in
// order) and returns their status codes.
func pipelined(t *testing.T, addr string, writes []string, methods ...string) []int {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, w := range writes {
		if _, err := io.WriteString(c, w); err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(c)
	var codes []int
	for _, m := range methods {
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			t.Fatalf("read response %d: %v", len(codes)+1, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	return codes
}

func req(method, path string) string {
	return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: test\r\nUser-Agent: pipeline\r\n\r\n", method, path)
}

// TestHTTP1Pipelining sends several requests before reading the first
// response: all in one write, one write each, with a request that has a body,
// and against a server that answers a whole batch in one write. Every request
// and every response is counted, on both sides.
func TestHTTP1Pipelining(t *testing.T) {
	objs, mnt, srvCg, cliCg := setup(t)
	srvID, cliID := kerneltest.ID(t, srvCg), kerneltest.ID(t, cliCg)

	var httpLn, batchLn net.Listener
	kerneltest.InCgroup(t, mnt, srvCg, func() {
		var err error
		if httpLn, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if batchLn, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	})
	srv := &http.Server{Handler: httpHandler()}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.Serve(httpLn) }()
	// The batch server reads six requests, then answers them in one write.
	batchStatus := []int{200, 404, 503, 200, 302, 500}
	go func() {
		defer wg.Done()
		for {
			c, err := batchLn.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			var out strings.Builder
			for i := range batchStatus {
				r, err := http.ReadRequest(br)
				if err != nil {
					break
				}
				_, _ = io.Copy(io.Discard, r.Body)
				body := "x"
				if r.Method == http.MethodHead {
					body = ""
				}
				fmt.Fprintf(&out, "HTTP/1.1 %d %s\r\nContent-Length: 1\r\n\r\n%s", batchStatus[i], http.StatusText(batchStatus[i]), body)
			}
			_, _ = io.WriteString(c, out.String())
			c.Close()
		}
	}()
	t.Cleanup(func() { srv.Close(); batchLn.Close(); wg.Wait() })

	post := "POST /ok HTTP/1.1\r\nHost: test\r\nContent-Length: 11\r\n\r\nhello world"
	want := map[int]uint64{} // status class index -> responses
	var requests uint64
	count := func(codes []int) {
		for _, c := range codes {
			want[c/100-1]++
			requests++
		}
	}
	kerneltest.InCgroup(t, mnt, cliCg, func() {
		// Five requests in one write.
		all := req("GET", "/ok") + req("GET", "/missing") + req("HEAD", "/ok") + req("GET", "/fail") + req("DELETE", "/ok")
		count(pipelined(t, httpLn.Addr().String(), []string{all}, "GET", "GET", "HEAD", "GET", "DELETE"))
		// Four requests, one write each, before any response is read.
		count(pipelined(t, httpLn.Addr().String(), []string{req("GET", "/ok"), req("GET", "/fail"), req("GET", "/missing"), req("GET", "/ok")}, "GET", "GET", "GET", "GET"))
		// A request with a body, then two more in the same write.
		count(pipelined(t, httpLn.Addr().String(), []string{post, req("GET", "/ok") + req("GET", "/missing")}, "POST", "GET", "GET"))
		// Six requests; the six responses arrive in one segment.
		six := req("GET", "/a") + req("GET", "/b") + req("HEAD", "/c") + req("GET", "/d") + req("GET", "/e") + req("GET", "/f")
		codes := pipelined(t, batchLn.Addr().String(), []string{six}, "GET", "GET", "HEAD", "GET", "GET", "GET")
		for i, c := range codes {
			if c != batchStatus[i] {
				t.Fatalf("batch response %d: status %d, want %d", i, c, batchStatus[i])
			}
		}
		count(codes)
	})

	m := waitFor(t, objs, []uint64{srvID, cliID}, func(m map[uint64]*bpf.Stats) bool {
		return m[srvID].ConnClosed == 4 && m[cliID].ConnClosed == 4
	})
	for _, st := range []struct {
		who  string
		s    *bpf.Stats
		side int
	}{{"server", m[srvID], bpf.SideServer}, {"client", m[cliID], bpf.SideClient}} {
		if got := st.s.HttpRequests[st.side]; got != requests {
			t.Errorf("%s requests: got %d, want %d", st.who, got, requests)
		}
		var samples uint64
		for _, n := range st.s.HttpLatency[st.side] {
			samples += n
		}
		if samples != requests {
			t.Errorf("%s latency samples: got %d, want %d", st.who, samples, requests)
		}
		for cls := range 5 {
			if got := st.s.HttpResponses[st.side][cls]; got != want[cls] {
				t.Errorf("%s %dxx: got %d, want %d", st.who, cls+1, got, want[cls])
			}
		}
		if t.Failed() {
			t.Logf("%s: requests %v responses %v", st.who, st.s.HttpRequests, st.s.HttpResponses)
		}
	}
}
