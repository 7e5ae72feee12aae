package v1alpha1

// Mode is a workload's dataplane. Every value is also a valid label value
// (meshshift.io/dataplane).
// +kubebuilder:validation:Enum=sidecar;ambient;ambient-waypoint;cilium;none
type Mode string

const (
	// ModeSidecar is a per-pod proxy: Istio's sidecar, or Linkerd's where the
	// policy's mesh provider says so.
	ModeSidecar Mode = "sidecar"
	// ModeAmbient is Istio ambient: L4 through the node's ztunnel.
	ModeAmbient Mode = "ambient"
	// ModeAmbientWaypoint is Istio ambient with an L7 waypoint proxy.
	ModeAmbientWaypoint Mode = "ambient-waypoint"
	// ModeCilium is Cilium's sidecarless mesh (eBPF plus the per-node Envoy).
	ModeCilium Mode = "cilium"
	// ModeNone is out of the mesh.
	ModeNone Mode = "none"
)

// Modes lists every mode, in the order they are documented.
var Modes = []Mode{ModeSidecar, ModeAmbient, ModeAmbientWaypoint, ModeCilium, ModeNone}

// Valid reports whether m is one of Modes.
func (m Mode) Valid() bool {
	for _, x := range Modes {
		if m == x {
			return true
		}
	}
	return false
}

// Sidecarless reports whether m runs without a per-pod proxy while still in a mesh.
func (m Mode) Sidecarless() bool {
	return m == ModeAmbient || m == ModeAmbientWaypoint || m == ModeCilium
}

// MeshProvider is the mesh that serves the sidecar mode.
// +kubebuilder:validation:Enum=istio;linkerd
type MeshProvider string

const (
	// MeshProviderIstio serves sidecar mode with Istio's injector (the default).
	MeshProviderIstio MeshProvider = "istio"
	// MeshProviderLinkerd serves sidecar mode with Linkerd's proxy injector.
	MeshProviderLinkerd MeshProvider = "linkerd"
)

// Labels and annotations of meshshift's own contract (DESIGN.md, "Labels written").
const (
	// AnnotationMode asks for a mode, on a pod or a namespace.
	AnnotationMode = "meshshift.io/mode"
	// LabelDataplane is the decided mode, on a pod.
	LabelDataplane = "meshshift.io/dataplane"
	// AnnotationDecision is "<mode>/<rule>", on a pod.
	AnnotationDecision = "meshshift.io/decision"
	// AnnotationReason is the decision's one-line human reason, on a pod.
	AnnotationReason = "meshshift.io/reason"
	// AnnotationPolicy is "<name>/<generation>" of the DataplanePolicy used, on a pod.
	AnnotationPolicy = "meshshift.io/policy"
)
