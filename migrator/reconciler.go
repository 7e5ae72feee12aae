package migrator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// Finalizer releases a migration's namespaces when it is deleted.
const Finalizer = "meshshift.io/migrator"

// Condition types of a MeshMigration.
const (
	ConditionProgressing = "Progressing"
	ConditionPaused      = "Paused"
	ConditionSucceeded   = "Succeeded"
	ConditionRolledBack  = "RolledBack"
	ConditionFailed      = "Failed"
)

// Reasons of conditions, waves and events.
const (
	ReasonPlanned              = "Planned"
	ReasonWaveInProgress       = "WaveInProgress"
	ReasonAwaitingApproval     = "AwaitingApproval"
	ReasonPausedByUser         = "PausedByUser"
	ReasonResumed              = "Resumed"
	ReasonPrecheckFailed       = "PrecheckFailed"
	ReasonPrecheckPassed       = "PrecheckPassed"
	ReasonBaselineRecorded     = "BaselineRecorded"
	ReasonBaselineInconclusive = "BaselineInconclusive"
	ReasonFlipped              = "Flipped"
	ReasonReady                = "Ready"
	ReasonNotReady             = "NotReady"
	ReasonGateBreached         = "GateBreached"
	ReasonGateInconclusive     = "GateInconclusive"
	ReasonWavePromoted         = "WavePromoted"
	ReasonAllWavesPromoted     = "AllWavesPromoted"
	ReasonRollbackStarted      = "RollbackStarted"
	ReasonRollbackRequested    = "RollbackRequested"
	ReasonWaveRolledBack       = "WaveRolledBack"
	ReasonNamespaceOwned       = "NamespaceOwned"
	ReasonInvalidSpec          = "InvalidSpec"
	ReasonPaused               = "Paused"
	ReasonSucceeded            = "Succeeded"
	ReasonRolledBack           = "RolledBack"
	ReasonFailed               = "Failed"
	ReasonPoliciesMoved        = "PoliciesMoved"
	ReasonPolicyMoveBlocked    = "PolicyMoveBlocked"
	ReasonWaypointNotReady     = "WaypointNotProgrammed"
)

// Reconciler runs MeshMigrations.
type Reconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads MeshMigrations uncached, so a step never acts on a stale phase.
	APIReader client.Reader
	// Recorder records Events on the MeshMigration; nil records none.
	Recorder events.EventRecorder
	// Clock is the time source of every decision (bake, gate interval, timeouts).
	Clock clock.Clock
	// Features says which mesh objects select a workload; nil means none.
	Features FeatureSource
	// Capabilities says what the cluster serves; nil means DetectCapabilities
	// with SpireCA.
	Capabilities func(context.Context) (signals.Capabilities, error)
	SpireCA      bool
	// PrometheusURL is used when a migration's gate names none.
	PrometheusURL string
	// NewQuerier connects to a Prometheus; nil means client_golang's HTTP API.
	NewQuerier func(url string) (Querier, error)
	// PollInterval is how often rollouts are checked while a wave waits for
	// Ready; zero means 500 ms.
	PollInterval time.Duration
	// Traffic returns the latest traffic snapshot (with the callers of each
	// workload) for the caller-aware precheck; nil means no callers are known.
	Traffic func() *signals.TrafficSnapshot
	// RootNamespace is Istio's root namespace (mesh-wide policies); ""
	// means istio-system.
	RootNamespace string
	// TrustDomain is the mesh's trust domain; "" means cluster.local.
	TrustDomain string

	mu               sync.Mutex
	queriers         map[string]Querier
	compiledPolicies map[types.UID]compiledPolicy
	// rolloutsAbsentUntil: the cluster did not serve Argo Rollouts at the
	// last look; not asked again before this time.
	rolloutsAbsentUntil time.Time
}

// SetupWithManager registers the reconciler and its metrics. One reconcile at
// a time: waves of different migrations never interleave their steps.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("meshshift-migrator")
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if err := registerMetrics(); err != nil {
		return fmt.Errorf("register migrator metrics: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&meshv1alpha1.MeshMigration{}, builder.WithPredicates(specOrDeletionChanged{})).
		Named("meshmigration").
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
}

// specOrDeletionChanged lets through updates that change the spec (a person
// pausing, approving, asking for a rollback) or start a deletion. The
// migrator's own status writes do not trigger a reconcile: each step asks for
// the next one itself, after a time it chooses.
type specOrDeletionChanged struct{ predicate.Funcs }

func (specOrDeletionChanged) Update(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return true
	}
	return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
		e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
}

