package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/bpf/agent"
	"github.com/meshshift/meshshift/signals"
)

// agentMemLimit is the GOMEMLIMIT of the agent's DaemonSet.
const agentMemLimit = 40 << 20

// runRSS gives n kubelet-shaped pod cgroups one connection each, runs the
// agent's collector and both endpoints over them, and prints the process's
// resident set size.
func runRSS(n int) (err error) {
	limit := "GOMEMLIMIT=" + os.Getenv("GOMEMLIMIT")
	if os.Getenv("GOMEMLIMIT") == "" {
		// The soft memory limit config/agent/daemonset.yaml gives the agent.
		debug.SetMemoryLimit(agentMemLimit)
		limit = fmt.Sprintf("memlimit=%dMiB", agentMemLimit>>20)
	}
	mnt, err := bpf.Cgroup2Mount()
	if err != nil {
		return err
	}
	orig, err := bpf.ProcessCgroup(mnt)
	if err != nil {
		return err
	}
	_, parent, undo, err := benchCgroup("meshshift-rss-")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, undo()) }()
	// benchCgroup moved us into parent; the pods are its children, and a
	// cgroup with processes cannot have children that do: go back first.
	if err := bpf.MoveProcess(orig); err != nil {
		return err
	}

	objs, err := bpf.Load(bpf.Options{MaxCgroups: n + 16})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, objs.Close()) }()
	if _, err := objs.AttachCgroup(parent); err != nil {
		return err
	}
	if err := objs.StartHTTP2(0); err != nil {
		return err
	}

	pods := agent.StaticPods{}
	var ln net.Listener
	for i := range n {
		uid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		cg := h2PodCgroup(parent, i)
		if err := os.MkdirAll(cg, 0o755); err != nil {
			return fmt.Errorf("create cgroup: %w", err)
		}
		pods[uid] = agent.PodMeta{Namespace: fmt.Sprintf("ns-%d", i%20), Name: fmt.Sprintf("pod-%d", i), Workload: fmt.Sprintf("wl-%d", i%100)}
		if err := bpf.MoveProcess(cg); err != nil {
			return err
		}
		if i == 0 {
			if ln, err = startEcho(); err != nil {
				return errors.Join(err, bpf.MoveProcess(orig))
			}
		}
		err := exchange(ln.Addr().String())
		if err2 := bpf.MoveProcess(orig); err != nil || err2 != nil {
			return errors.Join(err, err2)
		}
	}
	defer ln.Close()
	stopPeers, err := startH2Peers(parent, n)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopPeers()) }()
	// Both ends of every connection are followed once their records are read.
	for deadline := time.Now().Add(10 * time.Second); objs.HTTP2Connections() < 2*n; {
		if time.Now().After(deadline) {
			var h2, reqs uint64
			if m, err := objs.Read(); err == nil {
				for _, s := range m {
					h2 += s.Proto[bpf.ProtoHTTP2]
					reqs += s.L7.HTTP2[bpf.SideClient].Requests
				}
			}
			return fmt.Errorf("http2 connections followed: %d, want %d (classified http2: %d, requests: %d)", objs.HTTP2Connections(), 2*n, h2, reqs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	col := agent.NewCollector(objs, parent, pods, nil)
	h := agent.Handler("bench", col)
	var agg *agent.Aggregate
	for range 5 {
		if agg, err = col.Collect(); err != nil {
			return err
		}
		for _, path := range []string{"/metrics", signals.AgentSnapshotPath} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
			if rec.Code != 200 {
				return fmt.Errorf("%s: status %d", path, rec.Code)
			}
		}
	}
	known, h2 := 0, 0
	for _, p := range agg.Pods {
		if p.Known && p.Stats.ConnActiveOpened+p.Stats.ConnPassiveOpened > 0 {
			known++
		}
		if p.Stats.L7.HTTP2[bpf.SideClient].Requests == 3 {
			h2++
		}
	}
	if known != n || h2 != n {
		return fmt.Errorf("collector attributed traffic to %d pods and HTTP/2 requests to %d, want %d", known, h2, n)
	}
	runtime.GC()
	debug.FreeOSMemory()
	rss, hwm, err := memory()
	if err != nil {
		return err
	}
	fmt.Printf("agent: cgroups=%d tracked=%d http2_conns=%d %s rss_mib=%.1f peak_rss_mib=%.1f\n", n, agg.Cgroups, objs.HTTP2Connections(), limit, rss, hwm)
	return nil
}

func startEcho() (net.Listener, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.CopyN(c, c, int64(len(request)))
			}()
		}
	}()
	return ln, nil
}

func exchange(addr string) error {
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	if _, err := c.Write(request); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	_, err = io.ReadFull(c, make([]byte, len(request)))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

// memory returns VmRSS and VmHWM in MiB.
func memory() (rss, hwm float64, err error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0, fmt.Errorf("open status: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %s: %w", k, err)
		}
		if k == "VmRSS" {
			rss = kb / 1024
		} else {
			hwm = kb / 1024
		}
	}
	return rss, hwm, sc.Err()
}
