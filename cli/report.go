package cli

import (
	"fmt"
	"io"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

// NamespaceReport is one namespace's traffic and sidecar overhead.
type NamespaceReport struct {
	Namespace string `json:"namespace"`
	Workloads int    `json:"workloads"`
	Pods      int32  `json:"pods"`
	// SidecarPods run a sidecar now (current mode sidecar).
	SidecarPods int32 `json:"sidecarPods"`
	// SidecarCPU and SidecarMemory are what those sidecars request.
	SidecarCPU    resource.Quantity `json:"sidecarCPU"`
	SidecarMemory resource.Quantity `json:"sidecarMemory"`
	// WithTraffic counts the workloads the snapshot has figures for.
	WithTraffic    int     `json:"withTraffic"`
	RequestRate    float64 `json:"requestRate"`
	ErrorRate      float64 `json:"errorRate"`
	MaxP99Latency  string  `json:"maxP99Latency"`
	ConnectionRate float64 `json:"connectionRate"`
	RetransmitRate float64 `json:"retransmitRate"`
	// CPUPerKRequests is the sidecar CPU requested per 1,000 requests/s served
	// (millicores): what each unit of traffic pays for its sidecars.
	CPUPerKRequests string `json:"sidecarMilliCPUPer1kRPS,omitempty"`
}

// Report is the per-namespace report.
type Report struct {
	SnapshotTime time.Time         `json:"snapshotTime,omitzero"`
	Namespaces   []NamespaceReport `json:"namespaces"`
}

// BuildReport sums each namespace's workloads, their sidecars' resource
// requests and the traffic snapshot's figures (rates add up; the error rate
// is weighted by requests; p99 is the namespace's worst workload).
func BuildReport(inv *Inventory, o *Options) *Report {
	r := &Report{}
	if inv.Traffic != nil {
		r.SnapshotTime = inv.Traffic.Time
	}
	by := map[string]*NamespaceReport{}
	maxP99 := map[string]time.Duration{}
	for _, e := range inv.Evaluate(o) {
		if e.Decision.Excluded {
			continue
		}
		ns := e.W.Namespace
		nr := by[ns]
		if nr == nil {
			nr = &NamespaceReport{Namespace: ns}
			by[ns] = nr
		}
		nr.Workloads++
		nr.Pods += e.W.Replicas
		if e.Current == meshv1alpha1.ModeSidecar {
			nr.SidecarPods += e.W.Replicas
			cpu, mem := sidecarRequests(&e.W.Template)
			nr.SidecarCPU.Add(times(cpu, e.W.Replicas))
			nr.SidecarMemory.Add(times(mem, e.W.Replicas))
		}
		if !e.Input.HasTraffic {
			continue
		}
		t := &e.Input.Traffic
		nr.WithTraffic++
		nr.ErrorRate += t.ErrorRate * t.RequestRate // weighted; divided below
		nr.RequestRate += t.RequestRate
		nr.ConnectionRate += t.ConnectionRate
		nr.RetransmitRate += t.RetransmitRate
		if t.P99Latency > maxP99[ns] {
			maxP99[ns] = t.P99Latency
		}
	}
	for ns, nr := range by {
		if nr.RequestRate > 0 {
			nr.ErrorRate /= nr.RequestRate
			nr.CPUPerKRequests = fmt.Sprintf("%.0f", float64(nr.SidecarCPU.MilliValue())/nr.RequestRate*1000)
		}
		nr.MaxP99Latency = "-"
		if maxP99[ns] > 0 {
			nr.MaxP99Latency = maxP99[ns].String()
		}
		r.Namespaces = append(r.Namespaces, *nr)
	}
	sort.Slice(r.Namespaces, func(i, j int) bool { return r.Namespaces[i].Namespace < r.Namespaces[j].Namespace })
	if r.Namespaces == nil {
		r.Namespaces = []NamespaceReport{}
	}
	return r
}

// PrintReport writes the report.
func PrintReport(w io.Writer, format string, r *Report) error {
	if format != FormatTable {
		return PrintData(w, format, r)
	}
	o := &out{w: w}
	if r.SnapshotTime.IsZero() {
		o.ln("Traffic: no snapshot (give --traffic or --prometheus); sidecar overhead only.")
	} else {
		o.f("Traffic snapshot of %s.\n", r.SnapshotTime.UTC().Format(time.RFC3339))
	}
	tw := newTable(w)
	tw.ln("NAMESPACE\tWORKLOADS\tPODS\tSIDECARS\tSIDECAR CPU\tSIDECAR MEMORY\tREQ/S\t5XX\tP99 (WORST)\tCONN/S\tRETRANS/S\tSIDECAR mCPU PER 1K REQ/S")
	for _, n := range r.Namespaces {
		per := n.CPUPerKRequests
		if per == "" {
			per = "-"
		}
		tw.f("%s\t%d\t%d\t%d\t%s\t%s\t%.1f\t%.2f%%\t%s\t%.1f\t%.2f\t%s\n", n.Namespace, n.Workloads, n.Pods, n.SidecarPods,
			n.SidecarCPU.String(), n.SidecarMemory.String(), n.RequestRate, n.ErrorRate*100, n.MaxP99Latency, n.ConnectionRate,
			n.RetransmitRate, per)
	}
	if o.err != nil {
		return o.err
	}
	return tw.flush()
}
