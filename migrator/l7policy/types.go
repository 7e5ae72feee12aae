package l7policy

import "k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

// Labels and annotations on what a migration writes.
const (
	// LabelMigration is on every object a migration created (targetRefs
	// copies, admit policies); its value is the MeshMigration's name.
	LabelMigration = "meshshift.io/migration"
	// AnnotationSource is on a copy or an admit policy:
	// "<Kind>/<namespace>/<name>" of the object it was made from.
	AnnotationSource = "meshshift.io/source"
	// AnnotationOriginal is on a narrowed original: the JSON of the original's
	// spec, {"spec": ...}, from which Restore rebuilds it exactly.
	AnnotationOriginal = "meshshift.io/original"
	// LabelDataplane is the pod label with the decided mode (the same key as
	// v1alpha1.LabelDataplane); narrowing adds LabelDataplane: sidecar to an
	// original's selector, and an admit policy selects LabelDataplane:
	// ambient-waypoint.
	LabelDataplane = "meshshift.io/dataplane"

	// ModeSidecar and ModeAmbientWaypoint are the LabelDataplane values
	// narrowing and admit policies select.
	ModeSidecar         = "sidecar"
	ModeAmbientWaypoint = "ambient-waypoint"

	// DefaultRootNamespace is Istio's root namespace when Input.RootNamespace
	// is empty; DefaultTrustDomain is the trust domain when Input.TrustDomain
	// is empty.
	DefaultRootNamespace = "istio-system"
	DefaultTrustDomain   = "cluster.local"

	// KindAuthorizationPolicy and KindRequestAuthentication are the kinds
	// Propose reads (group security.istio.io, version v1 or v1beta1).
	KindAuthorizationPolicy   = "AuthorizationPolicy"
	KindRequestAuthentication = "RequestAuthentication"
)

// Workload is one workload of the namespace that moves to ambient-waypoint.
type Workload struct {
	Kind, Name string
	// PodLabels are the labels of its pod template.
	PodLabels map[string]string
}

// Input is what Propose reads. Services and Policies are unstructured objects
// as a client or a manifest gives them.
type Input struct {
	// Namespace is the namespace the wave flips.
	Namespace string
	// RootNamespace is Istio's root namespace (mesh-wide policies live there);
	// "" means DefaultRootNamespace.
	RootNamespace string
	// TrustDomain is the mesh's trust domain; "" means DefaultTrustDomain.
	TrustDomain string
	// Waypoint is the name of the waypoint Gateway (class istio-waypoint) in
	// Namespace.
	Waypoint string
	// WaypointServiceAccount is the waypoint's service account; "" means the
	// Gateway's name (the default of Istio's deployment controller).
	WaypointServiceAccount string
	// Migration is the MeshMigration's name, the value of LabelMigration.
	Migration string
	// Workloads are the workloads of Namespace that move to ambient-waypoint
	// in this wave.
	Workloads []Workload
	// Services are the core/v1 Services of Namespace, unstructured.
	Services []*unstructured.Unstructured
	// Policies are the AuthorizationPolicy and RequestAuthentication objects
	// of Namespace and of RootNamespace (security.istio.io/v1 or v1beta1).
	Policies []*unstructured.Unstructured
}

// Move is one selector-attached policy that moves to the waypoint.
type Move struct {
	// Source is the original, as given.
	Source *unstructured.Unstructured
	// Copy is the targetRefs copy to create: the original's rules attached
	// to the Services that select the moving workloads, with no selector.
	Copy *unstructured.Unstructured
	// Narrowed is the original narrowed to pods still on a sidecar, with the
	// rules that let the waypoint's identity through where the waypoint has
	// already decided, and AnnotationOriginal set. It keeps the Source's
	// metadata (resourceVersion included), so it can be written with one Update.
	Narrowed *unstructured.Unstructured
	// Workloads ("<Kind>/<name>") and Services (names) the move covers.
	Workloads, Services []string
	// Why says in one line what moves and why.
	Why string
}

// Plan is Propose's answer for one namespace and wave.
type Plan struct {
	Moves []Move
	// Admit holds the other objects the migration creates with the copies and
	// deletes on rollback: ALLOW policies that let ztunnel admit the
	// waypoint's identity where an L4 ALLOW policy selects a moving workload,
	// targetRefs copies of such L4 policies where they restrict the caller
	// (so the waypoint checks the caller ztunnel no longer sees), and
	// targetRefs copies of namespace- or mesh-wide RequestAuthentications
	// (a waypoint reads no policy without targetRefs).
	Admit []*unstructured.Unstructured
	// Blocked says why some policy cannot be moved safely: the named object
	// and the reason. The workloads named in an entry must not move in this
	// wave; Moves and Admit already leave them out.
	Blocked []string
}
