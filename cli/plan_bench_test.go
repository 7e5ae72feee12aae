package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

// fleetScale sizes BenchmarkPlanFleet's cluster: 1 is `make bench-scale`'s
// (1,000 namespaces, 10,000 pods, 5,000 mesh objects, 20 policies).
var fleetScale = flag.Float64("fleet-scale", 0.1, "size of BenchmarkPlanFleet's cluster; 1 is make bench-scale's")

// listed is one list response of the API server: the kind listed and the
// body as JSON and, for the kinds LoadCluster reads as protobuf, as
// protobuf.
type listed struct {
	gvk         schema.GroupVersionKind
	json, proto []byte
}

// lists are the fleet's list responses, in the order LoadCluster lists the
// kinds (by group and kind). Built-in kinds' JSON items carry no apiVersion
// and kind, as the API server writes typed lists.
func (f fleet) lists(tb testing.TB) []listed {
	tb.Helper()
	o := f.objects()
	var out []listed
	pb := protobuf.NewSerializer(clientgoscheme.Scheme, clientgoscheme.Scheme)
	add := func(gvk schema.GroupVersionKind, v runtime.Object) {
		l := listed{gvk: gvk}
		var err error
		if l.json, err = json.Marshal(v); err != nil {
			tb.Fatal(err)
		}
		if typedListOf(gvk) != nil {
			var buf bytes.Buffer
			if err := pb.Encode(v, &buf); err != nil {
				tb.Fatal(err)
			}
			l.proto = buf.Bytes()
		}
		out = append(out, l)
	}
	lm := metav1.ListMeta{ResourceVersion: "123456"}
	tm := func(gv schema.GroupVersion, kind string) metav1.TypeMeta {
		return metav1.TypeMeta{APIVersion: gv.String(), Kind: kind + "List"}
	}
	core, apps, batch := corev1.SchemeGroupVersion, appsv1.SchemeGroupVersion, batchv1.SchemeGroupVersion
	add(core.WithKind("Namespace"), &corev1.NamespaceList{TypeMeta: tm(core, "Namespace"), ListMeta: lm, Items: o.namespaces})
	add(core.WithKind("Node"), &corev1.NodeList{TypeMeta: tm(core, "Node"), ListMeta: lm, Items: o.nodes})
	add(core.WithKind("Pod"), &corev1.PodList{TypeMeta: tm(core, "Pod"), ListMeta: lm, Items: o.pods})
	add(core.WithKind("Service"), &corev1.ServiceList{TypeMeta: tm(core, "Service"), ListMeta: lm, Items: o.services})
	add(core.WithKind("ReplicationController"), &corev1.ReplicationControllerList{TypeMeta: tm(core, "ReplicationController"), ListMeta: lm, Items: []corev1.ReplicationController{}})
	add(apps.WithKind("Deployment"), &appsv1.DeploymentList{TypeMeta: tm(apps, "Deployment"), ListMeta: lm, Items: o.deployments})
	add(apps.WithKind("StatefulSet"), &appsv1.StatefulSetList{TypeMeta: tm(apps, "StatefulSet"), ListMeta: lm, Items: o.statefulSets})
	add(apps.WithKind("DaemonSet"), &appsv1.DaemonSetList{TypeMeta: tm(apps, "DaemonSet"), ListMeta: lm, Items: []appsv1.DaemonSet{}})
	add(batch.WithKind("Job"), &batchv1.JobList{TypeMeta: tm(batch, "Job"), ListMeta: lm, Items: o.jobs})
	add(batch.WithKind("CronJob"), &batchv1.CronJobList{TypeMeta: tm(batch, "CronJob"), ListMeta: lm, Items: []batchv1.CronJob{}})
	for i := range o.policies {
		o.policies[i].APIVersion, o.policies[i].Kind = meshv1alpha1.GroupVersion.String(), "DataplanePolicy"
	}
	add(meshv1alpha1.GroupVersion.WithKind("DataplanePolicy"), &meshv1alpha1.DataplanePolicyList{
		TypeMeta: tm(meshv1alpha1.GroupVersion, "DataplanePolicy"), ListMeta: lm, Items: o.policies})
	for gvk, items := range o.mesh {
		add(gvk, &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": gvk.GroupVersion().String(), "kind": gvk.Kind + "List",
			"metadata": map[string]any{"resourceVersion": "123456"}}, Items: items})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].gvk.GroupKind().String() < out[j].gvk.GroupKind().String() })
	return out
}

// decodeListed reads the list responses as LoadCluster does (appendListed):
// protobuf where LoadCluster asks for it, JSON otherwise.
func decodeListed(tb testing.TB, ls []listed) []Object {
	var objs []Object
	for _, l := range ls {
		data, ct := l.json, mediaJSON
		if l.proto != nil {
			data, ct = l.proto, mediaProtobuf
		}
		var err error
		if objs, err = appendListed(objs, data, ct, l.gvk); err != nil {
			tb.Fatal(err)
		}
	}
	return objs
}

