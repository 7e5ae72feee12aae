package migrator

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

func testScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(meshv1alpha1.AddToScheme(s))
	utilruntime.Must(gatewayv1.Install(s))
	for _, gvk := range policyKinds {
		s.AddKnownTypeWithName(gvk, &unstructured.Unstructured{})
		s.AddKnownTypeWithName(gvk.GroupVersion().WithKind(gvk.Kind+"List"), &unstructured.UnstructuredList{})
	}
	return s
}

// write is one write the reconciler made, in order.
type write struct {
	kind, name string
	labels     map[string]string
}

func newTestReconciler(t *testing.T, caps signals.Capabilities, features FeatureSource, objs ...client.Object) (*Reconciler, *[]write) {
	t.Helper()
	var writes []write
	record := func(obj client.Object) {
		writes = append(writes, write{kind: strings.TrimPrefix(strings.TrimPrefix(typeName(obj), "*v1."), "*"), name: obj.GetName(), labels: maps.Clone(obj.GetLabels())})
	}
	c := fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(objs...).
		WithStatusSubresource(&meshv1alpha1.MeshMigration{}).
		WithInterceptorFuncs(interceptor.Funcs{
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				record(obj)
				return c.Update(ctx, obj, opts...)
			},
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				record(obj)
				return c.Create(ctx, obj, opts...)
			},
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
				record(obj)
				return c.Patch(ctx, obj, p, opts...)
			},
		}).Build()
	r := &Reconciler{
		Client: c, APIReader: c, Clock: clocktesting.NewFakeClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)),
		Capabilities: func(context.Context) (signals.Capabilities, error) { return caps, nil },
		Features:     features, PrometheusURL: "http://127.0.0.1:1",
	}
	return r, &writes
}

func typeName(obj client.Object) string {
	switch o := obj.(type) {
	case *corev1.Namespace:
		return "Namespace"
	case *corev1.Service:
		return "Service"
	case *gatewayv1.Gateway:
		return "Gateway"
	case *meshv1alpha1.MeshMigration:
		return "MeshMigration"
	case *unstructured.Unstructured:
		return o.GetKind()
	}
	return "other"
}

func sidecarNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"istio-injection": "enabled", "kubernetes.io/metadata.name": name}}}
}

func deployment(ns, name string) *appsv1.Deployment {
	l := map[string]string{"app": name}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "c"}}}}}}
}

func migration(name string, target meshv1alpha1.Mode, nss ...string) *meshv1alpha1.MeshMigration {
	return &meshv1alpha1.MeshMigration{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: meshv1alpha1.MeshMigrationSpec{TargetMode: target, Namespaces: &meshv1alpha1.NamespaceTarget{Names: nss}}}
}

// TestFlipSafeOrderAndExactUndo checks the order of the namespace writes of a
// flip to ambient (record first, then dataplane-mode while injection is still
// on, then injection removed) and that the undo restores exactly what was there.
func TestFlipSafeOrderAndExactUndo(t *testing.T) {
	ns := sidecarNamespace("shop")
	ns.Labels["istio.io/rev"] = "canary"
	ns.Annotations = map[string]string{"team": "payments"}
	orig := ns.DeepCopy()
	mm := migration("m", meshv1alpha1.ModeAmbient, "shop")
	r, writes := newTestReconciler(t, signals.Capabilities{Ztunnel: true}, nil, ns, deployment("shop", "web"), mm)
	ctx := context.Background()
	if err := r.flipNamespace(ctx, mm, "w1", "shop"); err != nil {
		t.Fatal(err)
	}
	var nsWrites []write
	for _, w := range *writes {
		if w.kind == "Namespace" {
			nsWrites = append(nsWrites, w)
		}
	}
	if len(nsWrites) != 3 {
		t.Fatalf("namespace writes = %+v, want record, dataplane-mode, injection removal", nsWrites)
	}
	if nsWrites[0].labels["istio.io/dataplane-mode"] != "" {
		t.Errorf("first write already flips: %v", nsWrites[0].labels)
	}
	if l := nsWrites[1].labels; l["istio.io/dataplane-mode"] != "ambient" || l["istio-injection"] != "enabled" {
		t.Errorf("second write %v, want dataplane-mode=ambient with injection still on", l)
	}
	if l := nsWrites[2].labels; l["istio-injection"] != "" || l["istio.io/rev"] != "" || l["istio.io/dataplane-mode"] != "ambient" {
		t.Errorf("third write %v, want injection labels removed", l)
	}
	// A second flip (a restarted manager) changes nothing.
	n := len(*writes)
	if err := r.flipNamespace(ctx, mm, "w1", "shop"); err != nil || len(*writes) != n {
		t.Errorf("repeated flip: err %v, %d more writes", err, len(*writes)-n)
	}
	got := &corev1.Namespace{}
	_ = r.Client.Get(ctx, client.ObjectKey{Name: "shop"}, got)
	if got.Annotations[meshv1alpha1.AnnotationMode] != "ambient" || got.Annotations[AnnotationMigration] != "m" {
		t.Errorf("flipped annotations %v", got.Annotations)
	}
	if err := r.undoNamespace(ctx, "m", "shop", true); err != nil {
		t.Fatal(err)
	}
	_ = r.Client.Get(ctx, client.ObjectKey{Name: "shop"}, got)
	if !maps.Equal(got.Labels, orig.Labels) || !maps.Equal(got.Annotations, orig.Annotations) {
		t.Errorf("after undo: labels %v annotations %v, want %v %v", got.Labels, got.Annotations, orig.Labels, orig.Annotations)
	}
}

