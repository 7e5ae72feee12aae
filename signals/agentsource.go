package signals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// AgentSource is the manager's traffic source: it reads every node agent's
// snapshot endpoint and turns the counters into per-workload rates over the
// time between two reads of the same agent, summed over nodes. A node whose
// agent did not answer keeps its last figures with their old SampleTime, so
// WorkloadTraffic.Stale marks them; a node no longer listed is dropped.
//
// Callers: the peers of the connections a workload accepted (at most
// MaxAgentPeers per workload and node, the busiest) are resolved through
// Peers, the pod addresses as they are at the read that sees a peer's count
// grow (an address a newer pod reuses names that pod); addresses no running
// pod holds (nodes, host-network pods, outside the cluster) name no caller.
// Callers are merged over nodes and remembered for CallerMemory; an agent's
// first read counts every peer it saw since it started.
type AgentSource struct {
	// Endpoints lists the agents' base URLs ("http://10.0.0.7:9990"), for
	// example AgentEndpoints over the agent DaemonSet's pods.
	Endpoints func(ctx context.Context) ([]string, error)
	// Client does the requests; nil means a client with a 5 s timeout.
	Client *http.Client
	// Peers resolves the peers of accepted connections (AgentWorkload.Peers)
	// to the workloads that called, for WorkloadTraffic.Callers and
	// CallerEdges; nil leaves Callers empty.
	Peers PeerResolver
	// CallerMemory is how long a caller stays in WorkloadTraffic.Callers
	// after the last read that saw it open a connection; zero means
	// DefaultCallerMemory.
	CallerMemory time.Duration

	mu    sync.Mutex
	nodes map[string]*nodeState // by endpoint
	seen  map[callerEdge]time.Time
	snap  atomic.Pointer[TrafficSnapshot]
	edges atomic.Pointer[CallerEdges]
}

type nodeState struct {
	last   *AgentSnapshot
	deltas map[WorkloadKey]*workloadDelta // from the last two reads
	// callers are the connections each workload accepted from each caller
	// between the last two reads.
	callers map[WorkloadKey]map[WorkloadKey]uint64
}

type workloadDelta struct {
	requests, responses, errors5xx uint64
	opened, retransmits            uint64
	latency                        []uint64
	protocols                      []Protocol
	window                         time.Duration
	at                             time.Time
}

// AgentEndpoints returns the base URLs of the running agent pods that have an
// IP, on port.
func AgentEndpoints(pods []corev1.Pod, port int) []string {
	var out []string
	for i := range pods {
		p := &pods[i]
		if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		out = append(out, "http://"+net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)))
	}
	sort.Strings(out)
	return out
}

// Snapshot returns the last published snapshot (nil before the first Refresh).
func (s *AgentSource) Snapshot() *TrafficSnapshot { return s.snap.Load() }

// Run refreshes every interval until ctx is done. Errors of one round are
// passed to onError (may be nil) and the round's good answers still count.
func (s *AgentSource) Run(ctx context.Context, interval time.Duration, onError func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Refresh(ctx); err != nil && onError != nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh reads every agent once and publishes a new snapshot. It returns
// the errors of the agents that failed, joined.
func (s *AgentSource) Refresh(ctx context.Context) error {
	if s.Endpoints == nil {
		return errors.New("agent source: Endpoints must be set")
	}
	eps, err := s.Endpoints(ctx)
	if err != nil {
		return fmt.Errorf("list agent endpoints: %w", err)
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	type result struct {
		ep   string
		snap *AgentSnapshot
		err  error
	}
	results := make([]result, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snap, err := fetchAgentSnapshot(ctx, client, ep)
			results[i] = result{ep, snap, err}
		}()
	}
	wg.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nodes == nil {
		s.nodes = map[string]*nodeState{}
	}
	listed := map[string]bool{}
	var errs []error
	for _, r := range results {
		listed[r.ep] = true
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		st := s.nodes[r.ep]
		if st == nil {
			st = &nodeState{}
			s.nodes[r.ep] = st
		}
		if st.last != nil && r.snap.Time.After(st.last.Time) {
			st.deltas = deltas(st.last, r.snap)
		}
		if st.last == nil || r.snap.Time.After(st.last.Time) {
			s.observePeers(st, st.last, r.snap)
			st.last = r.snap
		}
	}
	for ep := range s.nodes {
		if !listed[ep] {
			delete(s.nodes, ep)
		}
	}
	now := time.Now()
	edges := s.callerEdges(now)
	s.snap.Store(s.assemble(now, edges))
	s.edges.Store(&edges)
	return errors.Join(errs...)
}

func fetchAgentSnapshot(ctx context.Context, c *http.Client, base string) (*AgentSnapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+AgentSnapshotPath, nil)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", base, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("agent %s: status %d", base, resp.StatusCode)
	}
	var snap AgentSnapshot
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&snap); err != nil {
		return nil, fmt.Errorf("agent %s: decode snapshot: %w", base, err)
	}
	if snap.Time.IsZero() {
		return nil, fmt.Errorf("agent %s: snapshot has no time (agent not collected yet)", base)
	}
	return &snap, nil
}

