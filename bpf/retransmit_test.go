package bpf_test

import (
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/bpf/kerneltest"
)

// TestRetransmitsWhenPacketsAreDropped drops the client's data segments with
// an nftables rule inside the server's namespace (netem is not available),
// lifts the rule after a while and expects the client's cgroup to have
// counted retransmits on a connection that then completes.
func TestRetransmitsWhenPacketsAreDropped(t *testing.T) {
	objs, mnt, srvCg, cliCg := setup(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nftables' nft")
	}
	srvID, cliID := kerneltest.ID(t, srvCg), kerneltest.ID(t, cliCg)
	a, b := kerneltest.NewNetns(t), kerneltest.NewNetns(t)
	kerneltest.VethPair(t, a, b, "10.250.7.1", "10.250.7.2")

	var ln net.Listener
	kerneltest.InCgroup(t, mnt, srvCg, func() {
		b.Do(t, func() {
			var err error
			ln, err = net.Listen("tcp4", "10.250.7.2:9000")
			if err != nil {
				t.Error(err)
			}
		})
	})
	if ln == nil {
		t.FailNow()
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		data, _ := io.ReadAll(c)
		got <- string(data)
	}()

	var c net.Conn
	kerneltest.InCgroup(t, mnt, cliCg, func() {
		a.Do(t, func() {
			var err error
			c, err = net.DialTimeout("tcp4", "10.250.7.2:9000", 5*time.Second)
			if err != nil {
				t.Error(err)
			}
		})
	})
	if c == nil {
		t.FailNow()
	}
	t.Cleanup(func() { c.Close() })

	// Drop every segment that carries data towards the server.
	nft := func(script string) {
		t.Helper()
		cmd := exec.Command("ip", "netns", "exec", b.Name, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft: %v: %s", err, out)
		}
	}
	nft("table inet meshshift_test {\n chain in {\n  type filter hook input priority 0;\n  tcp dport 9000 ip length > 100 drop\n }\n}\n")
	lifted := false
	lift := func() {
		if !lifted {
			nft("delete table inet meshshift_test\n")
			lifted = true
		}
	}
	t.Cleanup(lift)

	msg := strings.Repeat("x", 1000)
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // retransmission timeouts at about 0.2, 0.6, 1.4 s
	lift()
	c.Close()
	select {
	case data := <-got:
		if data != msg {
			t.Fatalf("server got %d bytes, want %d", len(data), len(msg))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server never got the data")
	}

	m := waitFor(t, objs, []uint64{srvID, cliID}, func(m map[uint64]*bpf.Stats) bool {
		return m[cliID].ConnClosed == 1 && m[srvID].ConnClosed == 1
	})
	cs, ss := m[cliID], m[srvID]
	if cs.Retransmits < 1 {
		t.Errorf("client retransmits: got %d, want >= 1", cs.Retransmits)
	}
	if ss.Retransmits != 0 {
		t.Errorf("server retransmits: got %d, want 0 (nothing it sent was dropped)", ss.Retransmits)
	}
	if cs.ConnActiveOpened != 1 || ss.ConnPassiveOpened != 1 || cs.ConnFailed != 0 {
		t.Errorf("connections: client opened %d failed %d, server opened %d; want 1, 0, 1",
			cs.ConnActiveOpened, cs.ConnFailed, ss.ConnPassiveOpened)
	}
	if ss.BytesReceived != uint64(len(msg)) {
		t.Errorf("server bytes received: got %d, want %d", ss.BytesReceived, len(msg))
	}
	t.Logf("client retransmitted %d segments", cs.Retransmits)
}
