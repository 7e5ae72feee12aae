package bpf

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// HistBuckets is the number of buckets of every kernel histogram. Bucket i
// holds values in [2^i, 2^(i+1)) microseconds (bucket 0 also holds 0 and 1);
// the last bucket also holds everything above.
const HistBuckets = 24

// Status classes, as indexes into Stats.HttpResponses[side].
const (
	Status1xx = iota
	Status2xx
	Status3xx
	Status4xx
	Status5xx
)

// Sides, as indexes into the HTTP fields of Stats.
const (
	SideServer = 0
	SideClient = 1
)

// Protocol classes, as indexes into Stats.Proto.
const (
	ProtoOther = 0
	ProtoHTTP1 = 1
	ProtoHTTP2 = 2
	ProtoTLS   = 3
)

// ProtoNames names the protocol classes in index order.
var ProtoNames = [4]string{"other", "http1", "http2", "tls"}

// Stats are the counters of one cgroup, summed over CPUs.
type Stats agentCgStats

// Add adds o's counters to s.
func (s *Stats) Add(o *Stats) {
	s.ConnActiveOpened += o.ConnActiveOpened
	s.ConnPassiveOpened += o.ConnPassiveOpened
	s.ConnFailed += o.ConnFailed
	s.ConnClosed += o.ConnClosed
	s.BytesSent += o.BytesSent
	s.BytesReceived += o.BytesReceived
	s.Retransmits += o.Retransmits
	s.ResetsSent += o.ResetsSent
	s.ResetsReceived += o.ResetsReceived
	for i := range s.Proto {
		s.Proto[i] += o.Proto[i]
	}
	for side := range s.HttpRequests {
		s.HttpRequests[side] += o.HttpRequests[side]
		s.HttpLatencySumNs[side] += o.HttpLatencySumNs[side]
		for c := range s.HttpResponses[side] {
			s.HttpResponses[side][c] += o.HttpResponses[side][c]
		}
		for b := range s.HttpLatency[side] {
			s.HttpLatency[side][b] += o.HttpLatency[side][b]
		}
	}
	for b := range s.Rtt {
		s.Rtt[b] += o.Rtt[b]
	}
	s.RttSumUs += o.RttSumUs
}

// ActiveConnections is the number of established connections not yet closed.
func (s *Stats) ActiveConnections() uint64 {
	opened := s.ConnActiveOpened + s.ConnPassiveOpened
	if s.ConnClosed > opened {
		return 0
	}
	return opened - s.ConnClosed
}

// BucketUpperMicros is the exclusive upper bound of histogram bucket i in
// microseconds.
func BucketUpperMicros(i int) uint64 { return uint64(1) << (i + 1) }

// Objects are the loaded programs and maps. Load them once per process;
// attach them where they should count; Close releases everything.
type Objects struct {
	objs  agentObjects
	links []link.Link
}

// Load loads the programs and maps into the kernel. It needs CAP_BPF,
// CAP_PERFMON and CAP_NET_ADMIN (or root) and a kernel with BTF.
func Load() (*Objects, error) {
	o := &Objects{}
	if err := loadAgentObjects(&o.objs, nil); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("load programs: %w (verifier log: %+v)", err, verr)
		}
		return nil, fmt.Errorf("load programs: %w", err)
	}
	return o, nil
}

// AttachCgroup attaches the sock_ops and cgroup_skb programs to the cgroup v2
// folder path; they then count for every socket created in it or below it.
func (o *Objects) AttachCgroup(path string) ([]link.Link, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("cgroup path: %w", err)
	}
	progs := []struct {
		p *ebpf.Program
		t ebpf.AttachType
	}{
		{o.objs.MeshshiftSockops, ebpf.AttachCGroupSockOps},
		{o.objs.MeshshiftIngress, ebpf.AttachCGroupInetIngress},
		{o.objs.MeshshiftEgress, ebpf.AttachCGroupInetEgress},
	}
	var ls []link.Link
	for _, p := range progs {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: path, Attach: p.t, Program: p.p})
		if err != nil {
			closeLinks(ls)
			return nil, fmt.Errorf("attach %s to cgroup %s: %w", p.p, path, err)
		}
		ls = append(ls, l)
	}
	o.links = append(o.links, ls...)
	return ls, nil
}

// AttachTracing attaches the tp_btf programs that count resets. They see
// every socket of the host; resets of sockets in cgroups that are not
// otherwise tracked are counted too.
func (o *Objects) AttachTracing() ([]link.Link, error) {
	var ls []link.Link
	for _, p := range []*ebpf.Program{o.objs.MeshshiftRstRx, o.objs.MeshshiftRstTx} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			closeLinks(ls)
			return nil, fmt.Errorf("attach %s: %w", p, err)
		}
		ls = append(ls, l)
	}
	o.links = append(o.links, ls...)
	return ls, nil
}

// Detach closes every link made by AttachCgroup and AttachTracing; the maps
// and their counters stay.
func (o *Objects) Detach() error {
	err := closeLinks(o.links)
	o.links = nil
	return err
}

// Programs lists the loaded programs (for run-time statistics).
func (o *Objects) Programs() map[string]*ebpf.Program {
	return map[string]*ebpf.Program{
		"sockops": o.objs.MeshshiftSockops,
		"ingress": o.objs.MeshshiftIngress,
		"egress":  o.objs.MeshshiftEgress,
		"rst_rx":  o.objs.MeshshiftRstRx,
		"rst_tx":  o.objs.MeshshiftRstTx,
	}
}

// Read returns the counters of every cgroup seen, summed over CPUs, keyed by
// cgroup id (0: sockets without a cgroup, such as resets sent for no socket).
func (o *Objects) Read() (map[uint64]*Stats, error) {
	out := make(map[uint64]*Stats)
	var (
		key  uint64
		vals []agentCgStats
	)
	it := o.objs.Stats.Iterate()
	for it.Next(&key, &vals) {
		sum := &Stats{}
		for i := range vals {
			v := Stats(vals[i])
			sum.Add(&v)
		}
		out[key] = sum
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read stats map: %w", err)
	}
	return out, nil
}

// Forget drops the counters of cgroups that no longer exist.
func (o *Objects) Forget(ids []uint64) error {
	var errs []error
	for _, id := range ids {
		if err := o.objs.Stats.Delete(id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete cgroup %d: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// Close detaches and unloads everything.
func (o *Objects) Close() error {
	return errors.Join(o.Detach(), o.objs.Close())
}

func closeLinks(ls []link.Link) error {
	var errs []error
	for _, l := range ls {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close link: %w", err))
		}
	}
	return errors.Join(errs...)
}