// sub is cur - prev, or cur when the counter went down (agent restart).
func sub(cur, prev uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

func deltas(prev, cur *AgentSnapshot) map[WorkloadKey]*workloadDelta {
	window := cur.Time.Sub(prev.Time)
	old := map[WorkloadKey]*AgentCounters{}
	for i := range prev.Workloads {
		w := &prev.Workloads[i]
		old[WorkloadKey{w.Namespace, w.Workload}] = &w.Counters
	}
	out := map[WorkloadKey]*workloadDelta{}
	for i := range cur.Workloads {
		w := &cur.Workloads[i]
		k := WorkloadKey{w.Namespace, w.Workload}
		p := old[k]
		if p == nil {
			p = &AgentCounters{}
		}
		c := &w.Counters
		d := &workloadDelta{window: window, at: cur.Time}
		d.requests = sub(c.Server.Requests, p.Server.Requests)
		for cls := range c.Server.Responses {
			d.responses += sub(c.Server.Responses[cls], p.Server.Responses[cls])
		}
		d.errors5xx = sub(c.Server.Responses[4], p.Server.Responses[4])
		d.opened = sub(c.ConnectionsOpened, p.ConnectionsOpened)
		d.retransmits = sub(c.Retransmits, p.Retransmits)
		d.latency = make([]uint64, len(c.Server.LatencyBuckets))
		for b, n := range c.Server.LatencyBuckets {
			var pn uint64
			if b < len(p.Server.LatencyBuckets) {
				pn = p.Server.LatencyBuckets[b]
			}
			d.latency[b] = sub(n, pn)
		}
		for name, n := range c.Protocols {
			if n > 0 {
				d.protocols = append(d.protocols, Protocol(name))
			}
		}
		out[k] = d
	}
	return out
}

func (s *AgentSource) assemble(now time.Time, edges CallerEdges) *TrafficSnapshot {
	type acc struct {
		requests, responses, errors5xx, opened, retransmits float64
		latency                                             []uint64
		protocols                                           map[Protocol]bool
		window                                              time.Duration
		at                                                  time.Time
	}
	accs := map[WorkloadKey]*acc{}
	for _, st := range s.nodes {
		for k, d := range st.deltas {
			a := accs[k]
			if a == nil {
				a = &acc{protocols: map[Protocol]bool{}, at: d.at, window: d.window}
				accs[k] = a
			}
			secs := d.window.Seconds()
			a.requests += float64(d.requests) / secs
			a.opened += float64(d.opened) / secs
			a.retransmits += float64(d.retransmits) / secs
			a.responses += float64(d.responses)
			a.errors5xx += float64(d.errors5xx)
			for len(a.latency) < len(d.latency) {
				a.latency = append(a.latency, 0)
			}
			for b, n := range d.latency {
				a.latency[b] += n
			}
			for _, p := range d.protocols {
				a.protocols[p] = true
			}
			if d.at.Before(a.at) {
				a.at = d.at // the oldest node decides staleness
			}
			if d.window > a.window {
				a.window = d.window
			}
		}
	}
	snap := &TrafficSnapshot{Time: now, Workloads: map[WorkloadKey]WorkloadTraffic{}}
	for k, a := range accs {
		t := WorkloadTraffic{
			RequestRate:    a.requests,
			ConnectionRate: a.opened,
			RetransmitRate: a.retransmits,
			P99Latency:     LatencyQuantile(a.latency, 0.99),
			SampleTime:     a.at,
			Window:         a.window,
		}
		if a.responses > 0 {
			t.ErrorRate = a.errors5xx / a.responses
		}
		for p := range a.protocols {
			t.Protocols = append(t.Protocols, p)
		}
		sort.Slice(t.Protocols, func(i, j int) bool { return t.Protocols[i] < t.Protocols[j] })
		if callers := edges[k]; len(callers) > 0 {
			t.Callers = sortedCallers(callers)
		}
		snap.Workloads[k] = t
	}
	return snap
}

// LatencyQuantile estimates quantile q (0..1) of an agent latency histogram
// (AgentHTTP.LatencyBuckets), interpolating linearly inside the bucket; zero
// when the histogram is empty.
func LatencyQuantile(buckets []uint64, q float64) time.Duration {
	var total uint64
	for _, n := range buckets {
		total += n
	}
	if total == 0 || q <= 0 || math.IsNaN(q) {
		return 0
	}
	if q > 1 {
		q = 1
	}
	rank := q * float64(total)
	var cum float64
	for i, n := range buckets {
		if n == 0 {
			continue
		}
		if cum+float64(n) >= rank {
			lo := 0.0
			if i > 0 {
				lo = math.Ldexp(1, i)
			}
			hi := math.Ldexp(1, i+1)
			us := lo + (hi-lo)*(rank-cum)/float64(n)
			return time.Duration(us * float64(time.Microsecond))
		}
		cum += float64(n)
	}
	return time.Duration(math.Ldexp(1, len(buckets)) * float64(time.Microsecond))
}
