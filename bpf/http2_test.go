package bpf_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/bpf/kerneltest"
)

// The gRPC test service: the health service of grpc-go, whose requests name
// the status to answer with ("ok", "notfound", "unavailable", "internal")
// and, after a colon, the server's delay in microseconds.
type healthServer struct {
	healthpb.UnimplementedHealthServer
}

var serviceCodes = map[string]codes.Code{
	"ok": codes.OK, "notfound": codes.NotFound, "unavailable": codes.Unavailable, "internal": codes.Internal,
}

func answer(service string) error {
	var name string
	var delay int
	if _, err := fmt.Sscanf(service, "%s %d", &name, &delay); err != nil {
		return status.Errorf(codes.InvalidArgument, "service %q: want \"<status> <delay us>\"", service)
	}
	time.Sleep(time.Duration(delay) * time.Microsecond)
	if c := serviceCodes[name]; c != codes.OK {
		return status.Error(c, name)
	}
	return nil
}

func (healthServer) Check(_ context.Context, r *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if err := answer(r.Service); err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// Watch streams three messages, then ends with the requested status.
func (healthServer) Watch(r *healthpb.HealthCheckRequest, s grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	for range 3 {
		if err := s.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}); err != nil {
			return err
		}
	}
	return answer(r.Service)
}

// startGRPC serves the test service on a listener made in cgroup srvCg.
func startGRPC(t *testing.T, mnt, srvCg string) string {
	t.Helper()
	var ln net.Listener
	kerneltest.InCgroup(t, mnt, srvCg, func() {
		var err error
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	})
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, healthServer{})
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return ln.Addr().String()
}

// clientTally is what the client itself saw.
type clientTally struct {
	mu    sync.Mutex
	codes map[codes.Code]uint64
	lat   []time.Duration
}

func (c *clientTally) add(code codes.Code, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.codes == nil {
		c.codes = map[codes.Code]uint64{}
	}
	c.codes[code]++
	c.lat = append(c.lat, d)
}

// grpcCalls makes n calls on conn from workers goroutines: unary Check and
// (every fifth) server-streaming Watch, with a status mix of OK, NotFound,
// Unavailable and Internal and a server delay of 10 to 40 ms.
func grpcCalls(t *testing.T, conn *grpc.ClientConn, n, workers int, tally *clientTally) {
	t.Helper()
	cli := healthpb.NewHealthClient(conn)
	names := []string{"ok", "ok", "ok", "ok", "notfound", "unavailable", "internal"}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := w; i < n; i += workers {
				name := names[rng.IntN(len(names))]
				svc := fmt.Sprintf("%s %d", name, 10000+rng.IntN(30000))
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				start := time.Now()
				var err error
				if i%5 == 4 {
					var st grpc.ServerStreamingClient[healthpb.HealthCheckResponse]
					if st, err = cli.Watch(ctx, &healthpb.HealthCheckRequest{Service: svc}); err == nil {
						for err == nil {
							_, err = st.Recv()
						}
						if err == io.EOF {
							err = nil
						}
					}
				} else {
					_, err = cli.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
				}
				d := time.Since(start)
				cancel()
				code := status.Code(err)
				if code != serviceCodes[name] {
					errs <- fmt.Errorf("call %d (%s): %v", i, svc, err)
					return
				}
				tally.add(code, d)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// grpcClient connects to addr from cgroup cliCg (the connection is made at
// once, so that its socket is the cgroup's).
func grpcClient(t *testing.T, mnt, cliCg, addr string) *grpc.ClientConn {
	t.Helper()
	var conn *grpc.ClientConn
	kerneltest.InCgroup(t, mnt, cliCg, func() {
		var err error
		conn, err = grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		conn.Connect()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "ok 0"}); err != nil {
			t.Fatalf("first call: %v", err)
		}
	})
	t.Cleanup(func() { conn.Close() })
	return conn
}

// checkL7 compares one side's figures with the client's tally: counts per
// status exactly.
func checkL7(t *testing.T, who string, l *bpf.L7Side, want map[int]uint64, total uint64) {
	t.Helper()
	if l.Requests != total {
		t.Errorf("%s requests: got %d, want %d", who, l.Requests, total)
	}
	var answered uint64
	for _, n := range l.Responses {
		answered += n
	}
	if answered != total {
		t.Errorf("%s responses: got %d, want %d", who, answered, total)
	}
	for code, n := range want {
		if got := l.Codes[code]; got != n {
			t.Errorf("%s status %d: got %d, want %d", who, code, got, n)
		}
	}
}

