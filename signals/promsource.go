package signals

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync/atomic"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// PromSource is the traffic source for large clusters: instead of reading
// every agent, it asks Prometheus (which scrapes the agents) for each
// workload's rates over Window, with PromQL over the agent's metrics
// (server side: what the workload serves).
type PromSource struct {
	// API is a Prometheus HTTP API client.
	API promv1.API
	// Window is the rate window (at least twice the scrape interval).
	Window time.Duration
	// Now is the evaluation time; nil means time.Now.
	Now func() time.Time

	snap atomic.Pointer[TrafficSnapshot]
}

// Snapshot returns the last published snapshot (nil before the first Refresh).
func (s *PromSource) Snapshot() *TrafficSnapshot { return s.snap.Load() }

// PromQueries are the queries PromSource runs, by the figure they fill; %s is
// the rate window.
var PromQueries = map[string]string{
	"requests":    `sum by (namespace, workload) (rate(meshshift_http_requests_total{side="server"}[%s]))`,
	"errors":      `sum by (namespace, workload) (rate(meshshift_http_requests_total{side="server",status_class="5xx"}[%s]))`,
	"p99":         `histogram_quantile(0.99, sum by (namespace, workload, le) (rate(meshshift_http_request_duration_seconds_bucket{side="server"}[%s])))`,
	"connections": `sum by (namespace, workload) (rate(meshshift_tcp_connections_opened_total[%s]))`,
	"retransmits": `sum by (namespace, workload) (rate(meshshift_tcp_retransmits_total[%s]))`,
	"protocols":   `sum by (namespace, workload, protocol) (increase(meshshift_tcp_protocol_connections_total[%s])) > 0`,
}

// Refresh runs the queries once and publishes a new snapshot. A failed query
// fails the refresh and keeps the previous snapshot: no data is never a pass.
func (s *PromSource) Refresh(ctx context.Context) error {
	if s.API == nil {
		return errors.New("prometheus source: API must be set")
	}
	if s.Window < time.Second {
		return fmt.Errorf("prometheus source: window %v: must be at least 1s", s.Window)
	}
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	win := model.Duration(s.Window).String()
	type acc struct {
		t        WorkloadTraffic
		requests float64
		errors   float64
		protos   map[Protocol]bool
	}
	accs := map[WorkloadKey]*acc{}
	get := func(m model.Metric) *acc {
		k := WorkloadKey{Namespace: string(m["namespace"]), Name: string(m["workload"])}
		a := accs[k]
		if a == nil {
			a = &acc{protos: map[Protocol]bool{}}
			accs[k] = a
		}
		return a
	}
	for _, name := range []string{"requests", "errors", "p99", "connections", "retransmits", "protocols"} {
		res, _, _, err := s.API.Query(ctx, fmt.Sprintf(PromQueries[name], win), now)
		if err != nil {
			return fmt.Errorf("prometheus query %s: %w", name, err)
		}
		vec, ok := res.(model.Vector)
		if !ok {
			return fmt.Errorf("prometheus query %s: got %s, want a vector", name, res.Type())
		}
		for _, smp := range vec {
			if smp.Metric["workload"] == "unattributed" && smp.Metric["namespace"] == "" {
				continue
			}
			v := float64(smp.Value)
			a := get(smp.Metric)
			switch name {
			case "requests":
				a.requests = v
			case "errors":
				a.errors = v
			case "p99":
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					a.t.P99Latency = time.Duration(v * float64(time.Second))
				}
			case "connections":
				a.t.ConnectionRate = v
			case "retransmits":
				a.t.RetransmitRate = v
			case "protocols":
				a.protos[Protocol(smp.Metric["protocol"])] = true
			}
		}
	}
	snap := &TrafficSnapshot{Time: now, Workloads: map[WorkloadKey]WorkloadTraffic{}}
	for k, a := range accs {
		t := a.t
		t.RequestRate = a.requests
		if a.requests > 0 {
			t.ErrorRate = a.errors / a.requests
		}
		for p := range a.protos {
			t.Protocols = append(t.Protocols, p)
		}
		sort.Slice(t.Protocols, func(i, j int) bool { return t.Protocols[i] < t.Protocols[j] })
		t.SampleTime, t.Window = now, s.Window
		snap.Workloads[k] = t
	}
	s.snap.Store(snap)
	return nil
}
