package agent

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/signals"
)

var (
	podLabels   = []string{"namespace", "pod", "workload"}
	statusNames = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}
	sideNames   = [2]string{"server", "client"}
)

func desc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string{}, podLabels...), extra...), nil)
}

var (
	descOpened   = desc("meshshift_tcp_connections_opened_total", "TCP connections established, by direction (active: connected out, passive: accepted).", "direction")
	descFailed   = desc("meshshift_tcp_connections_failed_total", "TCP connects that never established.")
	descClosed   = desc("meshshift_tcp_connections_closed_total", "Established TCP connections closed.")
	descActive   = desc("meshshift_tcp_connections_active", "Established TCP connections not yet closed.")
	descProto    = desc("meshshift_tcp_protocol_connections_total", "TCP connections by the protocol of their first payload.", "protocol")
	descSent     = desc("meshshift_tcp_sent_bytes_total", "TCP payload bytes sent.")
	descRecv     = desc("meshshift_tcp_received_bytes_total", "TCP payload bytes received.")
	descRetrans  = desc("meshshift_tcp_retransmits_total", "TCP segments retransmitted.")
	descResets   = desc("meshshift_tcp_resets_total", "TCP resets, by direction (sent, received).", "direction")
	descRTT      = desc("meshshift_tcp_rtt_seconds", "Smoothed round-trip time of TCP connections, taken when they close.")
	descRequests = desc("meshshift_http_requests_total", "HTTP requests answered, by side (server: served, client: sent), protocol (http1, http2, grpc) and the response's status class (gRPC: OK 2xx, server errors 5xx, other codes 4xx).", "side", "protocol", "status_class")
	descDuration = desc("meshshift_http_request_duration_seconds", "HTTP request latency at the application's socket, by side and protocol: HTTP/1.x from the request's first byte to the response's first byte; HTTP/2 and gRPC from the request's HEADERS to the response's END_STREAM.", "side", "protocol")
	descGRPC     = desc("meshshift_grpc_requests_total", "gRPC calls answered, by side and grpc-status code name.", "side", "grpc_code")
	descDesync   = desc("meshshift_http2_desynchronised_connections_total", "HTTP/2 connections no longer counted because some of their header frames were lost or could not be decoded.")
	descCgroups  = prometheus.NewDesc("meshshift_agent_cgroups_tracked", "Cgroups with counters in the kernel.", nil, nil)
)

// exportedBuckets are the kernel buckets whose upper bounds become Prometheus
// buckets: every other one, powers of four microseconds.
var exportedBuckets = func() []int {
	var b []int
	for i := 1; i < bpf.HistBuckets-1; i += 2 {
		b = append(b, i)
	}
	return b
}()

func histogram(d *prometheus.Desc, counts []uint64, sumSeconds float64, labels ...string) prometheus.Metric {
	var total uint64
	for _, n := range counts {
		total += n
	}
	buckets := make(map[float64]uint64, len(exportedBuckets))
	var cum uint64
	next := 0
	for i, n := range counts {
		cum += n
		if next < len(exportedBuckets) && exportedBuckets[next] == i {
			buckets[float64(bpf.BucketUpperMicros(i))/1e6] = cum
			next++
		}
	}
	return prometheus.MustNewConstHistogram(d, total, sumSeconds, buckets, labels...)
}

// metricsCollector exports the collector's last aggregate.
type metricsCollector struct{ c *Collector }

// Describe implements prometheus.Collector.
func (m metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOpened, descFailed, descClosed, descActive, descProto, descSent, descRecv,
		descRetrans, descResets, descRTT, descRequests, descDuration, descGRPC, descDesync, descCgroups} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m metricsCollector) Collect(ch chan<- prometheus.Metric) {
	agg := m.c.Last()
	if agg == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descCgroups, prometheus.GaugeValue, float64(agg.Cgroups))
	for _, p := range agg.Pods {
		if p.Known {
			emit(ch, &p.Stats, p.Meta.Namespace, p.Meta.Name, p.Meta.Workload)
		}
	}
	emit(ch, &agg.Unattributed, "", "", "unattributed")
}

