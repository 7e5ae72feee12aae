package migrator

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
)

// Annotations the migrator keeps on the namespaces and objects it changes.
const (
	// AnnotationMigration names the MeshMigration that owns a namespace.
	AnnotationMigration = "meshshift.io/migration"
	// AnnotationPreviousLabels is the JSON Record of what the flip changed.
	AnnotationPreviousLabels = "meshshift.io/previous-labels"
	// AnnotationCreatedBy marks a waypoint Gateway the migrator created, with
	// the migration's name.
	AnnotationCreatedBy = "meshshift.io/created-by"
	// AnnotationRestartedAt is the pod-template annotation that restarts a
	// workload (the one `kubectl rollout restart` writes).
	AnnotationRestartedAt = "kubectl.kubernetes.io/restartedAt"
	// LabelWaypointFor says which traffic a waypoint serves.
	LabelWaypointFor = "istio.io/waypoint-for"
	// WaypointClass is Istio's GatewayClass for waypoints.
	WaypointClass = "istio-waypoint"
	// LabelGatewayName is on the Deployment istiod runs for a Gateway (a
	// waypoint among them); the migrator neither decides nor restarts it.
	LabelGatewayName = "gateway.networking.k8s.io/gateway-name"
)

// managedLabels and managedAnnotations are the namespace keys a flip may change.
var (
	managedLabels = []string{
		policies.LabelIstioInjection, policies.LabelIstioRev,
		policies.LabelIstioDataplaneMode, policies.LabelIstioUseWaypoint,
	}
	managedAnnotations = []string{meshv1alpha1.AnnotationMode, policies.AnnotationLinkerdInject}
)

// Record is what a namespace looked like before a migration flipped it: the
// previous value of every key the flip manages (nil: the key was absent), and
// the Services it labeled with their previous istio.io/use-waypoint.
type Record struct {
	Migration   string             `json:"migration"`
	Wave        string             `json:"wave"`
	Target      meshv1alpha1.Mode  `json:"target"`
	Labels      map[string]*string `json:"labels"`
	Annotations map[string]*string `json:"annotations"`
	// Waypoint is the waypoint Gateway's name when workloads need one.
	Waypoint string `json:"waypoint,omitempty"`
	// Services labeled with istio.io/use-waypoint, with their previous value.
	Services map[string]*string `json:"services,omitempty"`
	// Policies is set when the wave moves selector-attached L7 policies of
	// the namespace to its waypoint (spec.policyMigration Apply).
	Policies *PolicyRecord `json:"policies,omitempty"`
}

// readRecord returns the namespace's record, or nil when it has none.
func readRecord(ns *corev1.Namespace) (*Record, error) {
	s, ok := ns.Annotations[AnnotationPreviousLabels]
	if !ok {
		return nil, nil
	}
	var r Record
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, fmt.Errorf("read annotation %s of namespace %s: %w", AnnotationPreviousLabels, ns.Name, err)
	}
	return &r, nil
}

func newRecord(ns *corev1.Namespace, migration, wave string, target meshv1alpha1.Mode, plan *nsPlan) *Record {
	r := &Record{Migration: migration, Wave: wave, Target: target,
		Labels: map[string]*string{}, Annotations: map[string]*string{}}
	for _, k := range managedLabels {
		r.Labels[k] = valueOf(ns.Labels, k)
	}
	for _, k := range managedAnnotations {
		r.Annotations[k] = valueOf(ns.Annotations, k)
	}
	if plan.waypoint != "" {
		r.Waypoint = plan.waypoint
		r.Services = map[string]*string{}
		for name, prev := range plan.services {
			r.Services[name] = prev
		}
	}
	if len(plan.moving) > 0 && plan.apply {
		r.Policies = &PolicyRecord{Workloads: append([]string(nil), plan.moving...)}
	}
	return r
}

func valueOf(m map[string]string, k string) *string {
	if v, ok := m[k]; ok {
		return &v
	}
	return nil
}

