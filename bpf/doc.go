// Package bpf holds meshshift's eBPF programs (agent.c, compiled by bpf2go for
// amd64 and arm64; the objects are committed) and a small typed API over them:
// Load, attach to a cgroup v2 folder and to tp_btf tracepoints (each returning
// link.Link), read the per-cgroup counters, Close.
//
// The programs count, per socket cgroup: TCP connections opened (active and
// passive), failed connects, closes, payload bytes, retransmitted segments,
// resets sent and received, an RTT (srtt) histogram; HTTP/1.x requests and
// responses by status class with a latency histogram on the server and the
// client side (pipelined requests included); the protocol class of each
// connection (HTTP/1, HTTP/2 or gRPC, TLS, other); and the peer address of
// every accepted connection (Stats.Peers: who calls the cgroup's pods, in an
// LRU map of Options.MaxPeers (cgroup, address) pairs). The hot path keeps to per-CPU maps, a preallocated
// per-connection table (32768 entries of 40 bytes, indexed by socket cookie)
// and socket local storage for the sockets the table cannot hold: nothing is
// sent to user space per packet, and a new connection allocates nothing.
//
// HTTP/2 (cleartext at the application's socket, whatever the dataplane
// does on the wire): the programs follow each connection's frames in both
// directions by TCP sequence number and copy only its header frames to user
// space through a ring buffer (http2.h). Objects.StartHTTP2 reads them:
// one HPACK decoder per connection and direction (golang.org/x/net's hpack),
// fed every header block in order; a request starts at the client's HEADERS
// on a new stream and ends at the response's END_STREAM; gRPC (content-type
// application/grpc) is counted by grpc-status (GRPCClass says which codes are
// server errors). A connection that lost header frames is marked
// desynchronised and no longer counted (L7Stats.Desynchronised): a lost frame
// never yields a wrong status.
//
// HTTP timing reads the clock only on ingress; on egress it takes the time TCP
// stamped on the segment (skb->tstamp: the same monotonic clock; with fq
// pacing the segment's departure time).
//
// Kernel needs: BTF, cgroup v2, sock_ops, cgroup_skb, socket local storage,
// bpf_skc_to_tcp_sock, BPF atomics with fetch, bpf_loop and ring buffers (5.17 or
// later); tp_btf for
// the reset counters. fentry/fexit and kprobes are not used. Retransmits come
// from the sock_ops retransmit callback, which tcp_retransmit_skb calls with
// its result: only successful retransmissions count.
//
// This package must not import Kubernetes client code, Prometheus or other
// meshshift packages: attribution and export live in bpf/agent.
package bpf