// TestWaypointBeforeFlipAndUndo: for ambient-waypoint the Gateway and the
// Service label come before the dataplane label; the undo deletes only the
// Gateway the migration created and restores the Service's label.
func TestWaypointBeforeFlipAndUndo(t *testing.T) {
	ns := sidecarNamespace("shop")
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Labels: map[string]string{"tier": "front"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}}}
	other := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "db"}}}
	mm := migration("m", meshv1alpha1.ModeAmbientWaypoint, "shop")
	r, writes := newTestReconciler(t, signals.Capabilities{Ztunnel: true}, nil, ns, deployment("shop", "web"), svc, other, mm)
	ctx := context.Background()
	if err := r.flipNamespace(ctx, mm, "w1", "shop"); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, w := range *writes {
		order = append(order, w.kind+"/"+w.name+":"+w.labels["istio.io/dataplane-mode"])
	}
	want := []string{"Namespace/shop:", "Gateway/waypoint:", "Service/web:", "Namespace/shop:ambient", "Namespace/shop:ambient"}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("writes %v, want %v", order, want)
	}
	gw := &gatewayv1.Gateway{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "waypoint"}, gw); err != nil {
		t.Fatal(err)
	}
	if gw.Spec.GatewayClassName != WaypointClass || gw.Labels[LabelWaypointFor] != "all" {
		t.Errorf("gateway %+v", gw)
	}
	got := &corev1.Service{}
	_ = r.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "db"}, got)
	if _, ok := got.Labels["istio.io/use-waypoint"]; ok {
		t.Errorf("service db (selects no ambient-waypoint workload) labeled %v", got.Labels)
	}
	if err := r.undoNamespace(ctx, "m", "shop", true); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "waypoint"}, gw); !apierrors.IsNotFound(err) {
		t.Errorf("gateway after undo: %v, want not found", err)
	}
	_ = r.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "web"}, got)
	if !maps.Equal(got.Labels, svc.Labels) {
		t.Errorf("service labels after undo %v, want %v", got.Labels, svc.Labels)
	}
}

// TestSecondMigrationRejected: a migration claiming a namespace another
// unfinished migration owns fails with NamespaceOwned and claims nothing.
func TestSecondMigrationRejected(t *testing.T) {
	a := migration("a", meshv1alpha1.ModeAmbient, "shop")
	a.Finalizers = []string{Finalizer}
	b := migration("b", meshv1alpha1.ModeCilium, "shop", "cart")
	b.Finalizers = []string{Finalizer}
	r, _ := newTestReconciler(t, signals.Capabilities{Ztunnel: true}, nil, sidecarNamespace("shop"), sidecarNamespace("cart"), a, b)
	ctx := context.Background()
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "a"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "b"}}); err != nil {
		t.Fatal(err)
	}
	got := &meshv1alpha1.MeshMigration{}
	_ = r.Client.Get(ctx, client.ObjectKey{Name: "b"}, got)
	c := meta.FindStatusCondition(got.Status.Conditions, ConditionFailed)
	if c == nil || c.Reason != ReasonNamespaceOwned || !strings.Contains(c.Message, "shop (owned by MeshMigration a)") {
		t.Fatalf("b's Failed condition = %+v", c)
	}
	ns := &corev1.Namespace{}
	_ = r.Client.Get(ctx, client.ObjectKey{Name: "cart"}, ns)
	if ns.Annotations[AnnotationMigration] != "" {
		t.Errorf("rejected migration claimed cart: %v", ns.Annotations)
	}
	// Once a has finished, a new migration may take the namespace.
	_ = r.Client.Get(ctx, client.ObjectKey{Name: "a"}, got)
	meta.SetStatusCondition(&got.Status.Conditions, metav1.Condition{Type: ConditionSucceeded, Status: metav1.ConditionTrue, Reason: ReasonAllWavesPromoted})
	if err := r.Client.Status().Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	c2 := migration("c", meshv1alpha1.ModeCilium, "shop")
	c2.Finalizers = []string{Finalizer}
	if err := r.Client.Create(ctx, c2); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "c"}}); err != nil {
		t.Fatal(err)
	}
	_ = r.Client.Get(ctx, client.ObjectKey{Name: "shop"}, ns)
	if ns.Annotations[AnnotationMigration] != "c" {
		t.Errorf("after a finished, shop claimed by %q, want c", ns.Annotations[AnnotationMigration])
	}
}

