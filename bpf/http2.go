package bpf

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// gRPC status codes named in this package (google.golang.org/grpc/codes).
const (
	GRPCOK          = 0
	GRPCInternal    = 13
	GRPCUnavailable = 14
	// GRPCCodes is the number of gRPC status codes counted one by one;
	// larger codes count under GRPCCodes-1 (UNAUTHENTICATED's slot is
	// shared with them only when a peer sends codes gRPC does not define).
	GRPCCodes = 17
)

// GRPCServerError reports whether a gRPC status code counts as a server
// error (status class 5xx): UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
// INTERNAL, UNAVAILABLE and DATA_LOSS, the codes OpenTelemetry's semantic
// conventions for gRPC mark as errors on the server side. OK counts as 2xx,
// every other code as 4xx (the caller's error).
func GRPCServerError(code int) bool {
	switch code {
	case 2, 4, 12, 13, 14, 15:
		return true
	}
	return false
}

// GRPCClass is the status class index (Status2xx, Status4xx, Status5xx) a
// gRPC status code is counted under.
func GRPCClass(code int) int {
	switch {
	case code == GRPCOK:
		return Status2xx
	case GRPCServerError(code):
		return Status5xx
	}
	return Status4xx
}

// L7Side are the HTTP/2 or gRPC figures of one side (server or client).
type L7Side struct {
	// Requests started: the client's first HEADERS on a new stream.
	Requests uint64
	// Responses finished (the response's END_STREAM), by status class
	// (gRPC: by GRPCClass).
	Responses [5]uint64
	// Latency from the request's HEADERS to the response's END_STREAM;
	// buckets as the kernel's histograms.
	Latency      [HistBuckets]uint64
	LatencySumNs uint64
	// Fine is the same latency with FineSteps buckets per power of two
	// (bucket FineSteps*i+j: [2^i*(1+j/FineSteps), 2^i*(1+(j+1)/FineSteps))
	// microseconds; only buckets with samples are present), for close
	// quantiles: see Quantile.
	Fine map[int]uint64
	// Codes counts gRPC responses by grpc-status (gRPC only).
	Codes [GRPCCodes]uint64
}

// L7Stats are the HTTP/2 and gRPC figures of one cgroup, made in user space
// from the header frames the kernel copies.
type L7Stats struct {
	HTTP2 [2]L7Side // by side (SideServer, SideClient)
	GRPC  [2]L7Side
	// Desynchronised counts connections no longer counted because some of
	// their header frames were lost (ring buffer full, a header frame over
	// the copy bound, a gap in the byte stream) or could not be decoded.
	Desynchronised uint64
}

func (s *L7Side) add(o *L7Side) {
	s.Requests += o.Requests
	s.LatencySumNs += o.LatencySumNs
	for i := range s.Responses {
		s.Responses[i] += o.Responses[i]
	}
	for i := range s.Latency {
		s.Latency[i] += o.Latency[i]
	}
	for i := range s.Codes {
		s.Codes[i] += o.Codes[i]
	}
	if len(o.Fine) > 0 && s.Fine == nil {
		s.Fine = make(map[int]uint64, len(o.Fine))
	}
	for i, n := range o.Fine {
		s.Fine[i] += n
	}
}

// clone returns a copy of s that shares no map with it.
func (s *L7Stats) clone() L7Stats {
	c := *s
	for i := range 2 {
		for _, l := range []*L7Side{&c.HTTP2[i], &c.GRPC[i]} {
			l.Fine = maps.Clone(l.Fine)
		}
	}
	return c
}

// FineSteps is the number of Fine buckets per power of two.
const FineSteps = 16

// fineBucket is the Fine bucket of a latency in nanoseconds.
func fineBucket(ns uint64) int {
	us := ns / 1000
	if us < 1 {
		return 0
	}
	b := bucketOfNs(ns)
	if b == HistBuckets-1 && us >= 1<<HistBuckets {
		return HistBuckets*FineSteps - 1
	}
	lo := uint64(1) << b
	j := int((us - lo) * FineSteps / lo)
	if j >= FineSteps {
		j = FineSteps - 1
	}
	return b*FineSteps + j
}

