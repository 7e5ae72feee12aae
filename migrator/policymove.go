package migrator

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/migrator/l7policy"
	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
)

// The Istio policy kinds a wave moves (security.istio.io/v1).
var (
	gvkAuthorizationPolicy   = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"}
	gvkRequestAuthentication = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "RequestAuthentication"}
	policyKinds              = []schema.GroupVersionKind{gvkAuthorizationPolicy, gvkRequestAuthentication}
)

// DefaultRootNamespace is Istio's default root namespace (meshConfig.rootNamespace).
const DefaultRootNamespace = "istio-system"

// movableFeatures are the features of selector-attached policies that a
// wave can move to the waypoint (l7policy): with them replaced by their
// targetRefs equivalent the workload is served by ambient-waypoint.
var movableFeatures = map[signals.Feature]bool{
	signals.FeatureL7AuthzSelector:  true,
	signals.FeatureL7AllowNarrowed:  true,
	signals.FeatureL7DenyIgnored:    true,
	signals.FeatureL7DenyBroadened:  true,
	signals.FeatureAuditSelector:    true,
	signals.FeatureExtAuthzSelector: true,
	signals.FeatureRequestAuthn:     true,
}

// asMoved returns the features with every movable selector-attached policy
// replaced by the targetRefs feature a waypoint serves, and whether any was.
func asMoved(fs signals.Features) (signals.Features, bool) {
	out := make(signals.Features, 0, len(fs))
	moved := false
	for _, f := range fs {
		if movableFeatures[f.Feature] && (f.Kind == gvkAuthorizationPolicy.Kind || f.Kind == gvkRequestAuthentication.Kind) {
			if f.Feature != signals.FeatureRequestAuthn {
				f.Feature = signals.FeatureL7Authz
			}
			moved = true
		}
		out = append(out, f)
	}
	return out, moved
}

// PolicyRecord is the part of a namespace's Record that a policy move adds:
// what the move's steps need to continue after a restart, and to undo it.
type PolicyRecord struct {
	// Workloads are the workloads ("Kind/name") whose policies move.
	Workloads []string `json:"workloads"`
	// Removed holds the originals deleted at promotion (originalPolicies
	// Remove), keyed "Kind/name", exactly as they were before the move.
	Removed map[string]json.RawMessage `json:"removed,omitempty"`
}

// listPolicies lists the AuthorizationPolicies and RequestAuthentications of
// a namespace, live (unstructured reads bypass the cache). A cluster without
// Istio's CRDs has none.
func (r *Reconciler) listPolicies(ctx context.Context, ns string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, gvk := range policyKinds {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := r.Client.List(ctx, l, client.InNamespace(ns)); err != nil {
			if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("list %s in %s: %w", gvk.Kind, ns, err)
		}
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	}
	return out, nil
}

func (r *Reconciler) rootNamespace() string {
	if r.RootNamespace != "" {
		return r.RootNamespace
	}
	return DefaultRootNamespace
}

func policyKey(u *unstructured.Unstructured) string { return u.GetKind() + "/" + u.GetName() }

// propose runs l7policy.Propose for the workloads of a namespace, over its
// policies as they were before the move: a policy this move already narrowed
// is given as its original (l7policy.Restore), so a resumed step computes
// the same move.
func (r *Reconciler) propose(ctx context.Context, mm *meshv1alpha1.MeshMigration, ns, waypoint string, names []string) (*l7policy.Plan, error) {
	ws, err := r.listWorkloads(ctx, ns)
	if err != nil {
		return nil, err
	}
	in := l7policy.Input{Namespace: ns, RootNamespace: r.rootNamespace(), TrustDomain: r.TrustDomain, Waypoint: waypoint, Migration: mm.Name}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for i := range ws {
		if want[ws[i].String()] {
			in.Workloads = append(in.Workloads, l7policy.Workload{Kind: ws[i].kind, Name: ws[i].obj.GetName(), PodLabels: ws[i].template.Labels})
		}
	}
	var svcs corev1.ServiceList
	if err := r.Client.List(ctx, &svcs, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list services in %s: %w", ns, err)
	}
	for i := range svcs.Items {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&svcs.Items[i])
		if err != nil {
			return nil, fmt.Errorf("convert service %s/%s: %w", ns, svcs.Items[i].Name, err)
		}
		u := &unstructured.Unstructured{Object: m}
		u.SetAPIVersion("v1")
		u.SetKind("Service")
		in.Services = append(in.Services, u)
	}
	for _, n := range []string{ns, r.rootNamespace()} {
		ps, err := r.listPolicies(ctx, n)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if p.GetLabels()[l7policy.LabelMigration] != "" {
				continue // a copy or an admit policy some migration created
			}
			if l7policy.IsNarrowed(p) {
				orig, err := l7policy.Restore(p)
				if err != nil {
					return nil, fmt.Errorf("restore %s %s/%s: %w", p.GetKind(), p.GetNamespace(), p.GetName(), err)
				}
				p = orig
			}
			in.Policies = append(in.Policies, p)
		}
		if n == r.rootNamespace() {
			break
		}
	}
	plan, err := l7policy.Propose(in)
	if err != nil {
		return nil, fmt.Errorf("propose policy move in %s: %w", ns, err)
	}
	return plan, nil
}

