package agent_test

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/bpf/agent"
	"github.com/meshshift/meshshift/bpf/kerneltest"
	"github.com/meshshift/meshshift/signals"
)

// podNet is one test pod: a cgroup shaped as the kubelet's cgroupfs driver
// lays it out, in a network namespace of its own.
type podNet struct {
	uid, cg string
	ns      *kerneltest.Netns
}

// acceptAll accepts connections on ln until it is closed, reads each until
// the peer closes it, and counts them.
func acceptAll(t *testing.T, ln net.Listener) *atomic.Int64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.Copy(io.Discard, c)
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	return &n
}

// listen makes a listener in the pod's cgroup and namespace.
func (p *podNet) listen(t *testing.T, mnt, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	kerneltest.InCgroup(t, mnt, p.cg, func() {
		p.ns.Do(t, func() {
			var err error
			if ln, err = net.Listen(network, addr); err != nil {
				t.Errorf("listen %s %s: %v", network, addr, err)
			}
		})
	})
	if ln == nil {
		t.FailNow()
	}
	return ln
}

// dial opens n connections from the pod's cgroup and namespace to addr, one
// after the other, each sending a byte and closing.
func (p *podNet) dial(t *testing.T, mnt, network, addr string, n int) {
	t.Helper()
	kerneltest.InCgroup(t, mnt, p.cg, func() {
		p.ns.Do(t, func() {
			for range n {
				c, err := net.DialTimeout(network, addr, 5*time.Second)
				if err != nil {
					t.Errorf("dial %s %s: %v", network, addr, err)
					return
				}
				_, _ = c.Write([]byte("x"))
				_ = c.Close()
			}
		})
	})
	if t.Failed() {
		t.FailNow()
	}
}

