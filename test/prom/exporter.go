package prom

import (
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Traffic is what the exporter adds to one namespace's series at every scrape.
type Traffic struct {
	// Requests per scrape; ErrorRatio of them get status class 5xx.
	Requests   int
	ErrorRatio float64
	// Latency of every request, in seconds.
	Latency float64
	// Connections opened per scrape; RetransmitRatio and ResetRatio per connection.
	Connections     int
	RetransmitRatio float64
	ResetRatio      float64
}

// DefaultTraffic is healthy traffic: 100 requests, no errors, 20 ms, 20 connections.
var DefaultTraffic = Traffic{Requests: 100, Latency: 0.02, Connections: 20}

// latencyBuckets are the upper bounds of the request duration histogram.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

type nsSeries struct {
	traffic                Traffic
	requests, errors       float64
	buckets                []float64 // cumulative, one per bound plus +Inf
	sum                    float64
	conns, retrans, resets float64
}

// Exporter serves node-agent-style series per namespace and advances them at
// every scrape, so Prometheus sees steady rates.
type Exporter struct {
	// Addr is host:port, for Prometheus' targets.
	Addr string

	mu        sync.Mutex
	ns        map[string]*nsSeries
	scrapes   int
	changed   bool
	changedAt time.Time
	srv       *http.Server
	lis       net.Listener
}

// NewExporter listens on 127.0.0.1 and stops when t ends.
func NewExporter(t testing.TB) *Exporter {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("exporter listen: %v", err)
	}
	e := &Exporter{Addr: lis.Addr().String(), ns: map[string]*nsSeries{}, lis: lis}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", e.serve)
	e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = e.srv.Serve(lis) }()
	t.Cleanup(e.Stop)
	return e
}

// Set sets a namespace's traffic from the next scrape on. The first scrape
// that serves it is remembered (ChangeScrapedAt).
func (e *Exporter) Set(namespace string, tr Traffic) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.ns[namespace]
	if !ok {
		s = &nsSeries{buckets: make([]float64, len(latencyBuckets)+1)}
		e.ns[namespace] = s
	}
	s.traffic = tr
	e.changed, e.changedAt = true, time.Time{}
}

// Remove stops exporting a namespace's series: Prometheus marks them stale
// at the next scrape, and queries over them return no data.
func (e *Exporter) Remove(namespace string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.ns, namespace)
	e.changed, e.changedAt = true, time.Time{}
}

// ChangeScrapedAt is when Prometheus first scraped the latest Set; zero until then.
func (e *Exporter) ChangeScrapedAt() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changedAt
}

// Scrapes counts the scrapes served.
func (e *Exporter) Scrapes() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.scrapes
}

// Stop closes the exporter: Prometheus sees the target down and its series go stale.
func (e *Exporter) Stop() { _ = e.srv.Close() }

func (e *Exporter) serve(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	e.scrapes++
	if e.changed {
		e.changed, e.changedAt = false, time.Now()
	}
	names := make([]string, 0, len(e.ns))
	for n := range e.ns {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("# TYPE meshshift_http_requests_total counter\n")
	for _, n := range names {
		s := e.ns[n]
		tr := s.traffic
		s.requests += float64(tr.Requests)
		s.errors += float64(tr.Requests) * tr.ErrorRatio
		for i, le := range latencyBuckets {
			if tr.Latency <= le {
				s.buckets[i] += float64(tr.Requests)
			}
		}
		s.buckets[len(latencyBuckets)] += float64(tr.Requests)
		s.sum += float64(tr.Requests) * tr.Latency
		s.conns += float64(tr.Connections)
		s.retrans += float64(tr.Connections) * tr.RetransmitRatio
		s.resets += float64(tr.Connections) * tr.ResetRatio
		fmt.Fprintf(&b, "meshshift_http_requests_total{namespace=%q,side=\"server\",status_class=\"2xx\"} %s\n", n, f(s.requests-s.errors))
		fmt.Fprintf(&b, "meshshift_http_requests_total{namespace=%q,side=\"server\",status_class=\"5xx\"} %s\n", n, f(s.errors))
	}
	b.WriteString("# TYPE meshshift_http_request_duration_seconds histogram\n")
	for _, n := range names {
		s := e.ns[n]
		for i, le := range latencyBuckets {
			fmt.Fprintf(&b, "meshshift_http_request_duration_seconds_bucket{namespace=%q,side=\"server\",le=%q} %s\n", n, f(le), f(s.buckets[i]))
		}
		fmt.Fprintf(&b, "meshshift_http_request_duration_seconds_bucket{namespace=%q,side=\"server\",le=\"+Inf\"} %s\n", n, f(s.buckets[len(latencyBuckets)]))
		fmt.Fprintf(&b, "meshshift_http_request_duration_seconds_sum{namespace=%q,side=\"server\"} %s\n", n, f(s.sum))
		fmt.Fprintf(&b, "meshshift_http_request_duration_seconds_count{namespace=%q,side=\"server\"} %s\n", n, f(s.buckets[len(latencyBuckets)]))
	}
	for _, m := range []struct {
		name string
		v    func(*nsSeries) float64
	}{
		{"meshshift_tcp_connections_opened_total", func(s *nsSeries) float64 { return s.conns }},
		{"meshshift_tcp_retransmits_total", func(s *nsSeries) float64 { return s.retrans }},
		{"meshshift_tcp_resets_total", func(s *nsSeries) float64 { return s.resets }},
	} {
		fmt.Fprintf(&b, "# TYPE %s counter\n", m.name)
		for _, n := range names {
			fmt.Fprintf(&b, "%s{namespace=%q} %s\n", m.name, n, f(m.v(e.ns[n])))
		}
	}
	e.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write([]byte(b.String()))
}

func f(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