func answered(l *bpf.L7Side) uint64 {
	var n uint64
	for _, x := range l.Responses {
		n += x
	}
	return n
}

func p99Of(lat []time.Duration) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[(len(s)*99+99)/100-1]
}

// latencyCheck compares the agent's p99 with the client's on both sides.
type latencyCheck struct {
	objs  *bpf.Objects
	ids   []uint64
	names []string
	pick  []func(m map[uint64]*bpf.Stats) *bpf.L7Side
}

// agree logs each side's p99 over the calls between two reads and reports
// whether all are within 10% of the client's.
func (lc latencyCheck) agree(t *testing.T, before, after map[uint64]*bpf.Stats, client time.Duration) bool {
	t.Helper()
	ok := true
	for i, pick := range lc.pick {
		d := bpf.L7Side{Fine: map[int]uint64{}}
		a, b := pick(after), pick(before)
		for k, n := range a.Fine {
			d.Fine[k] = n - b.Fine[k]
		}
		got, has := d.Quantile(0.99)
		diff := float64(got-client) / float64(client)
		t.Logf("%s p99 %v, client's p99 %v (%+.1f%%)", lc.names[i], got, client, 100*diff)
		if !has || diff < -0.10 || diff > 0.10 {
			ok = false
		}
	}
	return ok
}

// run checks the main run's p99 (before, after: reads around it); when a
// side is off by more than 10% (a stall of the shared machine delays the
// client's tail, not the socket's), it runs up to two more rounds of
// latency-only calls and passes if one of them agrees.
func (lc latencyCheck) run(t *testing.T, before, after map[uint64]*bpf.Stats, client time.Duration, round func() []time.Duration) {
	t.Helper()
	if lc.agree(t, before, after, client) {
		return
	}
	for range 2 {
		b := waitFor(t, lc.objs, lc.ids, func(map[uint64]*bpf.Stats) bool { return true })
		lat := round()
		a := waitFor(t, lc.objs, lc.ids, func(m map[uint64]*bpf.Stats) bool {
			for _, pick := range lc.pick {
				if answered(pick(m)) < answered(pick(b))+uint64(len(lat)) {
					return false
				}
			}
			return true
		})
		if lc.agree(t, b, a, p99Of(lat)) {
			return
		}
	}
	t.Error("p99 not within 10% of the client's in any of three rounds")
}