func emit(ch chan<- prometheus.Metric, s *bpf.Stats, l ...string) {
	c := func(d *prometheus.Desc, v uint64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append(l[:3:3], extra...)...)
	}
	c(descOpened, s.ConnActiveOpened, "active")
	c(descOpened, s.ConnPassiveOpened, "passive")
	c(descFailed, s.ConnFailed)
	c(descClosed, s.ConnClosed)
	ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(s.ActiveConnections()), l...)
	for i, name := range bpf.ProtoNames {
		c(descProto, s.Proto[i], name)
	}
	c(descSent, s.BytesSent)
	c(descRecv, s.BytesReceived)
	c(descRetrans, s.Retransmits)
	c(descResets, s.ResetsSent, "sent")
	c(descResets, s.ResetsReceived, "received")
	if s.ConnClosed > 0 {
		ch <- histogram(descRTT, s.Rtt[:], float64(s.RttSumUs)/1e6, l...)
	}
	for side, sn := range sideNames {
		// A side the pod never used has no HTTP series at all (most pods
		// only serve or only call): absent means no HTTP/1.x seen.
		var responses uint64
		for _, n := range s.HttpResponses[side] {
			responses += n
		}
		if s.HttpRequests[side] == 0 && responses == 0 {
			continue
		}
		for cls := 1; cls < 5; cls++ {
			c(descRequests, s.HttpResponses[side][cls], sn, "http1", statusNames[cls])
		}
		ch <- histogram(descDuration, s.HttpLatency[side][:], float64(s.HttpLatencySumNs[side])/1e9, append(l[:3:3], sn, "http1")...)
	}
	for side, sn := range sideNames {
		for _, p := range []struct {
			name string
			l    *bpf.L7Side
		}{{"http2", &s.L7.HTTP2[side]}, {"grpc", &s.L7.GRPC[side]}} {
			var responses uint64
			for _, n := range p.l.Responses {
				responses += n
			}
			if p.l.Requests == 0 && responses == 0 {
				continue
			}
			for cls := 1; cls < 5; cls++ {
				c(descRequests, p.l.Responses[cls], sn, p.name, statusNames[cls])
			}
			ch <- histogram(descDuration, p.l.Latency[:], float64(p.l.LatencySumNs)/1e9, append(l[:3:3], sn, p.name)...)
			if p.name != "grpc" {
				continue
			}
			for code, n := range p.l.Codes {
				if n > 0 {
					c(descGRPC, n, sn, grpcCodeNames[code])
				}
			}
		}
	}
	if s.L7.Desynchronised > 0 {
		c(descDesync, s.L7.Desynchronised)
	}
}

// grpcCodeNames are gRPC's status code names (as google.golang.org/grpc/codes
// prints them), by code; the last also counts codes gRPC does not define.
var grpcCodeNames = [bpf.GRPCCodes]string{"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
	"Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"}