func setOrDelete(m map[string]string, k string, v *string) {
	if v == nil {
		delete(m, k)
	} else {
		m[k] = *v
	}
}

// nsStep is one change of a namespace, applied with its own update so the
// mesh sees the documented order.
type nsStep func(ns *corev1.Namespace)

// flipSteps are the namespace changes that put it in target, in the mesh's
// documented safe order: for a sidecarless target the dataplane label first,
// then the injection labels go; for sidecar the injection label first, then the
// ambient labels go.
func flipSteps(target meshv1alpha1.Mode, provider meshv1alpha1.MeshProvider) []nsStep {
	mode := func(ns *corev1.Namespace) { ns.Annotations[meshv1alpha1.AnnotationMode] = string(target) }
	dropInjection := func(ns *corev1.Namespace) {
		delete(ns.Labels, policies.LabelIstioInjection)
		delete(ns.Labels, policies.LabelIstioRev)
		if ns.Annotations[policies.AnnotationLinkerdInject] == "enabled" {
			ns.Annotations[policies.AnnotationLinkerdInject] = "disabled"
		}
	}
	switch target {
	case meshv1alpha1.ModeAmbient, meshv1alpha1.ModeAmbientWaypoint:
		return []nsStep{
			func(ns *corev1.Namespace) { mode(ns); ns.Labels[policies.LabelIstioDataplaneMode] = "ambient" },
			dropInjection,
		}
	case meshv1alpha1.ModeSidecar:
		inject := func(ns *corev1.Namespace) {
			mode(ns)
			if provider == meshv1alpha1.MeshProviderLinkerd {
				ns.Annotations[policies.AnnotationLinkerdInject] = "enabled"
			} else if _, rev := ns.Labels[policies.LabelIstioRev]; !rev {
				ns.Labels[policies.LabelIstioInjection] = "enabled"
			}
		}
		return []nsStep{inject, func(ns *corev1.Namespace) {
			delete(ns.Labels, policies.LabelIstioDataplaneMode)
			delete(ns.Labels, policies.LabelIstioUseWaypoint)
		}}
	default: // cilium, none: out of Istio's and Linkerd's hands.
		return []nsStep{func(ns *corev1.Namespace) {
			mode(ns)
			if ns.Labels[policies.LabelIstioDataplaneMode] == "ambient" {
				delete(ns.Labels, policies.LabelIstioDataplaneMode)
			}
			delete(ns.Labels, policies.LabelIstioUseWaypoint)
		}, dropInjection}
	}
}

// undoSteps restore a record in the reverse safe order: injection first (a
// sidecar wins over ambient), then the dataplane labels and the mode annotation.
func undoSteps(r *Record) []nsStep {
	restore := func(keys []string, labels bool) nsStep {
		return func(ns *corev1.Namespace) {
			for _, k := range keys {
				if labels {
					setOrDelete(ns.Labels, k, r.Labels[k])
				} else {
					setOrDelete(ns.Annotations, k, r.Annotations[k])
				}
			}
		}
	}
	return []nsStep{
		restore([]string{policies.LabelIstioInjection, policies.LabelIstioRev}, true),
		restore([]string{policies.AnnotationLinkerdInject}, false),
		restore([]string{policies.LabelIstioDataplaneMode}, true),
		restore([]string{meshv1alpha1.AnnotationMode}, false),
		restore([]string{policies.LabelIstioUseWaypoint}, true),
	}
}

