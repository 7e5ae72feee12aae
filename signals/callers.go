package signals

import (
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PeerResolver names the workload of the pod holding a peer address
// (*PodIPs implements it); ok is false when no running pod holds it.
type PeerResolver interface {
	Resolve(ip string) (WorkloadKey, bool)
}

// DefaultCallerMemory is how long AgentSource keeps a caller in
// WorkloadTraffic.Callers after the last read in which it was seen opening a
// connection, when AgentSource.CallerMemory is zero: a caller that calls
// once in a while still orders the waves.
const DefaultCallerMemory = time.Hour

// MaxCallerSeries bounds meshshift_workload_caller_connections: per callee
// workload, the MaxCallerSeries busiest callers get a series of their own and
// the rest are summed into one series with caller_workload="other" (and an
// empty caller_namespace), so a workload has at most MaxCallerSeries+1 series.
const MaxCallerSeries = 10

// CallerOther is the caller_workload label value of the series that sums the
// callers beyond MaxCallerSeries.
const CallerOther = "other"

// CallerEdges are, per callee workload, its callers and the connections it
// accepted from each in the source's last window, summed over nodes (zero for
// a caller remembered from an earlier read). Do not change it.
type CallerEdges map[WorkloadKey]map[WorkloadKey]uint64

// callerEdge is one callee and one of its callers.
type callerEdge struct{ callee, caller WorkloadKey }

// observePeers records the callers one agent's new snapshot shows: the
// peers whose connection count grew since prev (every peer with a
// connection when prev is nil: the agent's first read, counted since it
// started), resolved through s.Peers to workloads other than the callee.
// Only a read with a previous one fills the node's window counts. Called with
// s.mu held.
func (s *AgentSource) observePeers(st *nodeState, prev, cur *AgentSnapshot) {
	st.callers = nil
	if s.Peers == nil {
		return
	}
	if s.seen == nil {
		s.seen = map[callerEdge]time.Time{}
	}
	old := map[WorkloadKey]map[string]uint64{}
	if prev != nil {
		for i := range prev.Workloads {
			w := &prev.Workloads[i]
			m := make(map[string]uint64, len(w.Peers))
			for _, p := range w.Peers {
				m[p.IP] = p.Connections
			}
			old[WorkloadKey{w.Namespace, w.Workload}] = m
		}
	}
	for i := range cur.Workloads {
		w := &cur.Workloads[i]
		callee := WorkloadKey{w.Namespace, w.Workload}
		for _, p := range w.Peers {
			n := sub(p.Connections, old[callee][p.IP])
			if n == 0 {
				continue
			}
			caller, ok := s.Peers.Resolve(p.IP)
			if !ok || caller == callee {
				continue
			}
			e := callerEdge{callee, caller}
			if cur.Time.After(s.seen[e]) {
				s.seen[e] = cur.Time
			}
			if prev == nil {
				continue
			}
			if st.callers == nil {
				st.callers = map[WorkloadKey]map[WorkloadKey]uint64{}
			}
			m := st.callers[callee]
			if m == nil {
				m = map[WorkloadKey]uint64{}
				st.callers[callee] = m
			}
			m[caller] += n
		}
	}
}

// callerEdges forgets the callers not seen for longer than the caller memory
// at now and returns the rest with the last window's counts. Called with s.mu
// held.
func (s *AgentSource) callerEdges(now time.Time) CallerEdges {
	memory := s.CallerMemory
	if memory <= 0 {
		memory = DefaultCallerMemory
	}
	out := CallerEdges{}
	for e, at := range s.seen {
		if now.Sub(at) > memory {
			delete(s.seen, e)
			continue
		}
		m := out[e.callee]
		if m == nil {
			m = map[WorkloadKey]uint64{}
			out[e.callee] = m
		}
		var n uint64
		for _, st := range s.nodes {
			n += st.callers[e.callee][e.caller]
		}
		m[e.caller] = n
	}
	return out
}

// sortedCallers are the keys of m sorted by namespace and name.
func sortedCallers(m map[WorkloadKey]uint64) []WorkloadKey {
	out := make([]WorkloadKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return keyLess(out[i], out[j]) })
	return out
}

func keyLess(a, b WorkloadKey) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// CallerEdges returns the callers the last Refresh published (nil before the
// first one).
func (s *AgentSource) CallerEdges() CallerEdges {
	if p := s.edges.Load(); p != nil {
		return *p
	}
	return nil
}

// NewCallersCollector returns the collector of
// meshshift_workload_caller_connections over what edges returns at each
// scrape (for example AgentSource.CallerEdges). Per callee, the max busiest
// callers (most connections in the last window, then by namespace and name)
// get a series each and the rest one series with caller_workload="other";
// max below 1 means MaxCallerSeries.
func NewCallersCollector(edges func() CallerEdges, max int) prometheus.Collector {
	if max < 1 {
		max = MaxCallerSeries
	}
	desc := prometheus.NewDesc("meshshift_workload_caller_connections",
		"Connections a workload accepted from each workload that called it in the traffic source's last window, "+
			"summed over nodes (0 for a caller seen within the caller memory but not in the last window). "+
			fmt.Sprintf("Bounded: per workload the %d busiest callers have a series each; the rest are summed into one series with caller_workload=%q.", max, CallerOther),
		[]string{"namespace", "workload", "caller_namespace", "caller_workload"}, nil)
	return &callersCollector{edges: edges, max: max, desc: desc}
}

type callersCollector struct {
	edges func() CallerEdges
	max   int
	desc  *prometheus.Desc
}

func (c *callersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *callersCollector) Collect(ch chan<- prometheus.Metric) {
	for callee, callers := range c.edges() {
		keys := sortedCallers(callers)
		sort.SliceStable(keys, func(i, j int) bool { return callers[keys[i]] > callers[keys[j]] })
		var rest uint64
		for i, k := range keys {
			if i >= c.max {
				rest += callers[k]
				continue
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(callers[k]),
				callee.Namespace, callee.Name, k.Namespace, k.Name)
		}
		if len(keys) > c.max {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(rest),
				callee.Namespace, callee.Name, "", CallerOther)
		}
	}
}