// AgentCounters converts kernel counters to the snapshot's form.
func AgentCounters(s *bpf.Stats) signals.AgentCounters {
	out := signals.AgentCounters{
		ConnectionsOpened: s.ConnActiveOpened + s.ConnPassiveOpened,
		ConnectionsFailed: s.ConnFailed,
		ConnectionsClosed: s.ConnClosed,
		BytesSent:         s.BytesSent,
		BytesReceived:     s.BytesReceived,
		Retransmits:       s.Retransmits,
		ResetsSent:        s.ResetsSent,
		ResetsReceived:    s.ResetsReceived,
	}
	for i, name := range bpf.ProtoNames {
		if s.Proto[i] > 0 {
			if out.Protocols == nil {
				out.Protocols = map[string]uint64{}
			}
			out.Protocols[name] = s.Proto[i]
		}
	}
	for side, h := range []*signals.AgentHTTP{&out.Server, &out.Client} {
		// HTTP/1.x, HTTP/2 and gRPC together, as the gate's SLIs sum them.
		h.Requests = s.HttpRequests[side]
		h.Responses = s.HttpResponses[side]
		sumNs := s.HttpLatencySumNs[side]
		lat := s.HttpLatency[side]
		for _, l := range []*bpf.L7Side{&s.L7.HTTP2[side], &s.L7.GRPC[side]} {
			h.Requests += l.Requests
			for i := range h.Responses {
				h.Responses[i] += l.Responses[i]
			}
			sumNs += l.LatencySumNs
			for i := range lat {
				lat[i] += l.Latency[i]
			}
		}
		h.LatencySumSeconds = float64(sumNs) / 1e9
		var seen bool
		for _, n := range lat {
			seen = seen || n > 0
		}
		if seen {
			h.LatencyBuckets = append([]uint64(nil), lat[:]...)
		}
	}
	return out
}

// AgentPeers lists the peers of s's accepted connections for the snapshot:
// the signals.MaxAgentPeers busiest (ties: the lower address), sorted by
// address, and how many accepted connections came from no listed peer (those
// left out, and those whose pair the kernel's bounded map evicted).
func AgentPeers(s *bpf.Stats) ([]signals.AgentPeer, uint64) {
	type peer struct {
		ip netip.Addr
		n  uint64
	}
	all := make([]peer, 0, len(s.Peers))
	for ip, n := range s.Peers {
		if n > 0 {
			all = append(all, peer{ip, n})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].ip.Less(all[j].ip)
	})
	if len(all) > signals.MaxAgentPeers {
		all = all[:signals.MaxAgentPeers]
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ip.Less(all[j].ip) })
	var listed uint64
	out := make([]signals.AgentPeer, 0, len(all))
	for _, p := range all {
		out = append(out, signals.AgentPeer{IP: p.ip.String(), Connections: p.n})
		listed += p.n
	}
	var dropped uint64
	if s.ConnPassiveOpened > listed {
		dropped = s.ConnPassiveOpened - listed
	}
	if len(out) == 0 {
		out = nil
	}
	return out, dropped
}

// Snapshot builds the per-workload snapshot of an aggregate.
func Snapshot(node string, agg *Aggregate) *signals.AgentSnapshot {
	snap := &signals.AgentSnapshot{Node: node, Workloads: []signals.AgentWorkload{}}
	if agg == nil {
		return snap
	}
	snap.Time = agg.Time
	type key struct{ ns, wl string }
	sums := map[key]*bpf.Stats{}
	pods := map[key]int{}
	for _, p := range agg.Pods {
		if !p.Known {
			continue
		}
		k := key{p.Meta.Namespace, p.Meta.Workload}
		if sums[k] == nil {
			sums[k] = &bpf.Stats{}
		}
		sums[k].Add(&p.Stats)
		pods[k]++
	}
	for k, s := range sums {
		w := signals.AgentWorkload{Namespace: k.ns, Workload: k.wl, Pods: pods[k], Counters: AgentCounters(s)}
		w.Peers, w.PeersDropped = AgentPeers(s)
		snap.Workloads = append(snap.Workloads, w)
	}
	sort.Slice(snap.Workloads, func(i, j int) bool {
		a, b := snap.Workloads[i], snap.Workloads[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Workload < b.Workload
	})
	snap.Unattributed = AgentCounters(&agg.Unattributed)
	return snap
}

// Handler serves /metrics (the agent's own registry), the JSON snapshot at
// signals.AgentSnapshotPath and /healthz. Each request to the snapshot is
// answered from the last collection.
func Handler(node string, c *Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metricsCollector{c})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc(signals.AgentSnapshotPath, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Snapshot(node, c.Last()))
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if agg := c.Last(); agg == nil || time.Since(agg.Time) > 5*time.Minute {
			http.Error(w, "no recent collection", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	return mux
}
