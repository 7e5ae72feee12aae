package signals

import "time"

// AgentSnapshotPath is where the node agent serves its AgentSnapshot as JSON.
const AgentSnapshotPath = "/snapshot"

// AgentSnapshot is what one node agent serves: cumulative counters per
// workload since the agent started (a restarted agent starts from zero; a
// reader computes rates from two snapshots and treats a decrease as a restart).
type AgentSnapshot struct {
	// Node is the node's name.
	Node string `json:"node"`
	// Time is when the agent read the kernel's counters.
	Time time.Time `json:"time"`
	// Workloads sorted by namespace and name.
	Workloads []AgentWorkload `json:"workloads"`
	// Unattributed is traffic the agent could not put on a pod.
	Unattributed AgentCounters `json:"unattributed"`
}

// AgentWorkload is one workload's counters on one node.
type AgentWorkload struct {
	Namespace string `json:"namespace"`
	// Workload is WorkloadName of its pods.
	Workload string `json:"workload"`
	// Pods is how many of its pods the node has counters for.
	Pods     int           `json:"pods"`
	Counters AgentCounters `json:"counters"`
	// Peers are the remote addresses of connections the workload's pods
	// accepted on this node (who calls it), sorted by IP, at most
	// MaxAgentPeers of them (the busiest); PeersDropped counts the accepted
	// connections from addresses left out.
	Peers        []AgentPeer `json:"peers,omitempty"`
	PeersDropped uint64      `json:"peersDropped,omitempty"`
}

// MaxAgentPeers bounds AgentWorkload.Peers.
const MaxAgentPeers = 256

// AgentPeer is one remote address and how many connections from it a
// workload accepted since the agent started.
type AgentPeer struct {
	// IP is the peer's address as the server saw it (IPv4 dotted, IPv6
	// RFC 5952; an IPv4-mapped IPv6 address is given as IPv4).
	IP          string `json:"ip"`
	Connections uint64 `json:"connections"`
}

// AgentCounters are cumulative TCP and HTTP counters.
type AgentCounters struct {
	ConnectionsOpened uint64 `json:"connectionsOpened"` // active + passive
	ConnectionsFailed uint64 `json:"connectionsFailed"`
	ConnectionsClosed uint64 `json:"connectionsClosed"`
	BytesSent         uint64 `json:"bytesSent"`
	BytesReceived     uint64 `json:"bytesReceived"`
	Retransmits       uint64 `json:"retransmits"`
	ResetsSent        uint64 `json:"resetsSent"`
	ResetsReceived    uint64 `json:"resetsReceived"`
	// Protocols counts connections by class: "http1", "http2", "tls", "other".
	Protocols map[string]uint64 `json:"protocols,omitempty"`
	// Server is HTTP/1.x served by the workload; Client is what it asked others.
	Server AgentHTTP `json:"server"`
	Client AgentHTTP `json:"client"`
}

// AgentHTTP are HTTP/1.x counters of one side.
type AgentHTTP struct {
	Requests uint64 `json:"requests"`
	// Responses by status class: index 0 is 1xx ... index 4 is 5xx.
	Responses [5]uint64 `json:"responses"`
	// LatencyBuckets[i] counts requests whose latency (request's first byte to
	// response's first byte) was below 2^(i+1) microseconds and not below
	// 2^i (bucket 0 from zero; the last bucket also holds everything above).
	LatencyBuckets []uint64 `json:"latencyBuckets,omitempty"`
	// LatencySumSeconds is the sum of all measured latencies.
	LatencySumSeconds float64 `json:"latencySumSeconds"`
}
