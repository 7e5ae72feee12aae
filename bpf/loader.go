package bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
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

// KernelStats are the counters the kernel keeps for one cgroup.
type KernelStats agentCgStats

// Stats are the figures of one cgroup: the kernel's counters summed over
// CPUs, and the HTTP/2 and gRPC figures made in user space.
type Stats struct {
	KernelStats
	L7 L7Stats
	// Peers counts the connections the cgroup accepted, by the peer's
	// address (who calls it; IPv4 peers as IPv4 addresses). A pair the
	// kernel's bounded map evicted (Options.MaxPeers) counts from zero again
	// when the peer comes back; accepted connections on no listed peer are
	// ConnPassiveOpened minus the sum of Peers. nil when none. Add allocates
	// its own map: a copy of a Stats shares the map until then.
	Peers map[netip.Addr]uint64
}

// Add adds o's counters to s.
func (s *Stats) Add(o *Stats) {
	s.L7.Add(&o.L7)
	s.addPeers(o.Peers)
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
	h2    *h2Tracker
}

// DefaultMaxCgroups is how many cgroups get counters of their own unless
// Options say otherwise; traffic of further cgroups is counted under id 0.
const DefaultMaxCgroups = 4096

// Options tune Load.
type Options struct {
	// MaxCgroups bounds the cgroups counted separately (1 to 65536; 0 means
	// DefaultMaxCgroups). Kernel memory is about 1 KiB per cgroup per CPU.
	MaxCgroups int
	// HTTP2RingBytes is the size of the ring buffer that carries HTTP/2
	// header frames to user space: a power of two, 4 KiB to 256 MiB (0
	// means 1 MiB).
	HTTP2RingBytes int
	// HTTP2Conns bounds the HTTP/2 connections followed at once (1 to
	// 1,048,576; 0 means 16,384); further ones are not followed.
	HTTP2Conns int
	// MaxPeers bounds the (cgroup, peer address) pairs whose accepted
	// connections are counted (1 to 1,048,576; 0 means DefaultMaxPeers).
	// The kernel map is an LRU hash: when it is full, the least recently
	// used pairs are evicted. About 100 bytes of kernel memory per pair.
	MaxPeers int
}

// Defaults of Options.
const (
	DefaultHTTP2RingBytes = 1 << 20
	DefaultHTTP2Conns     = 16384
)

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
	ring, h2conns := opts.HTTP2RingBytes, opts.HTTP2Conns
	if ring == 0 {
		ring = DefaultHTTP2RingBytes
	}
	if h2conns == 0 {
		h2conns = DefaultHTTP2Conns
	}
	if ring < 4096 || ring > 256<<20 || ring&(ring-1) != 0 {
		return nil, fmt.Errorf("http2 ring bytes %d: allowed a power of two from 4096 to %d", opts.HTTP2RingBytes, 256<<20)
	}
	if h2conns < 1 || h2conns > 1<<20 {
		return nil, fmt.Errorf("http2 conns %d: allowed 1 to %d", opts.HTTP2Conns, 1<<20)
	}
	peers := opts.MaxPeers
	if peers == 0 {
		peers = DefaultMaxPeers
	}
	if peers < 1 || peers > 1<<20 {
		return nil, fmt.Errorf("max peers %d: allowed 1 to %d", opts.MaxPeers, 1<<20)
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
	spec.Maps["h2_events"].MaxEntries = uint32(ring)
	spec.Maps["h2_conns"].MaxEntries = uint32(h2conns)
	spec.Maps["peers"].MaxEntries = uint32(peers)
	if err := spec.Variables["h2_wake_bytes"].Set(uint32(ring / 4)); err != nil {
		return nil, fmt.Errorf("set http2 wake-up bytes: %w", err)
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
	// Peers before counters: a connection accepted in between is in the
	// counters, so the peers' sum never exceeds ConnPassiveOpened.
	peers, err := o.readPeers()
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]*Stats)
	var vals []agentCgStats
	read := func(id uint64, slot uint32) error {
		if err := o.objs.Counters.Lookup(slot, &vals); err != nil {
			return fmt.Errorf("read counters of slot %d: %w", slot, err)
		}
		sum := &Stats{}
		for i := range vals {
			v := Stats{KernelStats: KernelStats(vals[i])}
			sum.Add(&v)
		}
		sum.Peers = peers[id]
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
	if o.h2 != nil {
		for id, l7 := range o.h2.read() {
			s := out[id]
			if s == nil {
				// A cgroup whose slot is gone: its kernel counters
				// were forgotten, so are these.
				continue
			}
			s.L7.Add(&l7)
		}
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
	if err := o.forgetPeers(ids); err != nil {
		errs = append(errs, err)
	}
	if o.h2 != nil {
		o.h2.forget(ids)
	}
	return errors.Join(errs...)
}

// DefaultHTTP2Poll is how often StartHTTP2's reader looks at the ring buffer
// when the kernel did not wake it (it does once a quarter of the ring is used).
const DefaultHTTP2Poll = 50 * time.Millisecond

// StartHTTP2 starts reading the HTTP/2 header frames the programs copy
// (HPACK decoding, per-stream requests): from then on Read includes the
// HTTP/2 and gRPC figures. poll is how often the reader looks when not woken
// (0: DefaultHTTP2Poll; 1 ms to 10 s). Close stops it.
func (o *Objects) StartHTTP2(poll time.Duration) error {
	if poll == 0 {
		poll = DefaultHTTP2Poll
	}
	if poll < time.Millisecond || poll > 10*time.Second {
		return fmt.Errorf("http2 poll interval %v: allowed 1ms to 10s", poll)
	}
	if o.h2 != nil {
		return errors.New("http2 reader: already started")
	}
	rd, err := ringbuf.NewReader(o.objs.H2Events)
	if err != nil {
		return fmt.Errorf("open http2 ring buffer: %w", err)
	}
	t := &h2Tracker{
		rd: rd, conns: o.objs.H2Conns, poll: poll, lastSweep: time.Now(),
		stats: map[uint64]*L7Stats{}, live: map[uint64]*h2Live{}, done: make(chan struct{}),
	}
	o.h2 = t
	go t.run()
	return nil
}

// HTTP2Connections is how many HTTP/2 connections user space follows now
// (0 before StartHTTP2).
func (o *Objects) HTTP2Connections() int {
	if o.h2 == nil {
		return 0
	}
	return o.h2.liveConns()
}

// HTTP2ReaderCPU is the CPU time StartHTTP2's reader has used so far (its
// own thread: HPACK decoding and request accounting).
func (o *Objects) HTTP2ReaderCPU() (time.Duration, error) {
	if o.h2 == nil {
		return 0, errors.New("http2 reader: not started")
	}
	return o.h2.cpu()
}

// Close detaches and unloads everything.
func (o *Objects) Close() error {
	var err error
	if o.h2 != nil {
		err = o.h2.close()
	}
	return errors.Join(err, o.Detach(), o.objs.Close())
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