// TestPeersOfAcceptedConnections: two client pods with addresses of their
// own (one IPv4, one IPv6) connect N and M times to a server pod listening
// dual-stack; the snapshot lists exactly those two addresses with N and M for
// the server's workload (the IPv4 client, seen by the dual-stack socket as an
// IPv4-mapped address, as IPv4), the connections the server opens itself are
// not its peers (they are the callee's), and the addresses resolve through an
// IP-to-workload table to the two client workloads.
func TestPeersOfAcceptedConnections(t *testing.T) {
	mnt := kerneltest.RequireRoot(t)
	root := kerneltest.Cgroup(t, mnt, kerneltest.RandName("meshshift-test-"))
	pod := func(uid, cid string) *podNet {
		return &podNet{uid: uid, cg: kerneltest.Cgroup(t, root, filepath.Join("kubepods", "besteffort", "pod"+uid, cid)),
			ns: kerneltest.NewNetns(t)}
	}
	web := pod("0f5c3a2e-8b1d-4c6e-9a7f-000000000001", "c1")
	cliA := pod("0f5c3a2e-8b1d-4c6e-9a7f-00000000000a", "ca")
	cliB := pod("0f5c3a2e-8b1d-4c6e-9a7f-00000000000b", "cb")
	wa, a := kerneltest.Veth(t, web.ns, cliA.ns)
	web.ns.AddAddr(t, wa, "10.251.1.1/24")
	cliA.ns.AddAddr(t, a, "10.251.1.2/24")
	wb, b := kerneltest.Veth(t, web.ns, cliB.ns)
	web.ns.AddAddr(t, wb, "fd00:db8:2::1/64")
	cliB.ns.AddAddr(t, b, "fd00:db8:2::2/64")

	objs := loadAttached(t, root)
	col := agent.NewCollector(objs, root, agent.StaticPods{
		web.uid:  {Namespace: "shop", Name: "web-0", Workload: "web"},
		cliA.uid: {Namespace: "shop", Name: "client-a-0", Workload: "client-a"},
		cliB.uid: {Namespace: "edge", Name: "client-b-0", Workload: "client-b"},
	}, nil)
	col.SetWalkInterval(0)

	srvLn := web.listen(t, mnt, "tcp", "[::]:0") // dual-stack
	srvAccepted := acceptAll(t, srvLn)
	port := strconv.Itoa(srvLn.Addr().(*net.TCPAddr).Port)
	aLn := cliA.listen(t, mnt, "tcp4", "10.251.1.2:0")
	aAccepted := acceptAll(t, aLn)

	const n, m, k = 7, 4, 3
	cliA.dial(t, mnt, "tcp4", net.JoinHostPort("10.251.1.1", port), n)
	cliB.dial(t, mnt, "tcp6", net.JoinHostPort("fd00:db8:2::1", port), m)
	web.dial(t, mnt, "tcp4", aLn.Addr().String(), k) // the server calls client-a: active, not its peer

	var snap *signals.AgentSnapshot
	deadline := time.Now().Add(5 * time.Second)
	for {
		agg, err := col.Collect()
		if err != nil {
			t.Fatal(err)
		}
		snap = agent.Snapshot("node-a", agg)
		w, ca := findWorkload(snap, "web"), findWorkload(snap, "client-a")
		if (w != nil && ca != nil && w.Counters.ConnectionsClosed == n+m+k && ca.Counters.ConnectionsClosed == n+k) ||
			time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := srvAccepted.Load(); got != n+m {
		t.Fatalf("server accepted %d connections, want %d", got, n+m)
	}
	if got := aAccepted.Load(); got != k {
		t.Fatalf("client-a accepted %d connections, want %d", got, k)
	}
	for _, c := range []struct {
		workload    string
		peers       []signals.AgentPeer
		passiveOpen uint64
	}{
		{"web", []signals.AgentPeer{{IP: "10.251.1.2", Connections: n}, {IP: "fd00:db8:2::2", Connections: m}}, n + m},
		{"client-a", []signals.AgentPeer{{IP: "10.251.1.1", Connections: k}}, k},
		{"client-b", nil, 0},
	} {
		w := findWorkload(snap, c.workload)
		if w == nil {
			t.Fatalf("no workload %s in the snapshot: %+v", c.workload, snap.Workloads)
		}
		if diff := cmp.Diff(c.peers, w.Peers); diff != "" {
			t.Errorf("%s peers (-want +got):\n%s", c.workload, diff)
		}
		if w.PeersDropped != 0 {
			t.Errorf("%s: %d connections from dropped peers, want 0", c.workload, w.PeersDropped)
		}
		if opened := w.Counters.ConnectionsOpened; c.workload == "web" && opened != n+m+k {
			t.Errorf("web opened %d connections, want %d (%d accepted, %d its own)", opened, n+m+k, n+m, k)
		}
	}

	// Who calls web, through an IP-to-workload table as the manager's pod
	// IP index gives it.
	byIP := map[string]signals.WorkloadKey{
		"10.251.1.1":    {Namespace: "shop", Name: "web"},
		"10.251.1.2":    {Namespace: "shop", Name: "client-a"},
		"fd00:db8:2::2": {Namespace: "edge", Name: "client-b"},
	}
	callers := map[signals.WorkloadKey]uint64{}
	for _, p := range findWorkload(snap, "web").Peers {
		wk, ok := byIP[p.IP]
		if !ok {
			t.Errorf("peer %s is no pod's address", p.IP)
			continue
		}
		callers[wk] += p.Connections
	}
	want := map[signals.WorkloadKey]uint64{{Namespace: "shop", Name: "client-a"}: n, {Namespace: "edge", Name: "client-b"}: m}
	if diff := cmp.Diff(want, callers); diff != "" {
		t.Errorf("callers of web (-want +got):\n%s", diff)
	}

	// The server's container goes away: its peers stay with the pod, and
	// the kernel forgets them.
	webID := kerneltest.ID(t, web.cg)
	_ = srvLn.Close()
	raw, err := objs.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(raw[webID].Peers) != 2 {
		t.Fatalf("kernel peers of the server's cgroup before removal: %v, want 2", raw[webID].Peers)
	}
	if err := objs.Forget([]uint64{webID}); err != nil {
		t.Fatal(err)
	}
	if raw, err = objs.Read(); err != nil {
		t.Fatal(err)
	}
	if s, ok := raw[webID]; ok && len(s.Peers) != 0 {
		t.Errorf("kernel still has peers of forgotten cgroup %d: %v", webID, s.Peers)
	}
}

func findWorkload(snap *signals.AgentSnapshot, name string) *signals.AgentWorkload {
	for i := range snap.Workloads {
		if snap.Workloads[i].Workload == name {
			return &snap.Workloads[i]
		}
	}
	return nil
}

// TestPeersBoundedInKernel: with room for fewer (cgroup, peer) pairs than a
// server pod has callers, the kernel's LRU map evicts pairs and the snapshot
// accounts for every accepted connection: listed plus dropped equals
// accepted.
func TestPeersBoundedInKernel(t *testing.T) {
	mnt := kerneltest.RequireRoot(t)
	root := kerneltest.Cgroup(t, mnt, kerneltest.RandName("meshshift-test-"))
	const uid = "0f5c3a2e-8b1d-4c6e-9a7f-0000000000ff"
	srv := &podNet{uid: uid, cg: kerneltest.Cgroup(t, root, filepath.Join("kubepods", "besteffort", "pod"+uid, "c")),
		ns: kerneltest.NewNetns(t)}
	cli := &podNet{cg: kerneltest.Cgroup(t, root, "loadgen"), ns: kerneltest.NewNetns(t)}
	vs, vc := kerneltest.Veth(t, srv.ns, cli.ns)
	srv.ns.AddAddr(t, vs, "10.252.0.1/16")
	const callers = 40
	for i := range callers {
		cli.ns.AddAddr(t, vc, "10.252.1."+strconv.Itoa(i+1)+"/16")
	}
	objs, err := bpf.Load(bpf.Options{MaxPeers: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = objs.Close() })
	if _, err := objs.AttachCgroup(root); err != nil {
		t.Fatal(err)
	}
	col := agent.NewCollector(objs, root, agent.StaticPods{uid: {Namespace: "shop", Name: "web-0", Workload: "web"}}, nil)
	col.SetWalkInterval(0)

	ln := srv.listen(t, mnt, "tcp4", "10.252.0.1:0")
	accepted := acceptAll(t, ln)
	kerneltest.InCgroup(t, mnt, cli.cg, func() {
		cli.ns.Do(t, func() {
			for i := range callers {
				d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("10.252.1." + strconv.Itoa(i+1))}}
				c, err := d.Dial("tcp4", ln.Addr().String())
				if err != nil {
					t.Errorf("dial from caller %d: %v", i+1, err)
					return
				}
				_ = c.Close()
			}
		})
	})
	if t.Failed() {
		t.FailNow()
	}
	var w *signals.AgentWorkload
	deadline := time.Now().Add(5 * time.Second)
	for {
		agg, err := col.Collect()
		if err != nil {
			t.Fatal(err)
		}
		w = findWorkload(agent.Snapshot("node-a", agg), "web")
		// The accept loop may lag behind the kernel's count.
		if (w != nil && w.Counters.ConnectionsOpened == callers && accepted.Load() == callers) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if w == nil || accepted.Load() != callers || w.Counters.ConnectionsOpened != callers {
		t.Fatalf("server workload %+v, accepted %d; want %d connections", w, accepted.Load(), callers)
	}
	var listed uint64
	for _, p := range w.Peers {
		listed += p.Connections
	}
	if len(w.Peers) > 8 || len(w.Peers) == 0 {
		t.Errorf("%d peers listed, want 1 to 8 (the kernel map's bound)", len(w.Peers))
	}
	if listed+w.PeersDropped != callers {
		t.Errorf("listed %d + dropped %d connections, want %d accepted", listed, w.PeersDropped, callers)
	}
	if w.PeersDropped == 0 {
		t.Errorf("no connection dropped with %d callers and room for 8", callers)
	}
}

