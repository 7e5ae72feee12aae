package signals

import (
	"strings"
	"time"
)

// Protocol is an application protocol seen on a workload's connections, as the
// node agent classifies them.
type Protocol string

const (
	// ProtocolHTTP1 is HTTP/1.x.
	ProtocolHTTP1 Protocol = "http1"
	// ProtocolHTTP2 is HTTP/2, including gRPC (recognised by the connection preface).
	ProtocolHTTP2 Protocol = "http2"
	// ProtocolTLS is TLS the workload itself terminates or passes through
	// (a handshake record at the application's socket).
	ProtocolTLS Protocol = "tls"
	// ProtocolOther is any other TCP protocol (server-first protocols such as
	// MySQL or SMTP, or anything unrecognised).
	ProtocolOther Protocol = "other"
)

// WorkloadKey names a workload: its namespace and its top-level owner's name
// (a Deployment's name for ReplicaSet-owned pods; see WorkloadName).
type WorkloadKey struct {
	Namespace string
	Name      string
}

// String is "namespace/name".
func (k WorkloadKey) String() string { return k.Namespace + "/" + k.Name }

// WorkloadTraffic is one workload's traffic over the source's last window, as
// measured at the application's socket (the same whatever dataplane it runs on).
// Rates are per second over Window; a zero value of a figure means "none seen"
// when Requests/Connections say there was a sample.
type WorkloadTraffic struct {
	// RequestRate is HTTP requests served per second.
	RequestRate float64
	// ErrorRate is the fraction (0..1) of those requests answered with a 5xx.
	ErrorRate float64
	// P99Latency is the 99th percentile of server-side request latency.
	P99Latency time.Duration
	// ConnectionRate is new TCP connections (accepted and opened) per second.
	ConnectionRate float64
	// RetransmitRate is TCP segments retransmitted per second.
	RetransmitRate float64
	// Protocols seen on the workload's connections, sorted, without duplicates.
	Protocols []Protocol
	// Callers are the workloads seen opening connections to this one (peers of
	// its accepted connections, resolved through pod addresses), sorted by
	// namespace and name, without duplicates.
	Callers []WorkloadKey
	// SampleTime is when the figures were measured (end of Window).
	SampleTime time.Time
	// Window is the span the rates are computed over.
	Window time.Duration
}

// Age is how old the sample is at now (zero when SampleTime is in the future).
func (t WorkloadTraffic) Age(now time.Time) time.Duration {
	if d := now.Sub(t.SampleTime); d > 0 {
		return d
	}
	return 0
}

// Stale reports whether the sample is older than maxAge at now, or has no time.
func (t WorkloadTraffic) Stale(now time.Time, maxAge time.Duration) bool {
	return t.SampleTime.IsZero() || t.Age(now) > maxAge
}

// HasProtocol reports whether p was seen.
func (t WorkloadTraffic) HasProtocol(p Protocol) bool {
	for _, x := range t.Protocols {
		if x == p {
			return true
		}
	}
	return false
}

// TrafficSnapshot is every workload's traffic at one time, as a source last read
// it. A snapshot is immutable once published: sources build a new one and swap it.
type TrafficSnapshot struct {
	// Time is when the source assembled the snapshot.
	Time time.Time
	// Workloads maps each workload to its figures.
	Workloads map[WorkloadKey]WorkloadTraffic
}

// Lookup returns the traffic of a workload; ok is false when the snapshot has no
// data for it (or the snapshot is nil).
func (s *TrafficSnapshot) Lookup(namespace, workload string) (WorkloadTraffic, bool) {
	if s == nil {
		return WorkloadTraffic{}, false
	}
	t, ok := s.Workloads[WorkloadKey{Namespace: namespace, Name: workload}]
	return t, ok
}

// WorkloadName returns the name of the workload a pod belongs to: for a pod
// owned by a ReplicaSet whose name ends in "-<pod-template-hash>" it is the
// Deployment's name (an Argo Rollout's ReplicaSets carry the hash as
// rollouts-pod-template-hash: the Rollout's name); otherwise the owner's
// name; with no owner, the pod's name. The node agent's workload label and
// the traffic snapshot use the same name.
func WorkloadName(ownerKind, ownerName, podName string, podLabels map[string]string) string {
	if ownerName == "" {
		return podName
	}
	if ownerKind == "ReplicaSet" {
		for _, l := range []string{"pod-template-hash", "rollouts-pod-template-hash"} {
			if h := podLabels[l]; h != "" && strings.HasSuffix(ownerName, "-"+h) {
				return ownerName[:len(ownerName)-len(h)-1]
			}
		}
	}
	return ownerName
}