// decodeDynamic reads the JSON list responses as client-go's dynamic client
// does (UnstructuredList.UnmarshalJSON), as gvk and without managed fields:
// what LoadCluster did before it read Kubernetes' kinds as protobuf, and the
// benchmarks' baseline.
func decodeDynamic(tb testing.TB, ls []listed) []Object {
	var objs []Object
	for _, l := range ls {
		list := &unstructured.UnstructuredList{}
		if err := list.UnmarshalJSON(l.json); err != nil {
			tb.Fatalf("decode %s list: %v", l.gvk.Kind, err)
		}
		for i := range list.Items {
			u := &list.Items[i]
			u.SetGroupVersionKind(l.gvk)
			u.SetManagedFields(nil)
			objs = append(objs, Object{U: u})
		}
	}
	return objs
}

// planFleet runs what `plan --cluster --target=ambient -o json` runs after
// listing: the inventory, the plan and its JSON.
func planFleet(tb testing.TB, objs []Object, w io.Writer) *Plan {
	inv, err := Build(objs)
	if err != nil {
		tb.Fatal(err)
	}
	inv.GatewayAPICRDs = true
	o := &Options{Target: meshv1alpha1.ModeAmbient, Waves: 3, Now: fleetTime.Time}
	p := BuildPlan(inv, o)
	if err := PrintPlan(w, FormatJSON, p); err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestPlanFleet checks that the benchmark's fleet is read whole and planned
// as scalebench's: a row per workload, nothing skipped; without ztunnel (the
// bench runs none) every workload keeps its sidecar and every namespace is
// blocked; with ztunnel assumed the wave namespaces (safe mesh kinds only)
// move to ambient in the proposed waves.
func TestPlanFleet(t *testing.T) {
	f := newFleet(0.01)
	objs := decodeListed(t, f.lists(t))
	inv, err := Build(objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Skipped) > 0 || len(inv.Notes) > 0 {
		t.Fatalf("skipped %v, notes %v; want every object read", inv.Skipped, inv.Notes)
	}
	if got, want := len(inv.Policies), f.policies; got != want {
		t.Errorf("policies = %d, want %d", got, want)
	}
	dr := 0 // DestinationRules with ISTIO_MUTUAL give no feature
	for n := range f.meshObjects {
		if f.meshObject(n).GetKind() == "DestinationRule" {
			dr++
		}
	}
	if got, want := inv.Index.Len(), f.meshObjects-dr; got != want {
		t.Errorf("indexed mesh objects = %d, want %d", got, want)
	}
	var buf bytes.Buffer
	p := planFleet(t, objs, &buf)
	if got, want := len(p.Rows), 4*f.namespaces+f.loadPods; got != want {
		t.Fatalf("rows = %d, want %d", got, want)
	}
	var rows []Row
	if err := json.Unmarshal(buf.Bytes(), &rows); err != nil || len(rows) != len(p.Rows) {
		t.Fatalf("JSON output: %d rows, err %v", len(rows), err)
	}
	for _, r := range p.Rows {
		if r.CurrentMode != string(meshv1alpha1.ModeSidecar) || r.Mode != meshv1alpha1.ModeSidecar {
			t.Errorf("%s/%s: %s -> %s (%s), want sidecar kept", r.Namespace, r.Workload, r.CurrentMode, r.Mode, r.Rule)
		}
	}
	if len(p.Waves) != 0 || len(p.Blocked) != f.namespaces+1 {
		t.Errorf("waves %d, blocked namespaces %d; want none and %d (no ztunnel)", len(p.Waves), len(p.Blocked), f.namespaces+1)
	}

	p = BuildPlan(inv, &Options{Target: meshv1alpha1.ModeAmbient, Ztunnel: ptr.To(true), Now: fleetTime.Time})
	modes := map[string]meshv1alpha1.Mode{}
	for _, r := range p.Rows {
		if r.Namespace == fleetNS(0) {
			modes[r.Workload] = r.Mode
		}
	}
	want := map[string]meshv1alpha1.Mode{"web": "ambient", "api": "ambient", "db": "ambient", "batch": "ambient"}
	if diff := cmp.Diff(want, modes); diff != "" {
		t.Errorf("namespace %s with ztunnel (-want +got):\n%s", fleetNS(0), diff)
	}
	if len(p.Waves) == 0 {
		t.Error("no wave proposed with ztunnel")
	}
}

// BenchmarkPlanFleet times `plan --cluster --target=ambient -o json` over
// make bench-scale's cluster after the API server has answered. The baseline
// is dynamic: decoding the JSON list responses as client-go's dynamic client
// does, what every reader of these lists as unstructured objects pays. Then
// decode (the lists as LoadCluster decodes them: Kubernetes' kinds from
// protobuf), build (the inventory: typed objects, index, policies), and
// build-json (the inventory from objects read as JSON, as from files or the
// dynamic client, converted to their types), plan, plan-ztunnel and
// plan-waypoint (the decisions, waves and JSON output toward ambient without
// and with ztunnel, and toward ambient-waypoint, where plan also proposes
// the L7 policy move), and all
// (decode, build, plan and output) and all-dynamic (the same from the
// dynamic client's objects). Each reports its CPU time per operation as a
// ratio to dynamic's, measured in the same run. -fleet-scale=1 is the full
// size.
func BenchmarkPlanFleet(b *testing.B) {
	f := newFleet(*fleetScale)
	ls := f.lists(b)
	js, pb := 0, 0
	for _, l := range ls {
		js += len(l.json)
		if l.proto != nil {
			pb += len(l.proto)
		} else {
			pb += len(l.json)
		}
	}
	b.Logf("fleet: %d namespaces, %d pods and %d bare load pods, %d mesh objects, %d policies, %d nodes; list responses %d MiB as JSON, %d MiB as LoadCluster asks",
		f.namespaces, f.pods(), f.loadPods, f.meshObjects, f.policies, f.nodes(), js>>20, pb>>20)
	// Each sub-benchmark reports the process's CPU time per operation
	// (steadier than wall time on a shared machine) and that CPU time as a
	// ratio to dynamic's.
	var base time.Duration
	measure := func(b *testing.B, run func()) {
		b.ReportAllocs()
		var cpu time.Duration
		for b.Loop() {
			start := processCPU()
			run()
			cpu += processCPU() - start
		}
		per := cpu / time.Duration(b.N)
		b.ReportMetric(float64(per.Milliseconds()), "cpu-ms/op")
		if b.Name() == "BenchmarkPlanFleet/dynamic" {
			base = per
		}
		if base > 0 {
			b.ReportMetric(float64(per)/float64(base), "x_dynamic")
		}
	}
	b.Run("dynamic", func(b *testing.B) {
		measure(b, func() { decodeDynamic(b, ls) })
	})
	b.Run("decode", func(b *testing.B) {
		measure(b, func() { decodeListed(b, ls) })
	})
	objs := decodeListed(b, ls)
	for _, v := range []struct {
		name string
		objs []Object
	}{{"build", objs}, {"build-json", decodeDynamic(b, ls)}} {
		b.Run(v.name, func(b *testing.B) {
			measure(b, func() {
				if _, err := Build(v.objs); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
	for _, v := range []struct {
		name    string
		target  meshv1alpha1.Mode
		ztunnel *bool
	}{{"plan", meshv1alpha1.ModeAmbient, nil}, {"plan-ztunnel", meshv1alpha1.ModeAmbient, ptr.To(true)},
		{"plan-waypoint", meshv1alpha1.ModeAmbientWaypoint, ptr.To(true)}} {
		b.Run(v.name, func(b *testing.B) {
			inv, err := Build(objs)
			if err != nil {
				b.Fatal(err)
			}
			inv.GatewayAPICRDs = true
			o := &Options{Target: v.target, Waves: 3, Now: fleetTime.Time, Ztunnel: v.ztunnel}
			measure(b, func() {
				if err := PrintPlan(io.Discard, FormatJSON, BuildPlan(inv, o)); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
	b.Run("all", func(b *testing.B) {
		measure(b, func() { planFleet(b, decodeListed(b, ls), io.Discard) })
	})
	b.Run("all-dynamic", func(b *testing.B) {
		measure(b, func() { planFleet(b, decodeDynamic(b, ls), io.Discard) })
	})
}

// TestDecodeListedAsDynamic checks that LoadCluster's decoding reads the
// same objects as the dynamic client's, in the same order: the same
// unstructured objects, and for those decoded from protobuf, the same Go
// objects Build would convert them to.
func TestDecodeListedAsDynamic(t *testing.T) {
	// Over convertBatch pods: converted on more than one goroutine.
	ls := newFleet(0.03).lists(t)
	got, want := decodeListed(t, ls), decodeDynamic(t, ls)
	if len(got) != len(want) {
		t.Fatalf("decoded %d objects, the dynamic client %d", len(got), len(want))
	}
	typed := 0
	for i := range got {
		if diff := cmp.Diff(want[i].U.Object, got[i].U.Object); diff != "" {
			t.Fatalf("%s (-dynamic +decoded):\n%s", want[i].Ref(), diff)
		}
		if got[i].typed == nil {
			continue
		}
		typed++
		conv, err := toTyped(&want[i], knownKinds[want[i].U.GroupVersionKind().GroupKind()])
		if err != nil {
			t.Fatalf("%s: %v", want[i].Ref(), err)
		}
		if diff := cmp.Diff(conv, any(got[i].typed)); diff != "" {
			t.Fatalf("%s typed (-converted +decoded):\n%s", want[i].Ref(), diff)
		}
	}
	if typed == 0 {
		t.Fatal("no object decoded from protobuf")
	}
}