// TestAgentPeersBound: the snapshot keeps the signals.MaxAgentPeers busiest
// peers (ties: the lower address), sorted by address, and counts the
// connections of the others, and those of pairs the kernel evicted, as
// dropped.
func TestAgentPeersBound(t *testing.T) {
	s := &bpf.Stats{Peers: map[netip.Addr]uint64{}}
	var total uint64
	extra := 10
	for i := range signals.MaxAgentPeers + extra {
		// Peer i gets i+1 connections: the extra lowest ones are left out.
		s.Peers[netip.MustParseAddr(fmt.Sprintf("10.0.%d.%d", i/200, i%200+1))] = uint64(i + 1)
		total += uint64(i + 1)
	}
	s.Peers[netip.MustParseAddr("fd00::1")] = 5000
	total += 5000
	const evicted = 3
	s.ConnPassiveOpened = total + evicted
	peers, dropped := agent.AgentPeers(s)
	if len(peers) != signals.MaxAgentPeers {
		t.Fatalf("%d peers, want %d", len(peers), signals.MaxAgentPeers)
	}
	var wantDropped uint64 = evicted
	for i := range extra + 1 { // the 11 quietest: 1..11 connections
		wantDropped += uint64(i + 1)
	}
	if dropped != wantDropped {
		t.Errorf("dropped %d, want %d", dropped, wantDropped)
	}
	if last := peers[len(peers)-1]; last != (signals.AgentPeer{IP: "fd00::1", Connections: 5000}) {
		t.Errorf("last peer %+v, want fd00::1 with 5000 (IPv6 sorts after IPv4)", last)
	}
	for i := 1; i < len(peers); i++ {
		a, b := netip.MustParseAddr(peers[i-1].IP), netip.MustParseAddr(peers[i].IP)
		if !a.Less(b) {
			t.Fatalf("peers not sorted by address: %s before %s", a, b)
		}
		if peers[i].Connections < uint64(extra+2) {
			t.Fatalf("peer %+v kept, but it is among the quietest", peers[i])
		}
	}
	if p, d := agent.AgentPeers(&bpf.Stats{}); p != nil || d != 0 {
		t.Errorf("no peers: got %v, %d", p, d)
	}
}

// TestStatsAddCopiesPeers: adding into a Stats never writes into the peers
// map of the Stats added (collections add retired cgroups' figures again and
// again).
func TestStatsAddCopiesPeers(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	retired := bpf.Stats{Peers: map[netip.Addr]uint64{a: 2}}
	for range 3 {
		var sum bpf.Stats
		sum.Add(&retired)
		sum.Add(&bpf.Stats{Peers: map[netip.Addr]uint64{a: 1}})
		if sum.Peers[a] != 3 {
			t.Fatalf("sum %d, want 3", sum.Peers[a])
		}
	}
	if retired.Peers[a] != 2 {
		t.Errorf("the added Stats changed: %d, want 2", retired.Peers[a])
	}
}