// TestGRPCCountsAndLatency makes 10,000 gRPC calls (unary and server
// streaming, 32 at a time) on one h2c connection between a grpc-go client
// and server in two cgroups. The agent's counts per grpc-status on both
// sides equal the client's own. Its p99 is within 10% of the client's:
// the client times each call around the stub (in-process overhead
// included); the agent from the request's HEADERS to the response's
// END_STREAM at the socket. The server delays each answer by 10 to 40 ms, so
// that the socket's time dominates; the agent's p99 is read from its
// 16-per-octave histogram (L7Side.Quantile); the client's is the 99th
// percentile of its sorted latencies (nearest rank). A stall of the shared
// machine delays the client's tail but not the socket's: when the p99s differ
// by more than 10%, up to two latency-only rounds of 3,000 calls follow, and
// one of them must agree (latencyCheck.run).
func TestGRPCCountsAndLatency(t *testing.T) {
	objs, mnt, srvCg, cliCg := setup(t)
	if err := objs.StartHTTP2(10 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	srvID, cliID := kerneltest.ID(t, srvCg), kerneltest.ID(t, cliCg)
	addr := startGRPC(t, mnt, srvCg)
	conn := grpcClient(t, mnt, cliCg, addr)

	tally := &clientTally{}
	tally.add(codes.OK, 0) // the first call
	grpcCalls(t, conn, 10000, 32, tally)
	tally.lat = tally.lat[1:]
	total := uint64(10001)
	want := map[int]uint64{}
	for c, n := range tally.codes {
		want[int(c)] = n
	}
	if len(want) != 4 {
		t.Fatalf("client saw statuses %v, want OK, NotFound, Unavailable and Internal", want)
	}

	m := waitFor(t, objs, []uint64{srvID, cliID}, func(m map[uint64]*bpf.Stats) bool {
		var a, b uint64
		for _, n := range m[srvID].L7.GRPC[bpf.SideServer].Responses {
			a += n
		}
		for _, n := range m[cliID].L7.GRPC[bpf.SideClient].Responses {
			b += n
		}
		return a >= total && b >= total
	})
	checkL7(t, "server", &m[srvID].L7.GRPC[bpf.SideServer], want, total)
	checkL7(t, "client", &m[cliID].L7.GRPC[bpf.SideClient], want, total)
	lc := latencyCheck{objs: objs, ids: []uint64{srvID, cliID}, names: []string{"server", "client"},
		pick: []func(m map[uint64]*bpf.Stats) *bpf.L7Side{
			func(m map[uint64]*bpf.Stats) *bpf.L7Side { return &m[srvID].L7.GRPC[bpf.SideServer] },
			func(m map[uint64]*bpf.Stats) *bpf.L7Side { return &m[cliID].L7.GRPC[bpf.SideClient] },
		}}
	lc.run(t, map[uint64]*bpf.Stats{srvID: {}, cliID: {}}, m, p99Of(tally.lat), func() []time.Duration {
		again := &clientTally{}
		grpcCalls(t, conn, 3000, 32, again)
		return again.lat
	})
	for _, id := range []uint64{srvID, cliID} {
		l7 := m[id].L7
		if l7.Desynchronised != 0 || l7.HTTP2[0].Requests+l7.HTTP2[1].Requests != 0 {
			t.Errorf("cgroup %d: desynchronised %d, http2 requests %d+%d; want none", id, l7.Desynchronised, l7.HTTP2[0].Requests, l7.HTTP2[1].Requests)
		}
		if m[id].Proto[bpf.ProtoHTTP2] != 1 {
			t.Errorf("cgroup %d: %d http2 connections, want 1", id, m[id].Proto[bpf.ProtoHTTP2])
		}
	}
	// Server errors, as the gate counts them: Unavailable and Internal.
	srv := m[srvID].L7.GRPC[bpf.SideServer]
	if got, w := srv.Responses[bpf.Status5xx], want[int(codes.Unavailable)]+want[int(codes.Internal)]; got != w {
		t.Errorf("server 5xx: got %d, want %d", got, w)
	}
	if got, w := srv.Responses[bpf.Status4xx], want[int(codes.NotFound)]; got != w {
		t.Errorf("server 4xx: got %d, want %d", got, w)
	}
}

// TestH2CServer makes 10,000 requests over one h2c connection between Go's
// net/http client and server (statuses 200, 404, 500, 503; bodies; a delay of
// 10 to 40 ms, 32 at a time): the agent's counts per status class equal the
// client's, and its p99 is within 10% of the client's (measured as in
// TestGRPCCountsAndLatency).
func TestH2CServer(t *testing.T) {
	objs, mnt, srvCg, cliCg := setup(t)
	if err := objs.StartHTTP2(10 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	srvID, cliID := kerneltest.ID(t, srvCg), kerneltest.ID(t, cliCg)
	var ln net.Listener
	kerneltest.InCgroup(t, mnt, srvCg, func() {
		var err error
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	})
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var code, delay int
		if _, err := fmt.Sscanf(r.URL.Path, "/%d/%d", &code, &delay); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		time.Sleep(time.Duration(delay) * time.Microsecond)
		w.WriteHeader(code)
		io.WriteString(w, "body of the answer")
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })

	var cp http.Protocols
	cp.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &cp, MaxConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	base := "http://" + ln.Addr().String()
	get := func(code, delay int) (int, time.Duration, error) {
		start := time.Now()
		resp, err := c.Get(fmt.Sprintf("%s/%d/%d", base, code, delay))
		if err != nil {
			return 0, 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			return 0, 0, fmt.Errorf("protocol %s, want HTTP/2", resp.Proto)
		}
		return resp.StatusCode, time.Since(start), nil
	}
	kerneltest.InCgroup(t, mnt, cliCg, func() {
		if _, _, err := get(200, 0); err != nil { // the connection, made here
			t.Fatal(err)
		}
	})
	const n, workers = 10000, 32
	byClass := map[int]uint64{2: 1}
	var mu sync.Mutex
	statuses := []int{200, 200, 200, 404, 500, 503}
	round := func(n int) []time.Duration {
		var lat []time.Duration
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), uint64(n)))
				for i := w; i < n; i += workers {
					code, d, err := get(statuses[rng.IntN(len(statuses))], 10000+rng.IntN(30000))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					byClass[code/100]++
					lat = append(lat, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return lat
	}
	lat := round(n)
	if t.Failed() {
		return
	}
	total := uint64(n + 1)
	m := waitFor(t, objs, []uint64{srvID, cliID}, func(m map[uint64]*bpf.Stats) bool {
		return answered(&m[srvID].L7.HTTP2[bpf.SideServer]) >= total && answered(&m[cliID].L7.HTTP2[bpf.SideClient]) >= total
	})
	for _, st := range []struct {
		who string
		l   *bpf.L7Side
		l7  *bpf.L7Stats
	}{{"server", &m[srvID].L7.HTTP2[bpf.SideServer], &m[srvID].L7}, {"client", &m[cliID].L7.HTTP2[bpf.SideClient], &m[cliID].L7}} {
		if st.l.Requests != total {
			t.Errorf("%s requests: got %d, want %d", st.who, st.l.Requests, total)
		}
		for cls := 1; cls <= 5; cls++ {
			if got := st.l.Responses[cls-1]; got != byClass[cls] {
				t.Errorf("%s %dxx: got %d, want %d", st.who, cls, got, byClass[cls])
			}
		}
		if st.l7.Desynchronised != 0 {
			t.Errorf("%s: %d connections desynchronised", st.who, st.l7.Desynchronised)
		}
	}
	lc := latencyCheck{objs: objs, ids: []uint64{srvID, cliID}, names: []string{"server", "client"},
		pick: []func(m map[uint64]*bpf.Stats) *bpf.L7Side{
			func(m map[uint64]*bpf.Stats) *bpf.L7Side { return &m[srvID].L7.HTTP2[bpf.SideServer] },
			func(m map[uint64]*bpf.Stats) *bpf.L7Side { return &m[cliID].L7.HTTP2[bpf.SideClient] },
		}}
	lc.run(t, map[uint64]*bpf.Stats{srvID: {}, cliID: {}}, m, p99Of(lat), func() []time.Duration { return round(3000) })
}