type staticFeatures map[string]signals.Features

func (s staticFeatures) FeaturesFor(ns string, _ map[string]string) signals.Features { return s[ns] }

// TestPrecheckBlockers: the deny-all trap, a capability the cluster lacks,
// workloads that would not restart, a policy that forbids the target and a
// degraded PodDisruptionBudget each block a flip, naming the object.
func TestPrecheckBlockers(t *testing.T) {
	paused := deployment("shop", "paused")
	paused.Spec.Paused = true
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"},
		Spec: appsv1.StatefulSetSpec{UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}}}}}
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec:   policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(2))},
		Status: policyv1.PodDisruptionBudgetStatus{CurrentHealthy: 1, DesiredHealthy: 2}}
	features := staticFeatures{"shop": {{Feature: signals.FeatureL7AuthzSelector, Kind: "AuthorizationPolicy", Namespace: "shop", Name: "l7"}}}
	cases := []struct {
		name     string
		caps     signals.Capabilities
		features FeatureSource
		objs     []client.Object
		want     []string
	}{
		{"clean", signals.Capabilities{Ztunnel: true}, nil, []client.Object{deployment("shop", "web")}, nil},
		{"deny-all trap", signals.Capabilities{Ztunnel: true}, features, []client.Object{deployment("shop", "web")},
			[]string{"shop/Deployment/web", "AuthorizationPolicy shop/l7"}},
		{"no ztunnel", signals.Capabilities{}, nil, []client.Object{deployment("shop", "web")}, []string{"no ztunnel"}},
		{"would not restart", signals.Capabilities{Ztunnel: true}, nil, []client.Object{paused, sts},
			[]string{"Deployment/paused: the Deployment is paused", "StatefulSet/db: updateStrategy OnDelete"}},
		{"degraded pdb", signals.Capabilities{Ztunnel: true}, nil, []client.Object{deployment("shop", "web"), pdb},
			[]string{"PodDisruptionBudget/web: 1 healthy pods, 2 desired"}},
		{"policy forbids", signals.Capabilities{Ztunnel: true}, nil, []client.Object{deployment("shop", "web"),
			&meshv1alpha1.DataplanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "strict"}, Spec: meshv1alpha1.DataplanePolicySpec{
				AllowedModes: []meshv1alpha1.AllowedModes{{Modes: []meshv1alpha1.Mode{meshv1alpha1.ModeSidecar}}}}}},
			[]string{"DataplanePolicy strict does not allow ambient"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := sidecarNamespace("shop")
			mm := migration("m", meshv1alpha1.ModeAmbient, "shop")
			r, _ := newTestReconciler(t, tc.caps, tc.features, append(tc.objs, ns, mm)...)
			plan, err := r.planNamespace(context.Background(), mm, ns)
			if err != nil {
				t.Fatal(err)
			}
			joined := strings.Join(plan.blockers, "\n")
			if len(tc.want) == 0 && len(plan.blockers) > 0 {
				t.Errorf("blockers %v, want none", plan.blockers)
			}
			for _, w := range tc.want {
				if !strings.Contains(joined, w) {
					t.Errorf("blockers:\n%s\nwant one naming %q", joined, w)
				}
			}
		})
	}
}

