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

// DefaultMaxCgroups is how many cgroups get counters of their own unless
// Options say otherwise; traffic of further cgroups is counted under id 0.
const DefaultMaxCgroups = 4096

// Options tune Load.
type Options struct {
	// MaxCgroups bounds the cgroups counted separately (1 to 65536; 0 means
	// DefaultMaxCgroups). Kernel memory is about 1 KiB per cgroup per CPU.
	MaxCgroups int
}

// Load loads the programs and maps into the kernel. It needs CAP_BPF,
// CAP_PERFMON and CAP_NET_ADMIN (or root) and a kernel with BTF.
func Load(opts Options) (*Objects, error) {
	n := opts.MaxCgroups
	if n == 0 {
		n = DefaultMaxCgroups
	}
	if n < 1 || n > 65536 {
		return nil, fmt.Errorf("max cgroups %d: allowed 1 to 65536", opts.MaxCgroups)
	}
	spec, err := loadAgent()
	if err != nil {
		return nil, fmt.Errorf("load program spec: %w", err)
	}
	slots := uint32(n + 1) // slot 0 is the overflow slot
	for _, m := range []string{"counters", "slots", "free_slots"} {
		spec.Maps[m].MaxEntries = slots
	}
	if err := spec.Variables["max_slots"].Set(slots); err != nil {
		return nil, fmt.Errorf("set max slots: %w", err)
	}
	o := &Objects{}
	if err := spec.LoadAndAssign(&o.objs, nil); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("load programs: %w (verifier log: %+v)", err, verr) //nolint:errorlint // %+v prints the verifier's whole log; err is wrapped

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
			return nil, errors.Join(fmt.Errorf("attach %s to cgroup %s: %w", p.p, path, err), closeLinks(ls))
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
			return nil, errors.Join(fmt.Errorf("attach %s: %w", p, err), closeLinks(ls))
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
// cgroup id (0: traffic that could not be attributed: sockets without a
// cgroup, such as resets sent for no socket, and cgroups beyond MaxCgroups).
func (o *Objects) Read() (map[uint64]*Stats, error) {
	out := make(map[uint64]*Stats)
	var vals []agentCgStats
	read := func(id uint64, slot uint32) error {
		if err := o.objs.Counters.Lookup(slot, &vals); err != nil {
			return fmt.Errorf("read counters of slot %d: %w", slot, err)
		}
		sum := &Stats{}
		for i := range vals {
			v := Stats(vals[i])
			sum.Add(&v)
		}
		out[id] = sum
		return nil
	}
	if err := read(0, 0); err != nil {
		return nil, err
	}
	var (
		id   uint64
		slot uint32
	)
	it := o.objs.Slots.Iterate()
	for it.Next(&id, &slot) {
		if err := read(id, slot); err != nil {
			return nil, err
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read slots map: %w", err)
	}
	return out, nil
}

// Forget drops the counters of cgroups that no longer exist and gives their
// slots back for reuse.
func (o *Objects) Forget(ids []uint64) error {
	var errs []error
	zero := make([]agentCgStats, ebpf.MustPossibleCPU())
	for _, id := range ids {
		var slot uint32
		if err := o.objs.Slots.Lookup(id, &slot); err != nil {
			if !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, fmt.Errorf("look up cgroup %d: %w", id, err))
			}
			continue
		}
		if err := o.objs.Slots.Delete(id); err != nil {
			errs = append(errs, fmt.Errorf("delete cgroup %d: %w", id, err))
			continue
		}
		if err := o.objs.Counters.Put(slot, zero); err != nil {
			errs = append(errs, fmt.Errorf("zero slot %d: %w", slot, err))
			continue
		}
		if err := o.objs.FreeSlots.Put(nil, slot); err != nil {
			errs = append(errs, fmt.Errorf("free slot %d: %w", slot, err))
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
