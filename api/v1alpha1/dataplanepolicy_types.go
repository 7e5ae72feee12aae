package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DataplanePolicySpec says how meshshift decides the dataplane of the
// workloads in the namespaces it governs.
type DataplanePolicySpec struct {
	// namespaceSelector picks the namespaces this policy governs. Empty means all
	// namespaces that no more specific policy selects.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// defaultMode is the mode of a workload that nothing else decides. The
	// default, "current", keeps every such workload in the mode it runs in now
	// (none when neither its pods nor its namespace carry a mesh label), so a
	// policy moves only what its rules or an annotation ask to move.
	// +kubebuilder:default=current
	// +optional
	DefaultMode RuleMode `json:"defaultMode,omitempty"`

	// meshProvider is the mesh that serves the sidecar mode.
	// +kubebuilder:default=istio
	// +optional
	MeshProvider MeshProvider `json:"meshProvider,omitempty"`

	// allowedModes says which modes app teams may ask for with the
	// meshshift.io/mode annotation, per namespace selector. The first entry whose
	// selector matches a namespace applies; with no entry, every mode is allowed.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +optional
	AllowedModes []AllowedModes `json:"allowedModes,omitempty"`

	// rules are tried in order; the first whose CEL expression is true decides.
	// Expressions see `workload`, `namespaceObject`, `traffic` and `features`
	// (`namespace` is a reserved word in CEL).
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=128
	// +optional
	Rules []Rule `json:"rules,omitempty"`

	// trafficMaxAge is how old traffic signals may be before rules see them as
	// stale (traffic.stale is true and its figures are not trusted).
	// +kubebuilder:default="5m"
	// +optional
	TrafficMaxAge *metav1.Duration `json:"trafficMaxAge,omitempty"`
}

// AllowedModes lists the modes app teams may ask for in some namespaces.
type AllowedModes struct {
	// namespaceSelector picks the namespaces; empty means all.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// modes that may be asked for.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	Modes []Mode `json:"modes"`
}

// Rule chooses a mode when its CEL expression is true.
type Rule struct {
	// name identifies the rule in decisions and events.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// when is a CEL expression that must evaluate to a bool.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	When string `json:"when"`

	// mode is chosen when the rule matches; "current" keeps the workload's
	// current mode (and the rule does not match when that is unknown).
	Mode RuleMode `json:"mode"`
}

// RuleMode is a Mode, or "current" for the workload's current mode.
// +kubebuilder:validation:Enum=sidecar;ambient;ambient-waypoint;cilium;none;current
type RuleMode string

// RuleModeCurrent keeps the workload's current mode.
const RuleModeCurrent RuleMode = "current"

// Valid reports whether m is a Mode or RuleModeCurrent.
func (m RuleMode) Valid() bool { return m == RuleModeCurrent || Mode(m).Valid() }

// DataplanePolicyStatus is what meshshift observed of the policy.
type DataplanePolicyStatus struct {
	// observedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready says whether every rule compiled.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// DataplanePolicy decides the dataplane mode of workloads.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=dpp
// +kubebuilder:printcolumn:name="Default",type=string,JSONPath=`.spec.defaultMode`
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.meshProvider`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DataplanePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DataplanePolicySpec   `json:"spec,omitempty"`
	Status DataplanePolicyStatus `json:"status,omitempty"`
}

// DataplanePolicyList is a list of DataplanePolicy.
// +kubebuilder:object:root=true
type DataplanePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DataplanePolicy `json:"items"`
}
