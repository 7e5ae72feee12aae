// Package agent is meshshift's node agent around the eBPF programs of package
// bpf: it attributes each cgroup's counters to a pod (cgroup v2 tree walk,
// kubelet layouts for the systemd and cgroupfs drivers with containerd, CRI-O
// and Docker), names the pod's namespace and workload from a node-local pod
// informer, and exports the figures as Prometheus metrics on its own registry
// and as a per-workload JSON snapshot that signals.AgentSource reads. It also
// probes what the node's kernel supports and labels the Node.
//
// Metrics (labels namespace, pod, workload on every one). Cardinality per pod
// on the node: at most 15 TCP series plus the RTT histogram (once a
// connection closed), and per HTTP side and protocol the pod used (saw a
// request or a response) 4 series plus a histogram, for gRPC one series per
// status code seen; plus one "unattributed" set: traffic
// whose cgroup is not a pod's, and cgroups beyond bpf.Options.MaxCgroups:
//
//	meshshift_tcp_connections_opened_total{direction="active|passive"}
//	meshshift_tcp_connections_failed_total      connects that never established
//	meshshift_tcp_connections_closed_total
//	meshshift_tcp_connections_active            gauge
//	meshshift_tcp_protocol_connections_total{protocol="http1|http2|tls|other"}
//	meshshift_tcp_sent_bytes_total, meshshift_tcp_received_bytes_total   payload bytes
//	meshshift_tcp_retransmits_total             retransmitted segments
//	meshshift_tcp_resets_total{direction="sent|received"}
//	meshshift_tcp_rtt_seconds                   histogram, smoothed RTT at close
//	meshshift_http_requests_total{side="server|client", protocol="http1|http2|grpc", status_class="2xx".."5xx"}
//	                                            requests answered, by the final
//	                                            response's class (1xx is interim);
//	                                            gRPC by grpc-status: OK 2xx, the
//	                                            server errors of bpf.GRPCServerError
//	                                            (Unknown, DeadlineExceeded,
//	                                            Unimplemented, Internal, Unavailable,
//	                                            DataLoss; OpenTelemetry's gRPC server
//	                                            convention) 5xx, other codes 4xx
//	meshshift_http_request_duration_seconds{side, protocol}   histogram: HTTP/1.x
//	                                            request's first byte to response's
//	                                            first byte; HTTP/2 and gRPC request's
//	                                            HEADERS to response's END_STREAM
//	meshshift_grpc_requests_total{side, grpc_code="OK|NotFound|..."}   gRPC calls
//	                                            answered, by code (codes seen only)
//	meshshift_http2_desynchronised_connections_total   HTTP/2 connections no
//	                                            longer counted (header frames lost)
//	meshshift_agent_cgroups_tracked             gauge, no pod labels
//
// Histogram buckets are powers of four microseconds (4us .. 16.8s, 12 buckets).
//
// Who calls whom: the snapshot's AgentWorkload.Peers lists, per workload, the
// remote addresses of the connections its pods accepted (counted by the kernel
// when an accepted connection's handshake completes; connections a pod opens
// are not its peers), IPv4-mapped IPv6 addresses as IPv4, at most
// signals.MaxAgentPeers of them (the busiest); PeersDropped counts the
// accepted connections on no listed peer. The kernel keeps the counts in an
// LRU map of bpf.Options.MaxPeers (cgroup, address) pairs (default
// bpf.DefaultMaxPeers, about 100 bytes each): when it is full the least
// recently used pairs are evicted, their connections then count as dropped
// and a returning peer counts from zero again. There is no per-peer metric
// here: the manager resolves the addresses to workloads and exports the
// bounded metric.
//
// This package must not import policies, webhook, migrator or cmd; of signals
// it uses only the plain snapshot types.
package agent
