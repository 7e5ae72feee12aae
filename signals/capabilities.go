package signals

import (
	"fmt"
	"strconv"
	"strings"
)

// Node labels written by the node agent (issue 5) and read for the capability check.
const (
	// LabelNodeKernel is the node's kernel release, e.g. "6.12.48" (a label value:
	// the agent drops any suffix that is not a valid label value).
	LabelNodeKernel = "meshshift.io/kernel"
	// LabelNodeEBPFLevel is the node's eBPF support level, one of the EBPFLevel values.
	LabelNodeEBPFLevel = "meshshift.io/ebpf-level"
)

// EBPFLevel is how much eBPF a node's kernel supports, in increasing order.
type EBPFLevel string

const (
	// EBPFNone: no usable eBPF (no BTF or no cgroup v2).
	EBPFNone EBPFLevel = "none"
	// EBPFBasic: BTF, cgroup v2, cgroup_skb and sock_ops programs.
	EBPFBasic EBPFLevel = "basic"
	// EBPFFull: basic plus tp_btf and tcx attachment.
	EBPFFull EBPFLevel = "full"
)

// Rank orders levels: none 0, basic 1, full 2; an unknown value is -1.
func (l EBPFLevel) Rank() int {
	switch l {
	case EBPFNone:
		return 0
	case EBPFBasic:
		return 1
	case EBPFFull:
		return 2
	}
	return -1
}

// KernelVersion is a kernel release's major.minor.patch.
type KernelVersion struct{ Major, Minor, Patch int }

// AtLeast reports whether v >= o.
func (v KernelVersion) AtLeast(o KernelVersion) bool {
	if v.Major != o.Major {
		return v.Major > o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor > o.Minor
	}
	return v.Patch >= o.Patch
}

// IsZero reports whether v is unknown.
func (v KernelVersion) IsZero() bool { return v == KernelVersion{} }

func (v KernelVersion) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// ParseKernelVersion reads "6.12.48", "5.10", "6.1.0-37-cloud-amd64" or
// "6.8.0_generic": the leading numeric major.minor[.patch].
func ParseKernelVersion(s string) (KernelVersion, error) {
	end := 0
	for end < len(s) && (s[end] == '.' || (s[end] >= '0' && s[end] <= '9')) {
		end++
	}
	parts := strings.Split(strings.TrimSuffix(s[:end], "."), ".")
	if len(parts) < 2 {
		return KernelVersion{}, fmt.Errorf("kernel version %q: want major.minor[.patch]", s)
	}
	var nums [3]int
	for i := 0; i < len(parts) && i < 3; i++ {
		if parts[i] == "" || len(parts[i]) > 6 {
			return KernelVersion{}, fmt.Errorf("kernel version %q: want major.minor[.patch]", s)
		}
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return KernelVersion{}, fmt.Errorf("kernel version %q: %w", s, err)
		}
		nums[i] = n
	}
	return KernelVersion{Major: nums[0], Minor: nums[1], Patch: nums[2]}, nil
}

// NodeCapabilities is what the nodes a workload may run on support. For an
// unscheduled pod (the webhook's case) it is the minimum over the candidate
// nodes (MinNodeCapabilities).
type NodeCapabilities struct {
	// Known is false when no node reported (no agent): kernel and level are unknown
	// and policies does not fall back on them.
	Known bool
	// Kernel is the lowest kernel release among the nodes.
	Kernel KernelVersion
	// EBPF is the lowest eBPF level among the nodes.
	EBPF EBPFLevel
}

// NodeCapabilitiesFromLabels reads one node's agent labels. A node without them
// is unknown (Known false, nil error); a malformed label is an error.
func NodeCapabilitiesFromLabels(labels map[string]string) (NodeCapabilities, error) {
	k, hasK := labels[LabelNodeKernel]
	l, hasL := labels[LabelNodeEBPFLevel]
	if !hasK && !hasL {
		return NodeCapabilities{}, nil
	}
	var c NodeCapabilities
	c.Known = true
	c.EBPF = EBPFNone
	if hasK {
		v, err := ParseKernelVersion(k)
		if err != nil {
			return NodeCapabilities{}, fmt.Errorf("label %s: %w", LabelNodeKernel, err)
		}
		c.Kernel = v
	}
	if hasL {
		if EBPFLevel(l).Rank() < 0 {
			return NodeCapabilities{}, fmt.Errorf("label %s: %q is not one of none, basic, full", LabelNodeEBPFLevel, l)
		}
		c.EBPF = EBPFLevel(l)
	}
	return c, nil
}

// MinNodeCapabilities is the weakest of the known nodes: the lowest kernel and
// eBPF level. Unknown nodes are skipped; with no known node the result is unknown.
func MinNodeCapabilities(nodes ...NodeCapabilities) NodeCapabilities {
	var out NodeCapabilities
	for _, n := range nodes {
		if !n.Known {
			continue
		}
		if !out.Known {
			out = n
			continue
		}
		if !n.Kernel.IsZero() && (out.Kernel.IsZero() || !n.Kernel.AtLeast(out.Kernel)) {
			out.Kernel = n.Kernel
		}
		if n.EBPF.Rank() < out.EBPF.Rank() {
			out.EBPF = n.EBPF
		}
	}
	return out
}

// Capabilities is what the cluster can serve.
type Capabilities struct {
	// Ztunnel is true when Istio's ztunnel DaemonSet runs (ambient is served).
	Ztunnel bool
	// Cilium is true when Cilium's agent runs with its per-node Envoy.
	Cilium bool
	// SpireCA is true when the mesh's CA is SPIRE (an ambient hard blocker).
	SpireCA bool
	// MeshNamespaces are the namespaces the meshes themselves run in (besides the
	// well-known istio-system, linkerd and the like); their pods are never decided.
	MeshNamespaces []string
	// Nodes is what the workload's candidate nodes support.
	Nodes NodeCapabilities
	// ZtunnelNodes and CiliumNodes are the labels of the nodes where ztunnel's
	// (Cilium's agent's) DaemonSet runs or would run, when the nodes are known
	// (NodesKnown); a workload whose node constraints exclude all of them cannot
	// be served by that dataplane.
	ZtunnelNodes, CiliumNodes []map[string]string
	// NodesKnown is true when ZtunnelNodes and CiliumNodes were computed from the
	// cluster's nodes (false: unknown, nothing is concluded from them).
	NodesKnown bool
}
