// Command agentbench measures the node agent's eBPF overhead on loopback: it
// alternates runs with nothing attached (off), with the agent's programs
// (agent) and with do-nothing programs at the same hook points (hooks) on the
// cgroup the load runs in, for stream, request/response,
// connect-request-close and gRPC (grpc-go over h2c, unary and server
// streaming, one connection per run) traffic, and prints the ratios (best run of one mode /
// best run of the other: other tenants of a shared machine only slow runs
// down; the median of the per-round paired ratios is printed too). hooks/off
// is what attaching anything at those hooks costs, the floor under agent/off.
// The mean nanoseconds per program run come from the kernel's BPF run-time
// statistics in a separate phase (the statistics add their own clock reads;
// the cost of an empty program is printed as the floor), run three times:
// ns_per_run is the median of the three means. Its last line is
//
//	agent: stream_ratio=<x> rr_ratio=<y> crr_ratio=<z> grpc_ratio=<g> ns_per_run=<n> grpc_user_us_per_req=<u>
//
// (the ratios are agent/off; grpc_user_us_per_req is the CPU time of the
// agent's HTTP/2 reader thread, HPACK decoding and request accounting for both
// ends of a call, per gRPC call). With -empty it leaves the agent's programs out
// of the rounds (off and hooks only; the ratios are then hooks/off).
//
// With -workloads it runs only the workloads named (the last line then names
// only those), for profiling one of them.
//
// With -cost-only it skips the alternating rounds and prints only the
// programs' run time (per run and per unit of work of each load).
//
// With -rss it instead tracks 1,000 cgroups through the agent's collector,
// with one live HTTP/2 connection from each (held by a child process; the
// agent follows both ends: 2,000 HPACK decoder pairs), and prints the
// process's resident set size.
//
// It needs root (CAP_BPF, CAP_NET_ADMIN, cgroup writes). It must not be
// imported.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	rounds := flag.Int("rounds", 8, "alternating rounds (1-50)")
	dur := flag.Duration("run", 400*time.Millisecond, "length of one measured run (50ms-5s)")
	empty := flag.Bool("empty", false, "attach do-nothing programs instead of the agent's: the cost of the hook points alone")
	flag.StringVar(&emptyHooks, "empty-hooks", "sockops,ingress,egress", "with -empty: the hook points that get a do-nothing program (comma-separated: sockops, ingress, egress)")
	costOnly := flag.Bool("cost-only", false, "only measure the programs' run time per run and per operation (no alternating rounds)")
	rss := flag.Bool("rss", false, "measure the agent's RSS with -cgroups cgroups tracked instead")
	cgroups := flag.Int("cgroups", 1000, "cgroups to track for -rss (1-10000)")
	h2Peers := flag.String("h2-peers", "", "internal: run -rss's HTTP/2 connections below this cgroup")
	flag.StringVar(&onlyWorkloads, "workloads", "stream,rr,crr,grpc", "the workloads to run (comma-separated: stream, rr, crr, grpc); the last line names only those")
	flag.Parse()
	var err error
	switch {
	case *rounds < 1 || *rounds > 50:
		err = fmt.Errorf("-rounds %d: allowed 1 to 50", *rounds)
	case *dur < 50*time.Millisecond || *dur > 5*time.Second:
		err = fmt.Errorf("-run %v: allowed 50ms to 5s", *dur)
	case *cgroups < 1 || *cgroups > 10000:
		err = fmt.Errorf("-cgroups %d: allowed 1 to 10000", *cgroups)
	case os.Geteuid() != 0:
		err = fmt.Errorf("agentbench needs root (CAP_BPF, CAP_NET_ADMIN, cgroup writes)")
	}
	if err == nil {
		if *h2Peers != "" {
			err = runH2Peers(*h2Peers, *cgroups)
		} else if *rss {
			err = runRSS(*cgroups)
		} else {
			err = runOverhead(*rounds, *dur, *empty, *costOnly)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentbench:", err)
		os.Exit(1)
	}
}