// proposalLines is a plan in words for the wave's status.
func proposalLines(ns string, plan *l7policy.Plan) []string {
	var out []string
	for _, m := range plan.Moves {
		out = append(out, ns+": "+m.Why)
	}
	for _, a := range plan.Admit {
		out = append(out, fmt.Sprintf("%s: admit %s %s (ztunnel: L4 policies admit the waypoint's identity)", ns, a.GetKind(), a.GetName()))
	}
	for _, b := range plan.Blocked {
		out = append(out, ns+": blocked: "+b)
	}
	return out
}

// moveNamespacePolicies does the next step of a namespace's policy move:
// record → label sidecar pods → waypoint Gateway → wait until istiod has
// programmed it → copies and admit policies → narrow the originals. It
// returns done when every step is complete (moved when the namespace had
// policies to move), else what it waits for. Each
// step is idempotent: a restarted manager repeats the ones already done
// without changing anything.
func (r *Reconciler) moveNamespacePolicies(ctx context.Context, mm *meshv1alpha1.MeshMigration, wave, name string) (done, moved bool, why string, err error) {
	done, why, err = r.moveSteps(ctx, mm, wave, name, &moved)
	return done, moved, why, err
}

func (r *Reconciler) moveSteps(ctx context.Context, mm *meshv1alpha1.MeshMigration, wave, name string, moved *bool) (bool, string, error) {
	ns, rec, err := r.ensureRecord(ctx, mm, wave, name)
	if err != nil {
		return false, "", err
	}
	if rec.Policies == nil || rec.Waypoint == "" {
		return true, "", nil
	}
	*moved = true
	plan, err := r.propose(ctx, mm, name, rec.Waypoint, rec.Policies.Workloads)
	if err != nil {
		return false, "", err
	}
	if len(plan.Blocked) > 0 {
		return false, "", &blockedError{msg: name + ": " + strings.Join(plan.Blocked, "; ")}
	}
	if err := r.labelSidecarPods(ctx, ns, plan); err != nil {
		return false, "", err
	}
	if err := r.ensureWaypointGateway(ctx, mm.Name, name, rec.Waypoint); err != nil {
		return false, "", err
	}
	if ok, why, err := r.waypointProgrammed(ctx, name, rec.Waypoint); err != nil || !ok {
		return false, why, err
	}
	for _, m := range plan.Moves {
		if m.Copy != nil {
			if err := r.createOwned(ctx, mm.Name, m.Copy); err != nil {
				return false, "", err
			}
		}
	}
	for _, a := range plan.Admit {
		if err := r.createOwned(ctx, mm.Name, a); err != nil {
			return false, "", err
		}
	}
	for _, m := range plan.Moves {
		if err := r.narrow(ctx, m); err != nil {
			return false, "", err
		}
	}
	return true, "", nil
}

// blockedError is a policy that cannot be moved safely: the wave stops.
type blockedError struct{ msg string }

func (e *blockedError) Error() string { return "policy move blocked: " + e.msg }

// labelSidecarPods labels the running pods the moved originals select, and
// that are on a sidecar, with meshshift.io/dataplane=sidecar where the label
// is missing, so the narrowed originals keep selecting them.
func (r *Reconciler) labelSidecarPods(ctx context.Context, ns *corev1.Namespace, plan *l7policy.Plan) error {
	var sels []labels.Selector
	for _, m := range plan.Moves {
		ml, _, err := unstructured.NestedStringMap(m.Source.Object, "spec", "selector", "matchLabels")
		if err != nil {
			return fmt.Errorf("read selector of %s %s/%s: %w", m.Source.GetKind(), ns.Name, m.Source.GetName(), err)
		}
		sels = append(sels, labels.SelectorFromSet(ml))
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(ns.Name)); err != nil {
		return fmt.Errorf("list pods in %s: %w", ns.Name, err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if _, ok := p.Labels[meshv1alpha1.LabelDataplane]; ok || p.DeletionTimestamp != nil {
			continue
		}
		selected := false
		for _, s := range sels {
			selected = selected || s.Matches(labels.Set(p.Labels))
		}
		if !selected || !podOnSidecar(p, ns) {
			continue
		}
		patch := client.MergeFromWithOptions(p.DeepCopy(), client.MergeFromWithOptimisticLock{})
		p.Labels[meshv1alpha1.LabelDataplane] = string(meshv1alpha1.ModeSidecar)
		if err := r.Client.Patch(ctx, p, patch); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("label pod %s/%s: %w", ns.Name, p.Name, err)
		}
	}
	return nil
}

