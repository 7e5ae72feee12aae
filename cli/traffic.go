package cli

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/meshshift/meshshift/signals"
)

// TrafficFile is the offline traffic snapshot plan --traffic reads (YAML or
// JSON), e.g. exported from Prometheus or the node agent.
type TrafficFile struct {
	// Time is when the snapshot was taken.
	Time      metav1.Time           `json:"time"`
	Workloads []TrafficFileWorkload `json:"workloads"`
}

// TrafficFileWorkload is one workload's figures.
type TrafficFileWorkload struct {
	Namespace      string             `json:"namespace"`
	Workload       string             `json:"workload"`
	RequestRate    float64            `json:"requestRate,omitempty"`
	ErrorRate      float64            `json:"errorRate,omitempty"`
	P99Latency     metav1.Duration    `json:"p99Latency,omitempty"`
	ConnectionRate float64            `json:"connectionRate,omitempty"`
	RetransmitRate float64            `json:"retransmitRate,omitempty"`
	Protocols      []signals.Protocol `json:"protocols,omitempty"`
	// Callers are the workloads seen calling this one, each "namespace/name"
	// (for the node agents: the peers of its accepted connections, resolved
	// to workloads). plan orders a workload's sidecar callers before it when
	// its L7 policies move to a waypoint; precheck refuses to flip it while
	// one of them stays on a sidecar.
	Callers []string `json:"callers,omitempty"`
	// SampleTime defaults to the file's time; Window to one minute.
	SampleTime *metav1.Time     `json:"sampleTime,omitempty"`
	Window     *metav1.Duration `json:"window,omitempty"`
}

// LoadTraffic reads a traffic snapshot file.
func LoadTraffic(path string) (*signals.TrafficSnapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read traffic snapshot: %w", err)
	}
	return ParseTraffic(path, b)
}

// ParseTraffic reads a traffic snapshot from b; path names it in errors.
func ParseTraffic(path string, b []byte) (*signals.TrafficSnapshot, error) {
	var f TrafficFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("traffic snapshot %s: %w", path, err)
	}
	s := &signals.TrafficSnapshot{Time: f.Time.Time, Workloads: map[signals.WorkloadKey]signals.WorkloadTraffic{}}
	for i, w := range f.Workloads {
		field := fmt.Sprintf("workloads[%d]", i)
		if w.Namespace == "" || w.Workload == "" {
			return nil, fmt.Errorf("traffic snapshot %s: field %s: namespace and workload are required", path, field)
		}
		if w.ErrorRate < 0 || w.ErrorRate > 1 {
			return nil, fmt.Errorf("traffic snapshot %s: field %s.errorRate: %v is not a fraction from 0 to 1", path, field, w.ErrorRate)
		}
		for _, p := range w.Protocols {
			switch p {
			case signals.ProtocolHTTP1, signals.ProtocolHTTP2, signals.ProtocolTLS, signals.ProtocolOther:
			default:
				return nil, fmt.Errorf("traffic snapshot %s: field %s.protocols: %q is not one of http1, http2, tls, other", path, field, p)
			}
		}
		callers, err := parseCallers(w.Callers, field+".callers")
		if err != nil {
			return nil, fmt.Errorf("traffic snapshot %s: %w", path, err)
		}
		t := signals.WorkloadTraffic{Callers: callers, RequestRate: w.RequestRate, ErrorRate: w.ErrorRate, P99Latency: w.P99Latency.Duration,
			ConnectionRate: w.ConnectionRate, RetransmitRate: w.RetransmitRate, Protocols: w.Protocols,
			SampleTime: f.Time.Time, Window: time.Minute}
		if w.SampleTime != nil {
			t.SampleTime = w.SampleTime.Time
		}
		if w.Window != nil {
			t.Window = w.Window.Duration
		}
		k := signals.WorkloadKey{Namespace: w.Namespace, Name: w.Workload}
		if _, dup := s.Workloads[k]; dup {
			return nil, fmt.Errorf("traffic snapshot %s: field %s: workload %s is listed twice", path, field, k)
		}
		s.Workloads[k] = t
	}
	return s, nil
}

// parseCallers reads "namespace/name" entries into sorted keys without
// duplicates; field names the list in errors.
func parseCallers(in []string, field string) ([]signals.WorkloadKey, error) {
	if len(in) == 0 {
		return nil, nil
	}
	seen := map[signals.WorkloadKey]bool{}
	out := make([]signals.WorkloadKey, 0, len(in))
	for i, c := range in {
		ns, name, ok := strings.Cut(c, "/")
		bad := ""
		switch {
		case !ok || strings.Contains(name, "/"):
			bad = "is not namespace/name"
		case len(validation.IsDNS1123Label(ns)) > 0:
			bad = "has an invalid namespace (want a DNS-1123 label)"
		case len(validation.IsDNS1123Subdomain(name)) > 0:
			bad = "has an invalid workload name (want a DNS-1123 subdomain)"
		}
		if bad != "" {
			return nil, fmt.Errorf("field %s[%d]: %q %s", field, i, c, bad)
		}
		k := signals.WorkloadKey{Namespace: ns, Name: name}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
