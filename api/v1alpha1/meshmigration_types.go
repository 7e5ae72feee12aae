package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// MeshMigrationSpec says which namespaces move to which mode, in what waves,
// and what SLOs a wave must keep to be promoted.
// +kubebuilder:validation:XValidation:rule="!(has(self.waves) && has(self.batchSize))",message="waves and batchSize are exclusive: give explicit waves or a batch size, not both"
// +kubebuilder:validation:XValidation:rule="has(self.waves) || has(self.namespaces)",message="namespaces is required unless explicit waves list them"
// +kubebuilder:validation:XValidation:rule="!has(self.originalPolicies) || self.originalPolicies != 'Remove' || (has(self.policyMigration) && self.policyMigration == 'Apply')",message="originalPolicies Remove needs policyMigration Apply"
type MeshMigrationSpec struct {
	// targetMode is the mode the namespaces move to.
	TargetMode Mode `json:"targetMode"`

	// namespaces picks the namespaces to migrate, by name or by selector. With
	// explicit waves it may be left out: the waves name the namespaces.
	// +optional
	Namespaces *NamespaceTarget `json:"namespaces,omitempty"`

	// waves lists the namespaces of each wave explicitly, in order.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	// +optional
	Waves []WaveSpec `json:"waves,omitempty"`

	// batchSize cuts the selected namespaces, sorted by name, into waves of this
	// many namespaces ("2") or this share of them ("25%").
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 : self.matches('^([1-9][0-9]?|100)%$')",message="batchSize must be a positive count or a percentage from 1% to 100%"
	// +optional
	BatchSize *intstr.IntOrString `json:"batchSize,omitempty"`

	// bakeTime is how long a flipped wave is watched by the gate before it is promoted.
	// +kubebuilder:default="5m"
	// +optional
	BakeTime *metav1.Duration `json:"bakeTime,omitempty"`

	// readyTimeout is how long a wave's workloads may take to be Ready after a
	// restart; past it the wave is rolled back.
	// +kubebuilder:default="10m"
	// +optional
	ReadyTimeout *metav1.Duration `json:"readyTimeout,omitempty"`

	// gate is the SLO gate a wave must pass while it bakes.
	// +optional
	Gate *GateSpec `json:"gate,omitempty"`

	// rollback says what happens when the gate breaks.
	// +optional
	Rollback *RollbackPolicy `json:"rollback,omitempty"`

	// approval Manual makes every wave wait until status.waves[i] is approved
	// (spec.approvedWaves reaches its index); Automatic starts waves by themselves.
	// +kubebuilder:validation:Enum=Automatic;Manual
	// +kubebuilder:default=Automatic
	// +optional
	Approval ApprovalMode `json:"approval,omitempty"`

	// approvedWaves counts the waves a person has approved, with approval Manual.
	// +kubebuilder:validation:Minimum=0
	// +optional
	ApprovedWaves int32 `json:"approvedWaves,omitempty"`

	// paused stops the migration from starting or promoting a wave. A wave
	// being rolled back still finishes its rollback.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// rollbackRequested rolls back every wave of the migration, newest first.
	// +optional
	RollbackRequested bool `json:"rollbackRequested,omitempty"`

	// policyMigration says what a wave does with workloads that only
	// selector-attached L7 policies (AuthorizationPolicy, RequestAuthentication)
	// keep on a sidecar, because ztunnel would enforce them as deny-all or not
	// at all. Propose (the default) blocks the wave and writes the
	// waypoint-attached equivalents into status.waves[].policyProposal for
	// review. Apply moves them during the wave: the waypoint first (programmed
	// by istiod), then targetRefs copies of the policies, then each original
	// narrowed to pods still on a sidecar, then the flip; a rollback restores
	// the originals exactly.
	// +kubebuilder:validation:Enum=Propose;Apply
	// +kubebuilder:default=Propose
	// +optional
	PolicyMigration PolicyMigrationMode `json:"policyMigration,omitempty"`

	// originalPolicies says what becomes of the originals of moved policies
	// once their wave is promoted: Keep leaves them narrowed to sidecar pods
	// (the default); Remove deletes them (a later rollback recreates them from
	// the namespace's record). Remove needs policyMigration Apply.
	// +kubebuilder:validation:Enum=Keep;Remove
	// +kubebuilder:default=Keep
	// +optional
	OriginalPolicies OriginalPoliciesMode `json:"originalPolicies,omitempty"`
}