// podOnSidecar says whether a running pod has a sidecar: istio-proxy among
// its containers, or a current mode of sidecar by its labels and namespace.
func podOnSidecar(p *corev1.Pod, ns *corev1.Namespace) bool {
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			if c.Name == "istio-proxy" {
				return true
			}
		}
	}
	m, ok := policies.CurrentMode(&policies.Workload{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, Annotations: p.Annotations},
		&policies.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations})
	return ok && m == meshv1alpha1.ModeSidecar
}

// ensureWaypointGateway creates the waypoint Gateway when it is missing.
func (r *Reconciler) ensureWaypointGateway(ctx context.Context, migration, namespace, name string) error {
	gw := &gatewayv1.Gateway{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, gw)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Client.Create(ctx, waypointGateway(migration, namespace, name)); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create waypoint gateway %s/%s: %w", namespace, name, err)
		}
	case err != nil:
		return fmt.Errorf("get waypoint gateway %s/%s: %w", namespace, name, err)
	}
	return nil
}

// waypointProgrammed says whether istiod has programmed the waypoint: the
// Gateway's Programmed condition is True for its current generation, and
// the Deployment istiod made for it is available; else what is missing.
func (r *Reconciler) waypointProgrammed(ctx context.Context, namespace, name string) (bool, string, error) {
	gw := &gatewayv1.Gateway{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, gw); err != nil {
		if apierrors.IsNotFound(err) {
			return false, "waypoint gateway " + namespace + "/" + name + " not in the cache yet", nil
		}
		return false, "", fmt.Errorf("get waypoint gateway %s/%s: %w", namespace, name, err)
	}
	c := meta.FindStatusCondition(gw.Status.Conditions, string(gatewayv1.GatewayConditionProgrammed))
	if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration < gw.Generation {
		why := "no Programmed condition"
		if c != nil {
			why = fmt.Sprintf("Programmed=%s %s: %s", c.Status, c.Reason, c.Message)
		}
		return false, "waypoint " + namespace + "/" + name + " not programmed by istiod: " + why, nil
	}
	d := &appsv1.Deployment{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, d); err != nil {
		if apierrors.IsNotFound(err) {
			return false, "waypoint " + namespace + "/" + name + ": no Deployment yet", nil
		}
		return false, "", fmt.Errorf("get waypoint deployment %s/%s: %w", namespace, name, err)
	}
	for _, dc := range d.Status.Conditions {
		if dc.Type == appsv1.DeploymentAvailable && dc.Status == corev1.ConditionTrue &&
			d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas > 0 {
			return true, "", nil
		}
	}
	return false, fmt.Sprintf("waypoint %s/%s: Deployment not available (%d of %d pods available)",
		namespace, name, d.Status.AvailableReplicas, d.Status.Replicas), nil
}

// createOwned creates an object a move adds (a copy or an admit policy),
// labelled with the migration; one that exists already must be this
// migration's.
func (r *Reconciler) createOwned(ctx context.Context, migration string, u *unstructured.Unstructured) error {
	obj := u.DeepCopy()
	l := obj.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	l[l7policy.LabelMigration] = migration
	obj.SetLabels(l)
	err := r.Client.Create(ctx, obj)
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
	}
	cur := &unstructured.Unstructured{}
	cur.SetGroupVersionKind(obj.GroupVersionKind())
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
		return fmt.Errorf("get %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
	}
	if owner := cur.GetLabels()[l7policy.LabelMigration]; owner != migration {
		return fmt.Errorf("%s %s/%s exists and is not this migration's (label %s=%q)", obj.GetKind(), obj.GetNamespace(), obj.GetName(), l7policy.LabelMigration, owner)
	}
	return nil
}

