package signals_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/dynamic"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/test/harness"
)

var sidecarGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "sidecars"}

// sidecar is a Sidecar resource locking app=<app>'s egress down
// (REGISTRY_ONLY), with the given inbound TCP idle timeout. Istio's CRD types
// spec.inboundConnectionPool.tcp.idleTimeout as a string with no validation
// (unlike most durations, which carry a CEL rule), so the API server stores
// "one hour"; the Go type (google.protobuf.Duration) cannot decode it.
func sidecar(name, app, idleTimeout string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
		"metadata": map[string]any{"name": name, "namespace": "shop"},
		"spec": map[string]any{
			"workloadSelector":      map[string]any{"labels": map[string]any{"app": app}},
			"outboundTrafficPolicy": map[string]any{"mode": "REGISTRY_ONLY"},
			"inboundConnectionPool": map[string]any{"tcp": map[string]any{"idleTimeout": idleTimeout}},
		},
	}}
}

// TestUndecodableObjectDoesNotStopSync stores, through the real API server
// with Istio's real CRDs, a Sidecar the CRD accepts and Istio's Go types
// reject (an idle timeout that is no duration). A typed list of Sidecars
// fails on it — a typed informer would never sync, and the webhook waits for
// every informer before it decides. The index's informers sync anyway: the
// bad object is reported and left out, every other Sidecar is indexed, and an
// object that becomes undecodable leaves the index.
func TestUndecodableObjectDoesNotStopSync(t *testing.T) {
	c := harness.Start(t, harness.Options{CRDPaths: realCRDs(t)})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(networkingv1.AddToScheme(s))
	cl, err := client.New(c.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(c.Config)
	scs := dyn.Resource(sidecarGVR).Namespace("shop")
	if _, err := scs.Create(ctx, sidecar("odd-timeout", "db", "one hour"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("the CRD rejects idleTimeout %q, so this object cannot exist in a cluster: %v", "one hour", err)
	}
	if _, err := scs.Create(ctx, sidecar("locked", "web", "1h"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The typed path fails on the whole list.
	if err := cl.List(ctx, &networkingv1.SidecarList{}, client.InNamespace("shop")); err == nil {
		t.Fatal("typed list of Sidecars: no error, want Istio's Go types to reject the idle timeout")
	} else {
		t.Logf("typed list of Sidecars: %v", err)
	}

	var mu sync.Mutex
	var logged []string
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, args)
	}, funcr.Options{})
	ca, err := crcache.New(c.Config, crcache.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	ix := signals.NewIndex("")
	if err := signals.WatchEvery(ctx, ca, ix, log, time.Second); err != nil {
		t.Fatal(err)
	}
	go func() { _ = ca.Start(ctx) }()
	syncCtx, syncCancel := context.WithTimeout(ctx, 20*time.Second)
	defer syncCancel()
	if !ca.WaitForCacheSync(syncCtx) {
		t.Fatal("the index's informers did not sync within 20s with one undecodable EnvoyFilter stored")
	}
	hasFeature := func(app string) bool {
		for _, f := range ix.FeaturesFor("shop", map[string]string{"app": app}) {
			if f.Kind == signals.KindSidecar {
				return true
			}
		}
		return false
	}
	eventually(t, "the decodable Sidecar indexed", func() (bool, string) {
		return hasFeature("web"), "no Sidecar feature for app=web"
	})
	if hasFeature("db") {
		t.Error("the undecodable Sidecar is in the index")
	}
	eventually(t, "the undecodable Sidecar reported", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range logged {
			if strings.Contains(l, "mesh object not indexed") && strings.Contains(l, "shop/odd-timeout") {
				return true, ""
			}
		}
		return false, strings.Join(logged, "\n")
	})

	// Fixed, it is indexed; the other one broken, it leaves the index.
	if _, err := scs.Update(ctx, withResourceVersion(ctx, t, scs, sidecar("odd-timeout", "db", "3600s")), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the fixed Sidecar indexed", func() (bool, string) { return hasFeature("db"), "app=db has no Sidecar" })
	if _, err := scs.Update(ctx, withResourceVersion(ctx, t, scs, sidecar("locked", "web", "forever")), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the broken Sidecar dropped", func() (bool, string) { return !hasFeature("web"), "app=web still has the Sidecar" })
	if err := scs.Delete(ctx, "locked", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if !hasFeature("db") {
		t.Error("deleting the undecodable Sidecar removed the other one")
	}
}

func withResourceVersion(ctx context.Context, t *testing.T, r dynamic.ResourceInterface, u *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	cur, err := r.Get(ctx, u.GetName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u.SetResourceVersion(cur.GetResourceVersion())
	return u
}