// applySteps applies each step that changes something with its own update
// (optimistic concurrency: a conflict returns an error and the reconcile retries).
func (r *Reconciler) applySteps(ctx context.Context, ns *corev1.Namespace, steps []nsStep) error {
	for _, step := range steps {
		next := ns.DeepCopy()
		if next.Labels == nil {
			next.Labels = map[string]string{}
		}
		if next.Annotations == nil {
			next.Annotations = map[string]string{}
		}
		step(next)
		if equalMaps(next.Labels, ns.Labels) && equalMaps(next.Annotations, ns.Annotations) {
			continue
		}
		if err := r.Client.Update(ctx, next); err != nil {
			return fmt.Errorf("update namespace %s: %w", ns.Name, err)
		}
		*ns = *next
	}
	return nil
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// ensureRecord returns the namespace and its record, writing the record
// (once, before anything else changes) when it has none.
func (r *Reconciler) ensureRecord(ctx context.Context, mm *meshv1alpha1.MeshMigration, wave, name string) (*corev1.Namespace, *Record, error) {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		return nil, nil, fmt.Errorf("get namespace %s: %w", name, err)
	}
	rec, err := readRecord(ns)
	if err != nil {
		return nil, nil, err
	}
	if rec != nil && rec.Migration != mm.Name {
		return nil, nil, fmt.Errorf("namespace %s holds the record of migration %s", name, rec.Migration)
	}
	if rec == nil {
		plan, err := r.planNamespace(ctx, mm, ns)
		if err != nil {
			return nil, nil, err
		}
		rec = newRecord(ns, mm.Name, wave, mm.Spec.TargetMode, plan)
		if err := r.writeRecord(ctx, ns, rec); err != nil {
			return nil, nil, err
		}
	}
	return ns, rec, nil
}

// writeRecord writes a namespace's record and its claim in one update.
func (r *Reconciler) writeRecord(ctx context.Context, ns *corev1.Namespace, rec *Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode record of namespace %s: %w", ns.Name, err)
	}
	return r.applySteps(ctx, ns, []nsStep{func(ns *corev1.Namespace) {
		ns.Annotations[AnnotationPreviousLabels] = string(b)
		ns.Annotations[AnnotationMigration] = rec.Migration
	}})
}

// flipNamespace puts one namespace in the migration's target mode. It is
// idempotent: the record is written first (once), then the waypoint, then the
// labels in order; a crash anywhere leaves a state the next call completes.
func (r *Reconciler) flipNamespace(ctx context.Context, mm *meshv1alpha1.MeshMigration, wave string, name string) error {
	ns, rec, err := r.ensureRecord(ctx, mm, wave, name)
	if err != nil {
		return err
	}
	// Where workloads will be ambient-waypoint: the waypoint and the Services'
	// labels come first, before any pod can restart into ambient.
	if rec.Waypoint != "" {
		if err := r.ensureWaypoint(ctx, mm.Name, name, rec); err != nil {
			return err
		}
	}
	provider := r.policyFor(ctx, ns.Labels).Provider()
	return r.applySteps(ctx, ns, flipSteps(mm.Spec.TargetMode, provider))
}

// undoNamespace restores a namespace from its record and removes the record
// and the claim. Without a record of this migration it does nothing. When
// the namespace's policies were moved and final is false, it restores only
// the labels: the originals, the copies and the waypoint stay until the
// workloads are back on their sidecars (a restored original selecting an
// ambient pod would be enforced by ztunnel as deny-all) — originals removed
// at promotion are recreated narrowed first; the call with final true, after
// the restart, restores the originals, deletes the copies, then undoes the
// waypoint.
func (r *Reconciler) undoNamespace(ctx context.Context, migration, name string, final bool) error {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get namespace %s: %w", name, err)
	}
	rec, err := readRecord(ns)
	if err != nil {
		return err
	}
	if rec == nil || rec.Migration != migration {
		return nil
	}
	if err := r.applySteps(ctx, ns, undoSteps(rec)); err != nil {
		return err
	}
	if rec.Policies != nil {
		if err := r.recreateRemoved(ctx, name, rec); err != nil {
			return err
		}
		if !final {
			return nil
		}
		if err := r.undoPolicies(ctx, migration, name, rec); err != nil {
			return err
		}
	}
	if rec.Waypoint != "" {
		if err := r.undoWaypoint(ctx, migration, name, rec); err != nil {
			return err
		}
	}
	return r.applySteps(ctx, ns, []nsStep{func(ns *corev1.Namespace) {
		delete(ns.Annotations, AnnotationPreviousLabels)
		if ns.Annotations[AnnotationMigration] == migration {
			delete(ns.Annotations, AnnotationMigration)
		}
	}})
}

