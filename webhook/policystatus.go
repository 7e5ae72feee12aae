package webhook

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
)

// Condition type and reasons of DataplanePolicy status.
const (
	ConditionReady      = "Ready"
	ReasonCompiled      = "Compiled"
	ReasonInvalidRules  = "InvalidRules"
	eventActionCompile  = "Compile"
	maxConditionMessage = 32 * 1024 // metav1.Condition's limit
	maxEventNote        = 1024      // events.k8s.io/v1's limit
)

// PolicyStatusReconciler writes status.observedGeneration and the Ready
// condition of DataplanePolicies: True when policies.Compile accepts the
// policy, False naming each field error when it does not (a policy stored
// while the validating webhook was down; the admission path ignores it). A
// Warning Event marks the transition to not ready. It runs on the leader only.
type PolicyStatusReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	// Policies, when set, compiles (once per generation, shared with the
	// admission path); nil means policies.Compile here.
	Policies *PolicyStore
	// Clock stamps lastTransitionTime; nil means the real clock.
	Clock clock.Clock
}

// +kubebuilder:rbac:groups=meshshift.io,resources=dataplanepolicies/status,verbs=update;patch

// SetupWithManager registers the reconciler as the controller
// "dataplanepolicy-status". Only generation changes trigger it: its own status
// writes do not.
func (r *PolicyStatusReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("meshshift-webhook")
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.DataplanePolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("dataplanepolicy-status").
		Complete(r)
}

// Reconcile compiles the policy and patches its status when it changed.
func (r *PolicyStatusReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	dp := &v1alpha1.DataplanePolicy{}
	if err := r.Client.Get(ctx, req.NamespacedName, dp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !dp.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	orig := dp.DeepCopy()
	wasNotReady := meta.IsStatusConditionFalse(dp.Status.Conditions, ConditionReady)
	var errs field.ErrorList
	if r.Policies != nil {
		errs = r.Policies.Compile(dp)
	} else {
		_, errs = policies.Compile(dp)
	}
	cond := readyCondition(dp, errs)
	cond.LastTransitionTime = metav1.NewTime(r.Clock.Now())
	meta.SetStatusCondition(&dp.Status.Conditions, cond)
	dp.Status.ObservedGeneration = dp.Generation
	if equality.Semantic.DeepEqual(orig.Status, dp.Status) {
		return ctrl.Result{}, nil
	}
	if err := r.Client.Status().Patch(ctx, dp, client.MergeFrom(orig)); err != nil {
		return ctrl.Result{}, fmt.Errorf("patch status of dataplanepolicy %s: %w", dp.Name, err)
	}
	logf.FromContext(ctx).V(1).Info("dataplanepolicy status written", "dataplanepolicy", klog.KObj(dp),
		"ready", cond.Status, "generation", dp.Generation)
	if cond.Status == metav1.ConditionFalse && !wasNotReady && r.Recorder != nil {
		r.Recorder.Eventf(dp, nil, corev1.EventTypeWarning, ReasonInvalidRules, eventActionCompile, "%s",
			truncate("policy is not in force: "+cond.Message, maxEventNote))
	}
	return ctrl.Result{}, nil
}

// readyCondition says whether dp, which compiled with errs, is in force.
func readyCondition(dp *v1alpha1.DataplanePolicy, errs field.ErrorList) metav1.Condition {
	c := metav1.Condition{Type: ConditionReady, ObservedGeneration: dp.Generation}
	if len(errs) > 0 {
		c.Status, c.Reason = metav1.ConditionFalse, ReasonInvalidRules
		c.Message = truncate(errorsMessage(errs), maxConditionMessage)
		return c
	}
	c.Status, c.Reason = metav1.ConditionTrue, ReasonCompiled
	n := len(dp.Spec.Rules)
	c.Message = fmt.Sprintf("%d rules compiled", n)
	if n == 1 {
		c.Message = "1 rule compiled"
	}
	return c
}

// errorsMessage names each error's field and what is wrong, leaving out the
// bad value (a rule may be 4 KiB long); CEL details keep line and column.
func errorsMessage(errs field.ErrorList) string {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Field + ": " + e.Type.String()
		if e.Detail != "" {
			parts[i] += ": " + e.Detail
		}
	}
	return strings.Join(parts, "; ")
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = " ..."
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
