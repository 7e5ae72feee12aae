package webhook

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestDrainMovesCallersOff checks what a leaving replica relies on: once
// draining, the caller's next review goes out on a new connection (which the
// Service routes elsewhere), over HTTP/2 (the API server's default) and
// HTTP/1.1, and every review is still answered.
func TestDrainMovesCallersOff(t *testing.T) {
	for _, h2 := range []bool{true, false} {
		name := "http1.1"
		if h2 {
			name = "http2"
		}
		t.Run(name, func(t *testing.T) {
			d := &Drain{}
			var conns atomic.Int32
			srv := httptest.NewUnstartedServer(d.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, "ok")
			})))
			srv.EnableHTTP2 = h2
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			c := srv.Client()
			get := func() string {
				t.Helper()
				resp, err := c.Get(srv.URL)
				if err != nil {
					t.Fatalf("review: %v", err)
				}
				defer func() { _ = resp.Body.Close() }()
				b, err := io.ReadAll(resp.Body)
				if err != nil || string(b) != "ok" || resp.StatusCode != http.StatusOK {
					t.Fatalf("answer %d %q %v, want 200 ok", resp.StatusCode, b, err)
				}
				if h2 != (resp.ProtoMajor == 2) {
					t.Fatalf("protocol %s, want HTTP/2 %v", resp.Proto, h2)
				}
				return resp.Header.Get("Connection")
			}
			for i := 0; i < 3; i++ {
				if v := get(); v != "" {
					t.Fatalf("Connection %q before draining", v)
				}
			}
			if n := conns.Load(); n != 1 {
				t.Fatalf("%d connections for 3 reviews before draining, want 1 (keep-alive)", n)
			}
			d.Start()
			for i := 0; i < 3; i++ {
				get()
			}
			// Each answer while draining ends its connection: the first
			// review went on the old connection, the next two each needed
			// a new one.
			if n := conns.Load(); n != 3 {
				t.Fatalf("%d connections after 3 reviews while draining, want 3 (the old one, then one new per review)", n)
			}
		})
	}
}