// ensureWaypoint creates the waypoint Gateway (when missing) and labels the
// recorded Services with it.
func (r *Reconciler) ensureWaypoint(ctx context.Context, migration, namespace string, rec *Record) error {
	gw := &gatewayv1.Gateway{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: rec.Waypoint}, gw)
	switch {
	case apierrors.IsNotFound(err):
		gw = waypointGateway(migration, namespace, rec.Waypoint)
		if err := r.Client.Create(ctx, gw); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create waypoint gateway %s/%s: %w", namespace, rec.Waypoint, err)
		}
	case err != nil:
		return fmt.Errorf("get waypoint gateway %s/%s: %w", namespace, rec.Waypoint, err)
	}
	for _, name := range sortedKeys(rec.Services) {
		svc := &corev1.Service{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, svc); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("get service %s/%s: %w", namespace, name, err)
		}
		if svc.Labels[policies.LabelIstioUseWaypoint] == rec.Waypoint {
			continue
		}
		patch := client.MergeFromWithOptions(svc.DeepCopy(), client.MergeFromWithOptimisticLock{})
		if svc.Labels == nil {
			svc.Labels = map[string]string{}
		}
		svc.Labels[policies.LabelIstioUseWaypoint] = rec.Waypoint
		if err := r.Client.Patch(ctx, svc, patch); err != nil {
			return fmt.Errorf("label service %s/%s: %w", namespace, name, err)
		}
	}
	return nil
}

// undoWaypoint restores the Services' labels and deletes the Gateway when
// this migration created it.
func (r *Reconciler) undoWaypoint(ctx context.Context, migration, namespace string, rec *Record) error {
	for _, name := range sortedKeys(rec.Services) {
		svc := &corev1.Service{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, svc); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("get service %s/%s: %w", namespace, name, err)
		}
		prev := rec.Services[name]
		if cur := valueOf(svc.Labels, policies.LabelIstioUseWaypoint); (cur == nil) == (prev == nil) && (cur == nil || *cur == *prev) {
			continue
		}
		patch := client.MergeFromWithOptions(svc.DeepCopy(), client.MergeFromWithOptimisticLock{})
		if svc.Labels == nil {
			svc.Labels = map[string]string{}
		}
		setOrDelete(svc.Labels, policies.LabelIstioUseWaypoint, prev)
		if err := r.Client.Patch(ctx, svc, patch); err != nil {
			return fmt.Errorf("restore labels of service %s/%s: %w", namespace, name, err)
		}
	}
	gw := &gatewayv1.Gateway{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: rec.Waypoint}, gw); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get waypoint gateway %s/%s: %w", namespace, rec.Waypoint, err)
	}
	if gw.Annotations[AnnotationCreatedBy] != migration {
		return nil
	}
	if err := r.Client.Delete(ctx, gw, client.Preconditions{UID: &gw.UID}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete waypoint gateway %s/%s: %w", namespace, rec.Waypoint, err)
	}
	return nil
}

// waypointGateway is the Gateway `istioctl waypoint apply --for all` writes.
func waypointGateway(migration, namespace, name string) *gatewayv1.Gateway {
	return &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name,
			Labels:      map[string]string{LabelWaypointFor: "all"},
			Annotations: map[string]string{AnnotationCreatedBy: migration},
		},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: WaypointClass,
			Listeners: []gatewayv1.Listener{{
				Name: "mesh", Port: 15008, Protocol: "HBONE",
			}},
		},
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