// Quantile estimates the q-quantile (0 < q <= 1) of the latency from Fine,
// interpolating linearly within the bucket that holds it (as Prometheus'
// histogram_quantile does; a bucket is 1/16 of its power of two wide, so
// the estimate is within about 6% of the true value). ok is false without
// samples.
func (s *L7Side) Quantile(q float64) (d time.Duration, ok bool) {
	var total uint64
	for _, n := range s.Fine {
		total += n
	}
	if total == 0 || q <= 0 || q > 1 {
		return 0, false
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var cum uint64
	for i := range HistBuckets * FineSteps {
		n := s.Fine[i]
		if cum+n >= rank {
			b, j := i/FineSteps, i%FineSteps
			lo := float64(uint64(1)<<b) * (1 + float64(j)/FineSteps)
			hi := float64(uint64(1)<<b) * (1 + float64(j+1)/FineSteps)
			at := lo + (hi-lo)*float64(rank-cum)/float64(n)
			return time.Duration(at * float64(time.Microsecond)), true
		}
		cum += n
	}
	return 0, false
}

// Add adds o's figures to s.
func (s *L7Stats) Add(o *L7Stats) {
	for i := range 2 {
		s.HTTP2[i].add(&o.HTTP2[i])
		s.GRPC[i].add(&o.GRPC[i])
	}
	s.Desynchronised += o.Desynchronised
}

// bucketOfNs is the kernel's bucket_us for a latency in nanoseconds.
func bucketOfNs(ns uint64) int {
	us := ns / 1000
	b := 0
	for us > 1 {
		us >>= 1
		b++
	}
	if b >= HistBuckets {
		b = HistBuckets - 1
	}
	return b
}

func (s *L7Stats) record(side int, d h2Done) {
	if d.start {
		if d.grpc {
			s.GRPC[side].Requests++
		} else {
			s.HTTP2[side].Requests++
		}
		return
	}
	l := &s.HTTP2[side]
	cls := d.status/100 - 1
	if d.grpc {
		l = &s.GRPC[side]
		cls = GRPCClass(d.status)
		code := d.status
		if code >= GRPCCodes {
			code = GRPCCodes - 1
		}
		l.Codes[code]++
	}
	if cls < 0 || cls > 4 {
		return
	}
	l.Responses[cls]++
	l.Latency[bucketOfNs(d.latencyNs)]++
	if l.Fine == nil {
		l.Fine = map[int]uint64{}
	}
	l.Fine[fineBucket(d.latencyNs)]++
	l.LatencySumNs += d.latencyNs
}

// h2Tracker reads the h2_events ring buffer and keeps the per-cgroup figures.
type h2Tracker struct {
	rd    *ringbuf.Reader
	conns *ebpf.Map // h2_conns, to find connections closed while events were lost
	poll  time.Duration

	mu    sync.Mutex
	stats map[uint64]*L7Stats
	live  map[uint64]*h2Live // by socket cookie
	done  chan struct{}
	// lastSweep is when live was last checked against the kernel.
	lastSweep time.Time
	tid       atomic.Int32 // the reader's thread
}

// cpu is the CPU time (user and system) the reader's thread used so far.
func (t *h2Tracker) cpu() (time.Duration, error) {
	tid := t.tid.Load()
	if tid == 0 {
		return 0, errors.New("http2 reader not running yet")
	}
	// The CPU clock of one thread: CPUCLOCK_SCHED | CPUCLOCK_PERTHREAD
	// with the thread id (see clock_getcpuclockid(3)).
	var ts unix.Timespec
	if err := unix.ClockGettime(int32(^uint32(tid)<<3|6), &ts); err != nil {
		return 0, fmt.Errorf("read the http2 reader's cpu clock: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}

type h2Live struct {
	cgid   uint64
	side   int
	desync bool
	c      *h2Conn
}

const h2SweepEvery = 5 * time.Second

// h2Batch bounds the records handled under one hold of the tracker's lock.
const h2Batch = 256

func (t *h2Tracker) statsFor(cgid uint64) *L7Stats {
	s := t.stats[cgid]
	if s == nil {
		s = &L7Stats{}
		t.stats[cgid] = s
	}
	return s
}

// handle takes one event; t.mu is held.
func (t *h2Tracker) handle(ev *h2Event, done []h2Done) []h2Done {
	l := t.live[ev.cookie]
	if ev.kind == h2EvClose {
		if l != nil && ev.lost {
			t.desync(l)
		} else if l == nil && ev.lost {
			t.statsFor(ev.cgid).Desynchronised++
		}
		delete(t.live, ev.cookie)
		return done
	}
	if l == nil {
		l = &h2Live{cgid: ev.cgid, side: int(ev.side & 1), c: newH2Conn()}
		t.live[ev.cookie] = l
	}
	if l.desync {
		return done
	}
	if ev.kind == h2EvLost {
		t.desync(l)
		return done
	}
	done, err := l.c.piece(ev, done[:0])
	if err != nil {
		t.desync(l)
		return done
	}
	s := t.statsFor(l.cgid)
	for _, d := range done {
		s.record(l.side, d)
	}
	return done
}

// desync stops counting a connection; t.mu is held.
func (t *h2Tracker) desync(l *h2Live) {
	if l.desync {
		return
	}
	l.desync = true
	l.c = nil // its streams and HPACK tables are of no more use
	t.statsFor(l.cgid).Desynchronised++
}

// sweep drops connections the kernel no longer follows (their close event
// was lost) and marks those it lost; t.mu is held.
func (t *h2Tracker) sweep() {
	val := make([]byte, t.conns.ValueSize())
	for cookie, l := range t.live {
		err := t.conns.Lookup(cookie, val)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			delete(t.live, cookie)
			continue
		}
		if err == nil && val[h2ConnLostOffset] != 0 {
			t.desync(l)
		}
	}
}

// h2ConnLostOffset is the offset of struct h2_conn's lost field.
const h2ConnLostOffset = 2*24 + 8 + 1

func (t *h2Tracker) run() {
	defer close(t.done)
	// One OS thread, so that its CPU time can be read (cpu).
	runtime.LockOSThread()
	t.tid.Store(int32(unix.Gettid()))
	var rec ringbuf.Record
	var done []h2Done
	for {
		t.rd.SetDeadline(time.Now().Add(t.poll))
		err := t.rd.ReadInto(&rec)
		switch {
		case err == nil:
			// What the ring holds already, under one lock (records
			// come in batches: the kernel wakes the reader rarely).
			t.mu.Lock()
			for n := 1; ; n++ {
				if ev, perr := parseH2Event(rec.RawSample); perr == nil {
					done = t.handle(&ev, done)
				}
				if n >= h2Batch || rec.Remaining == 0 {
					break
				}
				if err = t.rd.ReadInto(&rec); err != nil {
					break
				}
			}
			t.mu.Unlock()
			if errors.Is(err, ringbuf.ErrClosed) {
				return
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, ringbuf.ErrClosed):
			return
		default:
			time.Sleep(t.poll)
		}
		if now := time.Now(); now.Sub(t.lastSweep) >= h2SweepEvery {
			t.mu.Lock()
			t.sweep()
			t.mu.Unlock()
			t.lastSweep = now
		}
	}
}

// read returns a copy of the figures by cgroup id.
func (t *h2Tracker) read() map[uint64]L7Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[uint64]L7Stats, len(t.stats))
	for id, s := range t.stats {
		out[id] = s.clone()
	}
	return out
}

func (t *h2Tracker) forget(ids []uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		delete(t.stats, id)
	}
}

// Live returns how many HTTP/2 connections user space follows now.
func (t *h2Tracker) liveConns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.live)
}

func (t *h2Tracker) close() error {
	err := t.rd.Close()
	<-t.done
	if err != nil {
		return fmt.Errorf("close http2 ring buffer reader: %w", err)
	}
	return nil
}