// TestHTTP2RingLoss fills a one-page ring buffer while nothing reads it, so
// that every connection loses header frames: each is counted desynchronised
// (on both sides) and no status is counted that the client did not see.
func TestHTTP2RingLoss(t *testing.T) {
	mnt := kerneltest.RequireRoot(t)
	parent := kerneltest.Cgroup(t, mnt, kerneltest.RandName("meshshift-test-"))
	srvCg := kerneltest.Cgroup(t, parent, "srv")
	cliCg := kerneltest.Cgroup(t, parent, "cli")
	objs, err := bpf.Load(bpf.Options{HTTP2RingBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := objs.Close(); err != nil {
			t.Error(err)
		}
	})
	if _, err := objs.AttachCgroup(parent); err != nil {
		t.Fatal(err)
	}
	srvID, cliID := kerneltest.ID(t, srvCg), kerneltest.ID(t, cliCg)
	addr := startGRPC(t, mnt, srvCg)

	const conns = 3
	tally := &clientTally{}
	var cs []*grpc.ClientConn
	for range conns {
		c := grpcClient(t, mnt, cliCg, addr)
		tally.add(codes.OK, 0)
		cs = append(cs, c)
	}
	// Nothing reads: the ring fills after a few calls.
	for _, c := range cs {
		grpcCalls(t, c, 200, 4, tally)
	}
	if err := objs.StartHTTP2(5 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// More calls: each connection now tells user space it was lost.
	for _, c := range cs {
		grpcCalls(t, c, 20, 4, tally)
	}
	for _, c := range cs {
		c.Close()
	}
	m := waitFor(t, objs, []uint64{srvID, cliID}, func(m map[uint64]*bpf.Stats) bool {
		return m[srvID].L7.Desynchronised >= conns && m[cliID].L7.Desynchronised >= conns && objs.HTTP2Connections() == 0
	})
	var sent uint64
	for _, n := range tally.codes {
		sent += n
	}
	for _, st := range []struct {
		who  string
		s    *bpf.Stats
		side int
	}{{"server", m[srvID], bpf.SideServer}, {"client", m[cliID], bpf.SideClient}} {
		if got := st.s.L7.Desynchronised; got != conns {
			t.Errorf("%s desynchronised connections: got %d, want %d", st.who, got, conns)
		}
		l := st.s.L7.GRPC[st.side]
		var counted uint64
		for code, n := range l.Codes {
			counted += n
			if n > tally.codes[codes.Code(code)] {
				t.Errorf("%s status %d: counted %d, the client saw %d", st.who, code, n, tally.codes[codes.Code(code)])
			}
		}
		if counted == 0 || counted >= sent {
			t.Errorf("%s: counted %d of %d calls; want some, not all (the ring buffer was full)", st.who, counted, sent)
		}
		t.Logf("%s: %d of %d calls counted before the loss; %d desynchronised connections", st.who, counted, sent, st.s.L7.Desynchronised)
	}
	if n := objs.HTTP2Connections(); n != 0 {
		t.Errorf("connections followed after all closed: %d", n)
	}
}
