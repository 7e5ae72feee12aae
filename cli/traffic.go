package cli

import (
	"fmt"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
		t := signals.WorkloadTraffic{RequestRate: w.RequestRate, ErrorRate: w.ErrorRate, P99Latency: w.P99Latency.Duration,
			ConnectionRate: w.ConnectionRate, RetransmitRate: w.RetransmitRate, Protocols: w.Protocols,
			SampleTime: f.Time.Time, Window: time.Minute}
		if w.SampleTime != nil {
			t.SampleTime = w.SampleTime.Time
		}
		if w.Window != nil {
			t.Window = w.Window.Duration
		}
		s.Workloads[signals.WorkloadKey{Namespace: w.Namespace, Name: w.Workload}] = t
	}
	return s, nil
}
