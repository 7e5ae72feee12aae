package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/meshshift/meshshift/test/harness"
)

// storeFleet starts a real API server with Istio's and the Gateway API's
// CRDs and stores the objects in it (namespaces first; server-set metadata
// left out; pods' status written as a status update). Objects of kinds the
// server does not serve are left out.
func storeFleet(tb testing.TB, objs []Object) *harness.Cluster {
	tb.Helper()
	c := harness.Start(tb, harness.Options{CRDPaths: []string{
		filepath.Join(moduleDir(tb, "istio.io/api"), "kubernetes", "customresourcedefinitions.gen.yaml"),
		filepath.Join(moduleDir(tb, "sigs.k8s.io/gateway-api"), "config", "crd", "standard"),
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	create := func(o Object) error {
		u := o.U.DeepCopy()
		status, hasStatus := u.Object["status"]
		for _, k := range []string{"resourceVersion", "uid", "generation", "creationTimestamp", "managedFields"} {
			unstructured.RemoveNestedField(u.Object, "metadata", k)
		}
		if u.GetKind() == "Job" { // the API server sets the selector and its labels
			unstructured.RemoveNestedField(u.Object, "spec", "selector")
			for _, l := range []string{"batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name", "controller-uid", "job-name"} {
				unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "labels", l)
			}
		}
		if ip, _, _ := unstructured.NestedString(u.Object, "spec", "clusterIP"); u.GetKind() == "Service" && ip != "None" {
			unstructured.RemoveNestedField(u.Object, "spec", "clusterIP") // allocated by the API server
			unstructured.RemoveNestedField(u.Object, "spec", "clusterIPs")
		}
		if u.GetNamespace() == "" && !clusterScoped[u.GetKind()] {
			u.SetNamespace("default")
		}
		err := c.Client.Create(ctx, u)
		switch {
		case apierrors.IsAlreadyExists(err) || meta.IsNoMatchError(err):
			return nil
		case err != nil:
			return fmt.Errorf("create %s: %w", o.Ref(), err)
		}
		if hasStatus && u.GetKind() == "Pod" {
			u.Object["status"] = status
			if err := c.Client.Status().Update(ctx, u); err != nil {
				return fmt.Errorf("update status of %s: %w", o.Ref(), err)
			}
		}
		return nil
	}
	var rest []Object
	namespaces := map[string]bool{}
	for _, o := range objs {
		if o.U.GetKind() != "Namespace" {
			rest = append(rest, o)
			namespaces[o.U.GetNamespace()] = true
			continue
		}
		if err := create(o); err != nil {
			tb.Fatal(err)
		}
	}
	for ns := range namespaces { // named only by the objects in it
		if ns == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind("Namespace")
		u.SetName(ns)
		if err := create(Object{U: u}); err != nil {
			tb.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	work := make(chan Object)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				if err := create(o); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for _, o := range rest {
		work <- o
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		tb.Fatal(err)
	default:
	}
	return c
}

// BenchmarkLoadClusterFleet stores BenchmarkPlanFleet's cluster (at
// -fleet-scale) in a real API server with Istio's and the Gateway API's CRDs
// and times LoadCluster reading it back (discovery, the list calls over
// HTTPS, decoding): the part of plan --cluster that BenchmarkPlanFleet's
// in-memory decode stands in for. It reports the process's CPU time per read
// and its ratio to decoding the same objects' list JSON in memory as
// client-go's dynamic client does (dynamic, measured in the same run).
func BenchmarkLoadClusterFleet(b *testing.B) {
	if testing.Short() {
		b.Skip("needs the real API server; run without -short")
	}
	f := newFleet(*fleetScale)
	ls := f.lists(b)
	objs := decodeListed(b, ls)
	c := storeFleet(b, objs)
	cfg := rest.CopyConfig(c.Config)
	cfg.QPS, cfg.Burst = 50, 100 // as meshshift's commands set them
	ctx := context.Background()
	b.Logf("stored %d objects", len(objs))

	var base time.Duration
	b.Run("dynamic", func(b *testing.B) {
		var cpu time.Duration
		for b.Loop() {
			start := processCPU()
			decodeDynamic(b, ls)
			cpu += processCPU() - start
		}
		base = cpu / time.Duration(b.N)
		b.ReportMetric(float64(base.Milliseconds()), "cpu-ms/op")
	})
	// load is LoadCluster; load-dynamic reads the same kinds with the
	// dynamic client, as LoadCluster did before.
	for _, v := range []struct {
		name string
		load func(context.Context, *rest.Config) (*ClusterObjects, error)
	}{{"load", LoadCluster}, {"load-dynamic", loadClusterDynamic}} {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			var cpu time.Duration
			n := 0
			for b.Loop() {
				start := processCPU()
				co, err := v.load(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				cpu += processCPU() - start
				n = len(co.Objects)
			}
			per := cpu / time.Duration(b.N)
			b.ReportMetric(float64(per.Milliseconds()), "cpu-ms/op")
			b.ReportMetric(float64(per)/float64(base), "x_dynamic")
			if n < len(objs) {
				b.Errorf("read %d objects, want at least the %d stored", n, len(objs))
			}
		})
	}
}

// loadClusterDynamic lists what LoadCluster lists with client-go's dynamic
// client, as LoadCluster did before it read Kubernetes' kinds as protobuf:
// the reference it must read alike.
func loadClusterDynamic(ctx context.Context, cfg *rest.Config) (*ClusterObjects, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	out := &ClusterObjects{}
	gks := make([]schema.GroupKind, 0, len(knownKinds))
	for gk := range knownKinds {
		gks = append(gks, gk)
	}
	sort.Slice(gks, func(i, j int) bool { return gks[i].String() < gks[j].String() })
	for _, gk := range gks {
		if gk.Kind == "CustomResourceDefinition" || gk.Kind == "MeshMigration" {
			continue
		}
		m, err := mapper.RESTMapping(gk, knownKinds[gk].versions...)
		if meta.IsNoMatchError(err) {
			out.Missing = append(out.Missing, gk.String())
			continue
		}
		if err != nil {
			return nil, err
		}
		if gk.Group == groupGateway {
			out.GatewayAPI = true
		}
		list, err := dyn.Resource(m.Resource).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for i := range list.Items {
			u := &list.Items[i]
			u.SetGroupVersionKind(m.GroupVersionKind)
			u.SetManagedFields(nil)
			out.Objects = append(out.Objects, Object{U: u})
		}
	}
	return out, nil
}

// TestLoadClusterReadsAsDynamicClient stores a small fleet and every sample
// dump in a real API server and checks that LoadCluster reads the same
// objects as the dynamic client (loadClusterDynamic): the same unstructured
// objects in the same order, the same kinds missing, and for the objects
// read as protobuf, the Go objects Build would have converted them to.
func TestLoadClusterReadsAsDynamicClient(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the real API server; run without -short")
	}
	objs := decodeListed(t, newFleet(0.005).lists(t))
	dumps, err := LoadFiles([]string{filepath.Join("testdata", "dumps")})
	if err != nil {
		t.Fatal(err)
	}
	c := storeFleet(t, append(objs, dumps...))
	ctx := context.Background()
	want, err := loadClusterDynamic(ctx, c.Config)
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadCluster(ctx, c.Config)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.Missing, got.Missing); diff != "" || want.GatewayAPI != got.GatewayAPI {
		t.Errorf("missing kinds (-dynamic +LoadCluster):\n%s; Gateway API %v, want %v", diff, got.GatewayAPI, want.GatewayAPI)
	}
	if len(got.Objects) != len(want.Objects) {
		t.Fatalf("read %d objects, the dynamic client %d", len(got.Objects), len(want.Objects))
	}
	kinds := map[string]int{}
	for i := range got.Objects {
		w, g := &want.Objects[i], &got.Objects[i]
		if diff := cmp.Diff(w.U.Object, g.U.Object); diff != "" {
			t.Fatalf("%s (-dynamic +LoadCluster):\n%s", w.Ref(), diff)
		}
		if g.typed == nil {
			continue
		}
		kinds[w.U.GetKind()]++
		conv, err := toTyped(w, knownKinds[w.U.GroupVersionKind().GroupKind()])
		if err != nil {
			t.Fatalf("%s: %v", w.Ref(), err)
		}
		if diff := cmp.Diff(conv, any(g.typed)); diff != "" {
			t.Fatalf("%s typed (-converted +LoadCluster):\n%s", w.Ref(), diff)
		}
	}
	for _, k := range []string{"Namespace", "Node", "Pod", "Service", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicationController"} {
		if kinds[k] == 0 {
			t.Errorf("no %s read as protobuf (read so: %v)", k, kinds)
		}
	}
}