// PolicyMigrationMode says whether a wave moves selector-attached L7 policies
// to the waypoint.
type PolicyMigrationMode string

const (
	// PolicyMigrationPropose blocks a wave that needs a policy move and
	// writes the proposal into the wave's status.
	PolicyMigrationPropose PolicyMigrationMode = "Propose"
	// PolicyMigrationApply moves the policies during the wave.
	PolicyMigrationApply PolicyMigrationMode = "Apply"
)

// OriginalPoliciesMode says what happens to moved policies' originals on promotion.
type OriginalPoliciesMode string

const (
	// OriginalPoliciesKeep leaves the originals narrowed to sidecar pods.
	OriginalPoliciesKeep OriginalPoliciesMode = "Keep"
	// OriginalPoliciesRemove deletes the originals when the wave is promoted.
	OriginalPoliciesRemove OriginalPoliciesMode = "Remove"
)

// NamespaceTarget picks namespaces by name or by label selector.
// +kubebuilder:validation:XValidation:rule="has(self.names) || has(self.selector)",message="give names or a selector"
type NamespaceTarget struct {
	// names of namespaces.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MaxLength=63
	// +optional
	Names []string `json:"names,omitempty"`

	// selector over namespace labels.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// WaveSpec is one explicit wave.
type WaveSpec struct {
	// name of the wave, unique in the migration.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// namespaces flipped together in this wave.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MaxLength=63
	Namespaces []string `json:"namespaces"`
}

// ApprovalMode says whether waves start by themselves.
type ApprovalMode string

const (
	// ApprovalAutomatic starts each wave once the previous one is promoted.
	ApprovalAutomatic ApprovalMode = "Automatic"
	// ApprovalManual waits for spec.approvedWaves before each wave.
	ApprovalManual ApprovalMode = "Manual"
)

// GateSpec is the SLO gate.
type GateSpec struct {
	// prometheusURL is the Prometheus HTTP API the SLIs are read from.
	// +kubebuilder:validation:Pattern=`^https?://`
	// +optional
	PrometheusURL string `json:"prometheusURL,omitempty"`

	// interval between two checks of the gate.
	// +kubebuilder:default="30s"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`

	// window is the range `$window` stands for in the SLI queries (the rate
	// window of the built-in SLIs).
	// +kubebuilder:default="1m"
	// +optional
	Window *metav1.Duration `json:"window,omitempty"`

	// failuresToBreach is how many consecutive failing checks break the gate.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=3
	// +optional
	FailuresToBreach int32 `json:"failuresToBreach,omitempty"`

	// inconclusiveLimit is how many consecutive inconclusive checks (no data,
	// NaN, a failed query, too small a sample) pause the migration for a person.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=10
	// +optional
	InconclusiveLimit int32 `json:"inconclusiveLimit,omitempty"`

	// slis checked at every interval. Empty means the defaults built on the node
	// agent's metrics: error rate, p99 latency, TCP retransmit and reset rates.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +optional
	SLIs []SLI `json:"slis,omitempty"`
}

// SLI is one service level indicator and its limits.
// +kubebuilder:validation:XValidation:rule="has(self.max) || has(self.maxIncrease)",message="an SLI needs max, maxIncrease, or both"
type SLI struct {
	// name of the SLI: errorRate, latencyP99, tcpRetransmitRate and tcpResetRate
	// have built-in queries; any other name needs a query.
	// +kubebuilder:validation:Pattern=`^[a-zA-Z][a-zA-Z0-9]*$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// query is PromQL returning one value; `$namespaces` is replaced by a
	// regular expression matching the wave's namespaces.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Query string `json:"query,omitempty"`

	// sampleQuery is PromQL returning the sample size behind the value (e.g. the
	// request count over the window); below minSample the check is inconclusive.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	SampleQuery string `json:"sampleQuery,omitempty"`

	// minSample is the smallest sample that makes a check conclusive.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinSample int64 `json:"minSample,omitempty"`

	// max is an absolute limit, as a decimal ("0.05", "0.250").
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +optional
	Max string `json:"max,omitempty"`

	// maxIncrease is a limit relative to the wave's baseline: the value may be
	// at most baseline × (1 + maxIncrease), as a decimal ("0.5" = +50%).
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +optional
	MaxIncrease string `json:"maxIncrease,omitempty"`
}

// RollbackPolicy says what happens when a wave breaks its gate.
type RollbackPolicy struct {
	// automatic rolls a breached wave back by itself (the default). When false
	// the migration pauses on breach and waits for a person.
	// +kubebuilder:default=true
	// +optional
	Automatic *bool `json:"automatic,omitempty"`
}

// WavePhase is where a wave is.
type WavePhase string

// The phases of a wave, in the order a wave goes through them.
const (
	WavePending     WavePhase = "Pending"
	WavePrechecking WavePhase = "Prechecking"
	// WaveMovingPolicies moves selector-attached L7 policies to the waypoint
	// before the flip (spec.policyMigration Apply).
	WaveMovingPolicies WavePhase = "MovingPolicies"
	WaveFlipping       WavePhase = "Flipping"
	WaveRestarting     WavePhase = "Restarting"
	WaveBaking         WavePhase = "Baking"
	WavePromoted       WavePhase = "Promoted"
	WaveRollingBack    WavePhase = "RollingBack"
	WaveRolledBack     WavePhase = "RolledBack"
	WaveFailed         WavePhase = "Failed"
)

// SLIValue is one SLI at one check.
type SLIValue struct {
	// name of the SLI.
	Name string `json:"name"`
	// value measured, as a decimal; empty when the check was inconclusive.
	// +optional
	Value string `json:"value,omitempty"`
	// limit in force, as a decimal.
	// +optional
	Limit string `json:"limit,omitempty"`
	// result: Pass, Fail or Inconclusive.
	// +kubebuilder:validation:Enum=Pass;Fail;Inconclusive
	// +optional
	Result string `json:"result,omitempty"`
	// message says why a check was inconclusive or failed.
	// +optional
	Message string `json:"message,omitempty"`
}

// WaveStatus is the record of one wave.
type WaveStatus struct {
	// name of the wave.
	Name string `json:"name"`
	// namespaces of the wave.
	// +listType=atomic
	Namespaces []string `json:"namespaces"`
	// phase of the wave.
	// +optional
	Phase WavePhase `json:"phase,omitempty"`
	// startedAt is when the wave was flipped.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// finishedAt is when the wave was promoted or rolled back.
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
	// restartToken is the pod-template restartedAt value this wave's flip
	// writes; workloads carrying it have been restarted into the new mode.
	// +optional
	RestartToken string `json:"restartToken,omitempty"`
	// bakeStartedAt is when every workload of the wave was Ready after the flip.
	// +optional
	BakeStartedAt *metav1.Time `json:"bakeStartedAt,omitempty"`
	// lastCheckAt is when the gate was last checked.
	// +optional
	LastCheckAt *metav1.Time `json:"lastCheckAt,omitempty"`
	// rollbackStartedAt is when the wave's rollback began.
	// +optional
	RollbackStartedAt *metav1.Time `json:"rollbackStartedAt,omitempty"`
	// rollbackToken is the pod-template restartedAt value the rollback writes.
	// +optional
	RollbackToken string `json:"rollbackToken,omitempty"`
	// reason is the PascalCase cause of the wave's last transition
	// (GateBreached, NotReady, RollbackRequested, ...).
	// +optional
	Reason string `json:"reason,omitempty"`
	// baseline SLI values recorded before the flip.
	// +listType=atomic
	// +optional
	Baseline []SLIValue `json:"baseline,omitempty"`
	// lastGate is the latest check of the gate.
	// +listType=atomic
	// +optional
	LastGate []SLIValue `json:"lastGate,omitempty"`
	// failures counts consecutive failing checks.
	// +optional
	Failures int32 `json:"failures,omitempty"`
	// inconclusive counts consecutive inconclusive checks.
	// +optional
	Inconclusive int32 `json:"inconclusive,omitempty"`
	// restarted counts the workloads of the wave's namespaces that the
	// latest restart (the flip's, or the rollback's) restarted: Deployments,
	// StatefulSets, DaemonSets and Argo Rollouts.
	// +optional
	Restarted int32 `json:"restarted,omitempty"`
	// waitingForNextRun counts the Jobs and CronJobs of the wave's namespaces:
	// they are not restarted, and the wave does not wait for them; the pods of
	// their next run are admitted in the new mode (the restored one after a
	// rollback). A Job's pods running at the flip keep their old mode.
	// +optional
	WaitingForNextRun int32 `json:"waitingForNextRun,omitempty"`
	// message is the wave's verdict or current step, for people.
	// +optional
	Message string `json:"message,omitempty"`
	// policyProposal is the policy move the wave's precheck computed, one line
	// per moved policy and per reason a policy cannot move (spec.policyMigration).
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=200
	// +optional
	PolicyProposal []string `json:"policyProposal,omitempty"`
	// policyStep is the step of the policy move of the wave's namespaces
	// (MovingPolicies phase), for people: the namespaces' records hold what is
	// needed to continue or undo it.
	// +optional
	PolicyStep string `json:"policyStep,omitempty"`
	// waypointProgrammedAt is when istiod reported every waypoint of the wave
	// programmed and its Deployment available.
	// +optional
	WaypointProgrammedAt *metav1.Time `json:"waypointProgrammedAt,omitempty"`
}

// MeshMigrationStatus is the progress of a migration. Together with the
// annotations the migrator leaves on namespaces, it holds everything needed to
// continue or undo a wave after a restart.
type MeshMigrationStatus struct {
	// observedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Progressing, Paused, Succeeded, RolledBack, Failed.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// currentWave is the index of the wave in progress (or the last one).
	// +optional
	CurrentWave int32 `json:"currentWave,omitempty"`
	// waves records every wave.
	// +listType=atomic
	// +optional
	Waves []WaveStatus `json:"waves,omitempty"`
	// missedDecisions counts pods in this migration's namespaces admitted
	// without a meshshift decision (the webhook was down).
	// +optional
	MissedDecisions int32 `json:"missedDecisions,omitempty"`
}

// MeshMigration moves namespaces to a dataplane mode in waves, gated by SLOs.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=mm
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetMode`
// +kubebuilder:printcolumn:name="Wave",type=integer,JSONPath=`.status.currentWave`
// +kubebuilder:printcolumn:name="Progressing",type=string,JSONPath=`.status.conditions[?(@.type=="Progressing")].status`
// +kubebuilder:printcolumn:name="Succeeded",type=string,JSONPath=`.status.conditions[?(@.type=="Succeeded")].status`
// +kubebuilder:printcolumn:name="Paused",type=boolean,JSONPath=`.spec.paused`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MeshMigration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MeshMigrationSpec   `json:"spec,omitempty"`
	Status MeshMigrationStatus `json:"status,omitempty"`
}

// MeshMigrationList is a list of MeshMigration.
// +kubebuilder:object:root=true
type MeshMigrationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MeshMigration `json:"items"`
}