func TestPlanWaves(t *testing.T) {
	names := func(ws []meshv1alpha1.WaveStatus) string {
		var out []string
		for _, w := range ws {
			out = append(out, w.Name+"="+strings.Join(w.Namespaces, ","))
		}
		return strings.Join(out, " ")
	}
	nsl := func(ns ...string) []corev1.Namespace {
		var out []corev1.Namespace
		for _, n := range ns {
			out = append(out, corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"mesh": "yes"}}})
		}
		return out
	}
	sel := &meshv1alpha1.NamespaceTarget{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"mesh": "yes"}}}
	cases := []struct {
		name string
		spec meshv1alpha1.MeshMigrationSpec
		all  []corev1.Namespace
		want string // or the error's field
		err  bool
	}{
		{"count", meshv1alpha1.MeshMigrationSpec{Namespaces: &meshv1alpha1.NamespaceTarget{Names: []string{"e", "d", "c", "b", "a"}}, BatchSize: ptr.To(intstr.FromInt32(2))}, nil,
			"wave-1=a,b wave-2=c,d wave-3=e", false},
		{"percentage rounds up", meshv1alpha1.MeshMigrationSpec{Namespaces: &meshv1alpha1.NamespaceTarget{Names: []string{"a", "b", "c"}}, BatchSize: ptr.To(intstr.FromString("50%"))}, nil,
			"wave-1=a,b wave-2=c", false},
		{"one wave without batch size", meshv1alpha1.MeshMigrationSpec{Namespaces: &meshv1alpha1.NamespaceTarget{Names: []string{"b", "a"}}}, nil, "wave-1=a,b", false},
		{"selector skips system namespaces", meshv1alpha1.MeshMigrationSpec{Namespaces: sel, BatchSize: ptr.To(intstr.FromString("100%"))}, nsl("kube-system", "z", "y"), "wave-1=y,z", false},
		{"explicit waves", meshv1alpha1.MeshMigrationSpec{Waves: []meshv1alpha1.WaveSpec{{Name: "x", Namespaces: []string{"b"}}, {Name: "y", Namespaces: []string{"a"}}}}, nil, "x=b y=a", false},
		{"duplicate across waves", meshv1alpha1.MeshMigrationSpec{Waves: []meshv1alpha1.WaveSpec{{Name: "x", Namespaces: []string{"a"}}, {Name: "y", Namespaces: []string{"a"}}}}, nil,
			"spec.waves[1].namespaces[0]", true},
		{"system namespace named", meshv1alpha1.MeshMigrationSpec{Namespaces: &meshv1alpha1.NamespaceTarget{Names: []string{"istio-system"}}}, nil, "spec.namespaces.names[0]", true},
		{"selector matches nothing", meshv1alpha1.MeshMigrationSpec{Namespaces: sel}, nil, "selects no namespace", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := PlanWaves(&tc.spec, tc.all)
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want one naming %s", err, tc.want)
				}
				return
			}
			if err != nil || names(ws) != tc.want {
				t.Fatalf("waves = %s (err %v), want %s", names(ws), err, tc.want)
			}
		})
	}
}

// TestDeleteMidFlipCompletesAndReleases: deleting a migration whose wave is
// between flip steps completes the flip (no half-flipped namespace), then
// releases the namespace and lets the migration go.
func TestDeleteMidFlipCompletesAndReleases(t *testing.T) {
	ns := sidecarNamespace("shop")
	mm := migration("m", meshv1alpha1.ModeAmbient, "shop")
	mm.Finalizers = []string{Finalizer}
	mm.Status.Waves = []meshv1alpha1.WaveStatus{{Name: "w1", Namespaces: []string{"shop"}, Phase: meshv1alpha1.WaveFlipping}}
	r, _ := newTestReconciler(t, signals.Capabilities{Ztunnel: true}, nil, ns, deployment("shop", "web"), mm)
	ctx := context.Background()
	// The first flip step (the record) happened; the labels did not.
	rec := newRecord(ns, "m", "w1", meshv1alpha1.ModeAmbient, &nsPlan{})
	got := &corev1.Namespace{}
	_ = r.Client.Get(ctx, client.ObjectKey{Name: "shop"}, got)
	if err := r.applySteps(ctx, got, []nsStep{func(n *corev1.Namespace) {
		n.Annotations[AnnotationPreviousLabels] = mustJSON(t, rec)
		n.Annotations[AnnotationMigration] = "m"
	}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Delete(ctx, mm); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "m"}}); err != nil {
		t.Fatal(err)
	}
	_ = r.Client.Get(ctx, client.ObjectKey{Name: "shop"}, got)
	if got.Labels["istio.io/dataplane-mode"] != "ambient" || got.Labels["istio-injection"] != "" || got.Annotations[meshv1alpha1.AnnotationMode] != "ambient" {
		t.Errorf("namespace after deletion mid-flip: %v %v, want the flip completed", got.Labels, got.Annotations)
	}
	if got.Annotations[AnnotationMigration] != "" || got.Annotations[AnnotationPreviousLabels] != "" {
		t.Errorf("namespace still claimed: %v", got.Annotations)
	}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: "m"}, mm); !apierrors.IsNotFound(err) {
		t.Errorf("migration after finalize: %v, want gone", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
