package webhook

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
)

// Event reason and action of the missed-decision detector.
const (
	EventReasonMissedDecision = "MissedDecision"
	eventActionAdmit          = "Admit"
)

// detectorKey is the one request every watched change maps to: the detector
// recounts everything from the cache, which is cheap and never drifts.
var detectorKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "missed-decisions"}}

// Detector finds pods admitted without a meshshift decision (no
// meshshift.io/decision annotation: the webhook was down or timed out, and the
// Ignore failure policy let the pod through) and reports them: a Warning Event
// on each pod (once per pod), the meshshift_webhook_missed_decisions gauge, and
// status.missedDecisions of each MeshMigration whose namespaces hold such pods.
// It never changes a pod.
type Detector struct {
	// Client reads Pods, Namespaces and MeshMigrations (from the cache) and
	// patches MeshMigration status.
	Client   client.Client
	Recorder events.EventRecorder
	// Skipped reports namespaces whose pods are not decided (the webhook
	// configuration's namespaceSelector skips them).
	Skipped func(namespace string) bool

	reported map[types.UID]bool
}

// detectorDelay is how long the detector lets changes gather before it
// recounts: under a stream of pod changes (a rollout, a thousand creates a
// second) it recounts once per delay, not once per change.
const detectorDelay = time.Second

// SetupWithManager registers the detector as the controller "missed-decisions".
func (d *Detector) SetupWithManager(mgr ctrl.Manager) error {
	later := func(q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		q.AddAfter(detectorKey, detectorDelay)
	}
	recount := handler.Funcs{
		CreateFunc: func(_ context.Context, _ event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			later(q)
		},
		UpdateFunc: func(_ context.Context, _ event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			later(q)
		},
		DeleteFunc: func(_ context.Context, _ event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			later(q)
		},
		GenericFunc: func(_ context.Context, _ event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			later(q)
		},
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("missed-decisions").
		WatchesRawSource(source.Kind(mgr.GetCache(), client.Object(&corev1.Pod{}), recount)).
		WatchesRawSource(source.Kind(mgr.GetCache(), client.Object(&v1alpha1.MeshMigration{}), recount)).
		Complete(d)
}

// Reconcile recounts the pods without a decision.
func (d *Detector) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	log := logf.FromContext(ctx)
	// Read-only: the cache's own objects, not a deep copy of every pod per
	// recount (which dominated the manager's CPU and garbage at 10,000 pods).
	var pods corev1.PodList
	if err := d.Client.List(ctx, &pods, client.UnsafeDisableDeepCopy); err != nil {
		return reconcile.Result{}, fmt.Errorf("list pods: %w", err)
	}
	perNS := map[string]int32{}
	seen := make(map[types.UID]bool, len(d.reported))
	total := 0
	for i := range pods.Items {
		p := &pods.Items[i]
		if !d.missed(p) {
			continue
		}
		total++
		perNS[p.Namespace]++
		seen[p.UID] = true
		if d.reported[p.UID] {
			continue
		}
		if d.Recorder != nil {
			d.Recorder.Eventf(p, nil, corev1.EventTypeWarning, EventReasonMissedDecision, eventActionAdmit,
				"pod was admitted without a meshshift dataplane decision (the webhook was unavailable); its mesh labels are what its template says until it is recreated")
		}
		log.Info("pod admitted without a decision", "pod", klog.KObj(p))
	}
	d.reported = seen
	missedDecisions.Set(float64(total))
	if err := d.updateMigrations(ctx, perNS); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, nil
}

func (d *Detector) missed(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || (d.Skipped != nil && d.Skipped(p.Namespace)) {
		return false
	}
	_, ok := p.Annotations[v1alpha1.AnnotationDecision]
	return !ok
}

func (d *Detector) updateMigrations(ctx context.Context, perNS map[string]int32) error {
	var list v1alpha1.MeshMigrationList
	if err := d.Client.List(ctx, &list); err != nil {
		return fmt.Errorf("list meshmigrations: %w", err)
	}
	if len(list.Items) == 0 {
		return nil
	}
	var nsList corev1.NamespaceList
	if err := d.Client.List(ctx, &nsList, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	for i := range list.Items {
		mm := &list.Items[i]
		var n int32
		for ns := range ownedNamespaces(mm, nsList.Items) {
			n += perNS[ns]
		}
		if mm.Status.MissedDecisions == n {
			continue
		}
		orig := mm.DeepCopy()
		mm.Status.MissedDecisions = n
		if err := d.Client.Status().Patch(ctx, mm, client.MergeFrom(orig)); err != nil {
			return fmt.Errorf("patch status of meshmigration %s: %w", mm.Name, err)
		}
	}
	return nil
}

// SkippedNamespaces returns the predicate of namespaces meshshift does not
// decide: Kubernetes' and the meshes' (policies.SystemNamespaces) and own.
func SkippedNamespaces(own ...string) func(string) bool {
	set := map[string]bool{}
	for _, n := range policies.SystemNamespaces {
		set[n] = true
	}
	for _, n := range own {
		set[n] = true
	}
	return func(ns string) bool { return set[ns] }
}
