package policies

import (
	"time"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// Workload is the pod (template) being decided. CEL rules see it as
// `workload` with fields name, namespace, labels, annotations, hostNetwork,
// ownerKind, ownerName and workload.
type Workload struct {
	// Name is the pod's name, or its generateName when it has none yet.
	Name string
	// Namespace is the pod's namespace.
	Namespace string
	// Labels and Annotations are the pod's, as admitted.
	Labels      map[string]string
	Annotations map[string]string
	// HostNetwork is the pod's spec.hostNetwork.
	HostNetwork bool
	// OwnerKind and OwnerName are the pod's controller (ReplicaSet, StatefulSet,
	// DaemonSet, Job); empty for a bare pod.
	OwnerKind string
	OwnerName string
	// Workload is the top-level workload's name (signals.WorkloadName): the
	// Deployment's for a ReplicaSet-owned pod. The traffic snapshot is keyed by it.
	Workload string
	// Nodes is what the pod requires of its node (spec.nodeSelector and the
	// required node affinity): Windows-only pods are excluded, and a mode whose
	// node agent runs on none of the admitted nodes is not chosen.
	Nodes signals.NodeRequirement
	// CurrentMode is the mode the workload runs in now, when the caller knows it
	// (e.g. from its running pods); empty means derive it from the labels of the
	// pod and namespace (see CurrentMode).
	CurrentMode v1alpha1.Mode
}

// Namespace is the pod's namespace. CEL rules see it as `namespaceObject`
// with fields name, labels and annotations.
type Namespace struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
}

// Input is everything Decide looks at. The caller gathers it from caches; Decide
// never reads anything else.
type Input struct {
	Workload  Workload
	Namespace Namespace
	// Features are the mesh objects that select the workload (signals.Index).
	Features signals.Features
	// Traffic is the workload's traffic; HasTraffic false means no data.
	Traffic    signals.WorkloadTraffic
	HasTraffic bool
	// Now is the caller's clock reading, used only to judge traffic staleness.
	Now time.Time
	// Capabilities is what the cluster and the candidate nodes can serve.
	Capabilities signals.Capabilities
	// Policy is the compiled DataplanePolicy governing the namespace (Select);
	// nil means Builtin().
	Policy *Policy
}

// Decision is Decide's answer.
//
// Labels and Annotations may be shared between decisions (they are precomputed
// per policy and mode): treat them as read-only and copy before changing.
type Decision struct {
	// Mode is the decided dataplane.
	Mode v1alpha1.Mode
	// Waypoint is the waypoint's name when Mode is ambient-waypoint.
	Waypoint string
	// Rule names what decided: one of the Rule* constants, or "rule:<name>" for
	// a DataplanePolicy rule.
	Rule string
	// Reason is one human line naming the object or setting that decided.
	Reason string
	// Policy is "<name>/<generation>" of the policy used.
	Policy string
	// Labels are the pod labels to set (the mesh's contract and meshshift's own).
	Labels map[string]string
	// LabelsToRemove are labels present on the pod that contradict the decision.
	LabelsToRemove []string
	// Annotations are the pod annotations to set.
	Annotations map[string]string
	// AnnotationsToRemove are annotations present on the pod that contradict it.
	AnnotationsToRemove []string
	// Warnings are things the caller should tell the user (admission warnings,
	// events): an ignored annotation, a feature a pod annotation overrides, ...
	Warnings []string
	// Excluded is true for hard exclusions: only meshshift's own label and
	// annotations are written, nothing of the mesh.
	Excluded bool
	// Observed is true when the decision keeps the mode the mesh's own labels
	// already give the workload because nothing asked to change it (keep-current,
	// a rule keeping the current mode, an opt-out, a fallback): like Excluded,
	// only meshshift's own label and annotations are written, so the pod reaches
	// the mesh exactly as it would without meshshift.
	Observed bool
}

// Names of the built-in rules (Decision.Rule). A DataplanePolicy rule is
// reported as RulePolicyPrefix + its name.
const (
	RuleExcludeHostNetwork  = "exclude-host-network"
	RuleExcludeNamespace    = "exclude-namespace"
	RuleExcludeInjected     = "exclude-injected"
	RulePodAnnotation       = "pod-annotation"
	RuleDenyAllTrap         = "feature-deny-all-trap"
	RuleFeatureSidecar      = "feature-requires-sidecar"
	RuleFeatureWaypoint     = "feature-requires-waypoint"
	RuleFeatureCilium       = "feature-requires-cilium"
	RuleNamespaceAnnotation = "namespace-annotation"
	RulePolicyPrefix        = "rule:"
	RuleCapabilityFallback  = "capability-fallback"
	RuleDefault             = "policy-default"
	// RuleKeepCurrent: nothing asked to move the workload (the policy's default
	// is "current", as the builtin policy's is); it keeps its current mode.
	RuleKeepCurrent = "keep-current"
	// RuleOptOut: the pod template opts out of a mode (sidecar.istio.io/inject:
	// "false" of the sidecar, istio.io/dataplane-mode: none of ambient).
	RuleOptOut = "opt-out"
	// RuleExcludeWindows: the pod can only run on Windows nodes, which no
	// sidecarless dataplane serves.
	RuleExcludeWindows = "exclude-windows"
	// RuleNodeUnserved: the pod's node selector or required node affinity
	// excludes every node where the chosen dataplane's node agent runs.
	RuleNodeUnserved = "node-unserved"
)

// Labels and annotations of the meshes' own contracts (DESIGN.md).
const (
	LabelIstioInject        = "sidecar.istio.io/inject"
	LabelIstioDataplaneMode = "istio.io/dataplane-mode"
	LabelIstioUseWaypoint   = "istio.io/use-waypoint"
	LabelIstioInjection     = "istio-injection"
	LabelIstioRev           = "istio.io/rev"
	AnnotationIstioStatus   = "sidecar.istio.io/status"
	AnnotationLinkerdInject = "linkerd.io/inject"
	LabelLinkerdProxy       = "linkerd.io/proxy-deployment"
	AnnotationLinkerdProxy  = "linkerd.io/proxy-version"
	// DefaultWaypoint is the waypoint name used when neither pod nor namespace
	// names one (the name istioctl waypoint apply uses).
	DefaultWaypoint = "waypoint"
)