// +kubebuilder:rbac:groups=meshshift.io,resources=meshmigrations,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=meshshift.io,resources=meshmigrations/status;meshmigrations/finalizers,verbs=get;update;patch
// +kubebuilder:rbac:groups=meshshift.io,resources=dataplanepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces;services,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=replicationcontrollers,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs;cronjobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=argoproj.io,resources=rollouts,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gateways,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=security.istio.io,resources=authorizationpolicies;requestauthentications,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile does one step of a migration: get, finalizer, the step of the
// current wave's phase, then the status when it changed.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mm := &meshv1alpha1.MeshMigration{}
	if err := r.APIReader.Get(ctx, req.NamespacedName, mm); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("meshmigration", klog.KObj(mm)))
	if !mm.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, mm)
	}
	if !controllerutil.ContainsFinalizer(mm, Finalizer) {
		cp := mm.DeepCopy()
		controllerutil.AddFinalizer(cp, Finalizer)
		if err := r.Client.Patch(ctx, cp, client.MergeFromWithOptions(mm, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
		return ctrl.Result{RequeueAfter: time.Millisecond}, nil
	}
	before := mm.Status.DeepCopy()
	res, err := r.step(ctx, mm)
	mm.Status.ObservedGeneration = mm.Generation
	if !equality.Semantic.DeepEqual(before, &mm.Status) {
		if uerr := r.Client.Status().Update(ctx, mm); uerr != nil {
			return ctrl.Result{}, errors.Join(err, fmt.Errorf("update status: %w", uerr))
		}
	}
	observeWaves(mm)
	return res, err
}

// now is the clock's reading as an API time.
func (r *Reconciler) now() metav1.Time { return metav1.NewTime(r.Clock.Now()) }

func (r *Reconciler) poll() time.Duration {
	if r.PollInterval > 0 {
		return r.PollInterval
	}
	return 500 * time.Millisecond
}

func (r *Reconciler) capabilities(ctx context.Context) (signals.Capabilities, error) {
	if r.Capabilities != nil {
		return r.Capabilities(ctx)
	}
	return DetectCapabilities(ctx, r.Client, r.SpireCA)
}

func (r *Reconciler) querier(url string) (Querier, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if q, ok := r.queriers[url]; ok {
		return q, nil
	}
	var q Querier
	if r.NewQuerier != nil {
		var err error
		if q, err = r.NewQuerier(url); err != nil {
			return nil, err
		}
	} else {
		c, err := api.NewClient(api.Config{Address: url})
		if err != nil {
			return nil, fmt.Errorf("prometheus client for %s: %w", url, err)
		}
		q = promv1.NewAPI(c)
	}
	if r.queriers == nil {
		r.queriers = map[string]Querier{}
	}
	r.queriers[url] = q
	return q, nil
}

// event records an Event on the migration.
func (r *Reconciler) event(mm *meshv1alpha1.MeshMigration, warning bool, reason, action, note string, args ...any) {
	if r.Recorder == nil {
		return
	}
	t := corev1.EventTypeNormal
	if warning {
		t = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(mm, nil, t, reason, action, note, args...)
}

func setCondition(mm *meshv1alpha1.MeshMigration, typ string, status bool, reason, msg string) bool {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	return meta.SetStatusCondition(&mm.Status.Conditions, metav1.Condition{
		Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: mm.Generation,
	})
}

func isTrue(mm *meshv1alpha1.MeshMigration, typ string) bool {
	return meta.IsStatusConditionTrue(mm.Status.Conditions, typ)
}

// pause sets spec.paused for a person to resume, with the reason in the Paused
// condition.
func (r *Reconciler) pause(ctx context.Context, mm *meshv1alpha1.MeshMigration, reason, msg string) error {
	if !mm.Spec.Paused {
		cp := mm.DeepCopy()
		cp.Spec.Paused = true
		if err := r.Client.Patch(ctx, cp, client.MergeFromWithOptions(mm, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("pause migration: %w", err)
		}
		mm.Spec.Paused, mm.ResourceVersion, mm.Generation = true, cp.ResourceVersion, cp.Generation
	}
	setCondition(mm, ConditionPaused, true, reason, msg)
	setCondition(mm, ConditionProgressing, false, ReasonPaused, msg)
	r.event(mm, true, reason, "Pause", "%s", msg)
	log.FromContext(ctx).Info("migration paused", "reason", reason, "message", msg)
	return nil
}

// syncPause turns a person's spec.paused change into the Paused condition; on
// resume the current wave's consecutive counters start again.
func (r *Reconciler) syncPause(mm *meshv1alpha1.MeshMigration, w *meshv1alpha1.WaveStatus) {
	switch {
	case mm.Spec.Paused && !isTrue(mm, ConditionPaused):
		setCondition(mm, ConditionPaused, true, ReasonPausedByUser, "spec.paused is true")
		setCondition(mm, ConditionProgressing, false, ReasonPaused, "spec.paused is true")
		r.event(mm, false, ReasonPausedByUser, "Pause", "paused by spec.paused")
	case !mm.Spec.Paused && isTrue(mm, ConditionPaused):
		if w != nil {
			w.Inconclusive, w.Failures = 0, 0
		}
		setCondition(mm, ConditionPaused, false, ReasonResumed, "spec.paused is false")
		r.event(mm, false, ReasonResumed, "Resume", "resumed")
	}
}

// finished says whether nothing is left to do for the migration.
func finished(mm *meshv1alpha1.MeshMigration) bool {
	if isTrue(mm, ConditionFailed) {
		return true
	}
	if c := meta.FindStatusCondition(mm.Status.Conditions, ConditionRolledBack); c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonRollbackRequested {
		return true
	}
	return (isTrue(mm, ConditionSucceeded) || isTrue(mm, ConditionRolledBack)) && !mm.Spec.RollbackRequested
}

// step is one step of the migration.
func (r *Reconciler) step(ctx context.Context, mm *meshv1alpha1.MeshMigration) (ctrl.Result, error) {
	if finished(mm) {
		return ctrl.Result{}, nil
	}
	gate, errs := ResolveGate(mm.Spec.Gate, r.PrometheusURL)
	if len(errs) > 0 {
		return ctrl.Result{}, r.fail(ctx, mm, ReasonInvalidSpec, errs.ToAggregate().Error())
	}
	if len(mm.Status.Waves) == 0 {
		return r.start(ctx, mm)
	}
	if mm.Spec.RollbackRequested {
		return r.rollbackAll(ctx, mm)
	}
	i := 0
	for i < len(mm.Status.Waves) && mm.Status.Waves[i].Phase == meshv1alpha1.WavePromoted {
		i++
	}
	if i == len(mm.Status.Waves) {
		mm.Status.CurrentWave = int32(i - 1)
		setCondition(mm, ConditionSucceeded, true, ReasonAllWavesPromoted, fmt.Sprintf("all %d waves promoted", i))
		setCondition(mm, ConditionProgressing, false, ReasonSucceeded, "migration finished")
		r.event(mm, false, ReasonSucceeded, "Finish", "all %d waves promoted to %s", i, mm.Spec.TargetMode)
		return ctrl.Result{}, nil
	}
	mm.Status.CurrentWave = int32(i)
	w := &mm.Status.Waves[i]
	r.syncPause(mm, w)
	if !mm.Spec.Paused && !isTrue(mm, ConditionPaused) && w.Phase != meshv1alpha1.WaveRolledBack && w.Phase != meshv1alpha1.WaveFailed {
		setCondition(mm, ConditionProgressing, true, ReasonWaveInProgress,
			fmt.Sprintf("wave %s (%d of %d): %s", w.Name, i+1, len(mm.Status.Waves), w.Phase))
	}
	return r.wave(ctx, mm, &gate, i)
}

// fail marks the migration Failed for a reason no retry can fix, and releases
// the namespaces no wave changed.
func (r *Reconciler) fail(ctx context.Context, mm *meshv1alpha1.MeshMigration, reason, msg string) error {
	setCondition(mm, ConditionFailed, true, reason, msg)
	setCondition(mm, ConditionProgressing, false, ReasonFailed, msg)
	r.event(mm, true, reason, "Fail", "%s", msg)
	log.FromContext(ctx).Info("migration failed", "reason", reason, "message", msg)
	return r.releaseUntouched(ctx, mm)
}
