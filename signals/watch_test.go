package signals_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/test/harness"
)

// TestWatchPicksUpMeshInstalledLater starts the index on a cluster without
// Istio, then installs Istio's real CRDs and an EnvoyFilter: the index sees
// it without a restart.
func TestWatchPicksUpMeshInstalledLater(t *testing.T) {
	c := harness.Start(t, harness.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(networkingv1alpha3.AddToScheme(s))
	cl, err := client.New(c.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	ca, err := crcache.New(c.Config, crcache.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	ix := signals.NewIndex("")
	if err := signals.WatchEvery(ctx, ca, ix, logr.Discard(), 100*time.Millisecond); err != nil {
		t.Fatalf("watch on a cluster without Istio: %v", err)
	}
	go func() { _ = ca.Start(ctx) }()
	if !ca.WaitForCacheSync(ctx) {
		t.Fatal("cache never synced")
	}
	if f := ix.FeaturesFor("shop", map[string]string{"app": "web"}); len(f) != 0 {
		t.Fatalf("features before Istio is installed: %v", f)
	}

	crds := filepath.Join(moduleDir(t, "istio.io/api"), "kubernetes", "customresourcedefinitions.gen.yaml")
	if _, err := envtest.InstallCRDs(c.Config, envtest.CRDInstallOptions{Paths: []string{crds}, ErrorIfPathMissing: true}); err != nil {
		t.Fatalf("install Istio's CRDs: %v", err)
	}
	ef := &networkingv1alpha3.EnvoyFilter{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "lua"},
		Spec: networkingapi.EnvoyFilter{WorkloadSelector: &networkingapi.WorkloadSelector{Labels: map[string]string{"app": "web"}},
			ConfigPatches: []*networkingapi.EnvoyFilter_EnvoyConfigObjectPatch{{ApplyTo: networkingapi.EnvoyFilter_HTTP_FILTER,
				Patch: &networkingapi.EnvoyFilter_Patch{Operation: networkingapi.EnvoyFilter_Patch_INSERT_BEFORE}}}},
	}
	// The API server may take a moment to serve the new types.
	eventually(t, "create the EnvoyFilter", func() (bool, string) {
		err := cl.Create(ctx, ef)
		return err == nil, errString(err)
	})
	eventually(t, "the index sees the EnvoyFilter", func() (bool, string) {
		f := ix.FeaturesFor("shop", map[string]string{"app": "web"})
		for _, r := range f {
			if r.Kind == "EnvoyFilter" && r.Name == "lua" {
				return true, ""
			}
		}
		return false, "features " + fmtFeatures(f)
	})
	if f := ix.FeaturesFor("shop", map[string]string{"app": "db"}); len(f) != 0 {
		t.Errorf("a pod the EnvoyFilter does not select has features %v", f)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func fmtFeatures(f signals.Features) string {
	out := "["
	for i, r := range f {
		if i > 0 {
			out += " "
		}
		out += r.Kind + "/" + r.Name
	}
	return out + "]"
}
