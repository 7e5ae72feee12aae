// Package bpf holds meshshift's eBPF programs (agent.c, compiled by bpf2go for
// amd64 and arm64; the objects are committed) and a small typed API over them:
// Load, attach to a cgroup v2 folder and to tp_btf tracepoints (each returning
// link.Link), read the per-cgroup counters, Close.
//
// The programs count, per socket cgroup: TCP connections opened (active and
// passive), failed connects, closes, payload bytes, retransmitted segments,
// resets sent and received, an RTT (srtt) histogram; HTTP/1.x requests and
// responses by status class with a latency histogram on the server and the
// client side; the protocol class of each connection (HTTP/1, HTTP/2 or gRPC
// preface, TLS, other). The hot path keeps to per-CPU maps and socket local
// storage: nothing is sent to user space per packet.
//
// Kernel needs: BTF, cgroup v2, sock_ops, cgroup_skb, socket local storage,
// bpf_skc_to_tcp_sock and BPF atomics with fetch (5.12 or later); tp_btf for
// the reset counters. fentry/fexit and kprobes are not used. Retransmits come
// from the sock_ops retransmit callback, which tcp_retransmit_skb calls with
// its result: only successful retransmissions count.
//
// This package must not import Kubernetes client code, Prometheus or other
// meshshift packages: attribution and export live in bpf/agent.
package bpf