// narrow replaces an original with its narrowed form in one Update (spec and
// the annotation holding the original together), unless it is narrowed already.
func (r *Reconciler) narrow(ctx context.Context, m l7policy.Move) error {
	cur := &unstructured.Unstructured{}
	cur.SetGroupVersionKind(m.Source.GroupVersionKind())
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(m.Source), cur); err != nil {
		return fmt.Errorf("get %s %s/%s: %w", m.Source.GetKind(), m.Source.GetNamespace(), m.Source.GetName(), err)
	}
	if l7policy.IsNarrowed(cur) {
		return nil
	}
	n := m.Narrowed.DeepCopy()
	n.SetResourceVersion(cur.GetResourceVersion())
	n.SetUID(cur.GetUID())
	if err := r.Client.Update(ctx, n); err != nil {
		return fmt.Errorf("narrow %s %s/%s: %w", m.Source.GetKind(), m.Source.GetNamespace(), m.Source.GetName(), err)
	}
	return nil
}

// recreateRemoved recreates, narrowed as they were, the originals a
// promotion removed (originalPolicies Remove), so the pods a rollback puts
// back on sidecars are guarded by them again.
func (r *Reconciler) recreateRemoved(ctx context.Context, namespace string, rec *Record) error {
	if rec.Policies == nil {
		return nil
	}
	for _, key := range sortedKeys(rec.Policies.Removed) {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(rec.Policies.Removed[key]); err != nil {
			return fmt.Errorf("read removed %s of namespace %s: %w", key, namespace, err)
		}
		if err := r.Client.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("recreate %s %s/%s: %w", u.GetKind(), namespace, u.GetName(), err)
		}
	}
	return nil
}

// undoPolicies restores every original the migration narrowed in
// a namespace, then deletes the copies and admit policies it created. The
// waypoint is undone after it (undoNamespace), so no targetRefs policy is
// ever left without it.
func (r *Reconciler) undoPolicies(ctx context.Context, migration, namespace string, rec *Record) error {
	ps, err := r.listPolicies(ctx, namespace)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.GetLabels()[l7policy.LabelMigration] != "" || !l7policy.IsNarrowed(p) {
			continue
		}
		orig, err := l7policy.Restore(p)
		if err != nil {
			return fmt.Errorf("restore %s %s/%s: %w", p.GetKind(), namespace, p.GetName(), err)
		}
		orig.SetResourceVersion(p.GetResourceVersion())
		orig.SetUID(p.GetUID())
		if err := r.Client.Update(ctx, orig); err != nil {
			return fmt.Errorf("restore %s %s/%s: %w", p.GetKind(), namespace, p.GetName(), err)
		}
	}
	for _, p := range ps {
		if p.GetLabels()[l7policy.LabelMigration] != migration {
			continue
		}
		uid := p.GetUID()
		if err := r.Client.Delete(ctx, p, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete %s %s/%s: %w", p.GetKind(), namespace, p.GetName(), err)
		}
	}
	return nil
}

// removeOriginals deletes the narrowed originals of a promoted wave's
// namespace (originalPolicies Remove), after writing each, narrowed (with the
// original in its annotation), into the namespace's record so a later
// rollback recreates it and then restores it exactly.
func (r *Reconciler) removeOriginals(ctx context.Context, migration, name string) error {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		return fmt.Errorf("get namespace %s: %w", name, err)
	}
	rec, err := readRecord(ns)
	if err != nil || rec == nil || rec.Migration != migration || rec.Policies == nil {
		return err
	}
	ps, err := r.listPolicies(ctx, name)
	if err != nil {
		return err
	}
	var narrowed []*unstructured.Unstructured
	for _, p := range ps {
		if p.GetLabels()[l7policy.LabelMigration] == "" && l7policy.IsNarrowed(p) {
			narrowed = append(narrowed, p)
		}
	}
	if len(narrowed) == 0 {
		return nil
	}
	if rec.Policies.Removed == nil {
		rec.Policies.Removed = map[string]json.RawMessage{}
	}
	for _, p := range narrowed {
		keep := p.DeepCopy()
		for _, f := range []string{"resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"} {
			unstructured.RemoveNestedField(keep.Object, "metadata", f)
		}
		delete(keep.Object, "status")
		b, err := keep.MarshalJSON()
		if err != nil {
			return fmt.Errorf("encode %s %s/%s: %w", p.GetKind(), name, p.GetName(), err)
		}
		rec.Policies.Removed[policyKey(p)] = b
	}
	if err := r.writeRecord(ctx, ns, rec); err != nil {
		return err
	}
	for _, p := range narrowed {
		uid := p.GetUID()
		if err := r.Client.Delete(ctx, p, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete original %s %s/%s: %w", p.GetKind(), name, p.GetName(), err)
		}
	}
	return nil
}
