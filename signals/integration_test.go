package signals_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	istioinformers "istio.io/client-go/pkg/informers/externalversions"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gatewayinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"

	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/test/harness"
)

// moduleDir finds a module's folder in the module cache with `go list -m`.
func moduleDir(t *testing.T, module string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Fatalf("find module %s (run go mod download): %v", module, err)
	}
	return dir
}

// realCRDs are Istio's and Gateway API's own CRDs, shipped in their Go modules,
// and the project's minimal Cilium CRDs.
func realCRDs(t *testing.T) []string {
	gw := filepath.Join(moduleDir(t, "sigs.k8s.io/gateway-api"), "config", "crd", "standard")
	return []string{
		filepath.Join(moduleDir(t, "istio.io/api"), "kubernetes", "customresourcedefinitions.gen.yaml"),
		filepath.Join(gw, "gateway.networking.k8s.io_gatewayclasses.yaml"),
		filepath.Join(gw, "gateway.networking.k8s.io_gateways.yaml"),
		filepath.Join(gw, "gateway.networking.k8s.io_httproutes.yaml"),
		filepath.Join(gw, "gateway.networking.k8s.io_grpcroutes.yaml"),
		filepath.Join(gw, "gateway.networking.k8s.io_referencegrants.yaml"),
		filepath.Join("testdata", "crds", "cilium.yaml"),
	}
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within 15s: %s", what, last)
}

// TestIndexFollowsRealAPIServer installs the real Istio and Gateway API CRDs
// into a real API server, feeds the index from informers (typed Istio, Gateway
// API and Kubernetes informers; a dynamic one for Cilium), and shows it answers
// which workloads each object selects through creates, updates and deletes.
func TestIndexFollowsRealAPIServer(t *testing.T) {
	c := harness.Start(t, harness.Options{CRDPaths: realCRDs(t)})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	kube := kubernetes.NewForConfigOrDie(c.Config)
	istio := istioclient.NewForConfigOrDie(c.Config)
	gw := gatewayclient.NewForConfigOrDie(c.Config)
	dyn := dynamic.NewForConfigOrDie(c.Config)

	for _, ns := range []string{"shop", "istio-system"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, app := range []string{"web", "db"} {
		if _, err := kube.CoreV1().Services("shop").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: app},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app}, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{"app": app}
		if _, err := kube.AppsV1().Deployments("shop").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: app},
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: "example.invalid/" + app}}}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	ix := signals.NewIndex("")
	var mu sync.Mutex
	var handlerErrs []error
	h := ix.EventHandler(func(_ any, err error) {
		mu.Lock()
		defer mu.Unlock()
		handlerErrs = append(handlerErrs, err)
	})
	kf := informers.NewSharedInformerFactory(kube, 0)
	isf := istioinformers.NewSharedInformerFactory(istio, 0)
	gwf := gatewayinformers.NewSharedInformerFactory(gw, 0)
	df := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	cnpGVR := schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumnetworkpolicies"}
	cecGVR := schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumenvoyconfigs"}
	for _, inf := range []cache.SharedIndexInformer{
		kf.Core().V1().Services().Informer(), kf.Apps().V1().Deployments().Informer(),
		isf.Networking().V1().VirtualServices().Informer(), isf.Networking().V1alpha3().EnvoyFilters().Informer(),
		isf.Networking().V1().WorkloadEntries().Informer(), isf.Security().V1().AuthorizationPolicies().Informer(),
		isf.Security().V1().PeerAuthentications().Informer(),
		gwf.Gateway().V1().HTTPRoutes().Informer(),
		df.ForResource(cnpGVR).Informer(), df.ForResource(cecGVR).Informer(),
	} {
		if _, err := inf.AddEventHandler(h); err != nil {
			t.Fatal(err)
		}
	}
	for _, start := range []func(<-chan struct{}){kf.Start, isf.Start, gwf.Start, df.Start} {
		start(ctx.Done())
	}
	t.Cleanup(func() { cancel(); kf.Shutdown(); isf.Shutdown(); gwf.Shutdown(); df.Shutdown() })

	web := []signals.WorkloadKey{{Namespace: "shop", Name: "web"}}
	db := []signals.WorkloadKey{{Namespace: "shop", Name: "db"}}
	both := []signals.WorkloadKey{{Namespace: "shop", Name: "db"}, {Namespace: "shop", Name: "web"}}
	expectSelected := func(key signals.ObjectKey, want []signals.WorkloadKey) {
		t.Helper()
		eventually(t, key.String()+" selects its workloads", func() (bool, string) {
			got := ix.SelectedBy(key)
			d := cmp.Diff(want, got)
			return d == "", "(-want +got)\n" + d
		})
	}

	// Creates.
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "only-get"}}
	ap.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "web"}}
	ap.Spec.Rules = []*securityapi.Rule{{To: []*securityapi.Rule_To{{Operation: &securityapi.Operation{Methods: []string{"GET"}}}}}}
	ap, err := istio.SecurityV1().AuthorizationPolicies("shop").Create(ctx, ap, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"}}
	vs.Spec.Hosts = []string{"db"}
	vs.Spec.Http = []*networkingapi.HTTPRoute{{Route: []*networkingapi.HTTPRouteDestination{{Destination: &networkingapi.Destination{Host: "db"}}}}}
	if _, err := istio.NetworkingV1().VirtualServices("shop").Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ef := &networkingv1alpha3.EnvoyFilter{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "lua"}}
	ef.Spec.WorkloadSelector = &networkingapi.WorkloadSelector{Labels: map[string]string{"app": "db"}}
	if _, err := istio.NetworkingV1alpha3().EnvoyFilters("shop").Create(ctx, ef, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "default"}}
	pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}
	if _, err := istio.SecurityV1().PeerAuthentications("istio-system").Create(ctx, pa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	we := &networkingv1.WorkloadEntry{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "vm-1"}}
	we.Spec.Address, we.Spec.Labels = "10.9.8.7", map[string]string{"app": "db"}
	if _, err := istio.NetworkingV1().WorkloadEntries("shop").Create(ctx, we, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	route := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: gatewayv1.HTTPRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
			Group: ptr.To(gatewayv1.Group("")), Kind: ptr.To(gatewayv1.Kind("Service")), Name: "web", Port: ptr.To(gatewayv1.PortNumber(80))}}},
			Rules: []gatewayv1.HTTPRouteRule{{Timeouts: &gatewayv1.HTTPRouteTimeouts{Request: ptr.To(gatewayv1.Duration("2s"))}}}}}
	route, err = gw.GatewayV1().HTTPRoutes("shop").Create(ctx, route, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cnp := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
		"metadata": map[string]any{"namespace": "shop", "name": "l7"},
		"spec": map[string]any{"endpointSelector": map[string]any{"matchLabels": map[string]any{"app": "db"}},
			"ingress": []any{map[string]any{"toPorts": []any{map[string]any{"rules": map[string]any{"http": []any{map[string]any{"method": "GET"}}}}}}}}}}
	if _, err := dyn.Resource(cnpGVR).Namespace("shop").Create(ctx, cnp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cec := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "cilium.io/v2", "kind": "CiliumEnvoyConfig",
		"metadata": map[string]any{"namespace": "shop", "name": "lb"},
		"spec":     map[string]any{"services": []any{map[string]any{"name": "web"}}}}}
	if _, err := dyn.Resource(cecGVR).Namespace("shop").Create(ctx, cec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	expectSelected(signals.ObjectKey{Kind: "AuthorizationPolicy", Namespace: "shop", Name: "only-get"}, web)
	expectSelected(signals.ObjectKey{Kind: "VirtualService", Namespace: "shop", Name: "db"}, db)
	expectSelected(signals.ObjectKey{Kind: "EnvoyFilter", Namespace: "shop", Name: "lua"}, db)
	expectSelected(signals.ObjectKey{Kind: "PeerAuthentication", Namespace: "istio-system", Name: "default"}, both)
	expectSelected(signals.ObjectKey{Kind: "WorkloadEntry", Namespace: "shop", Name: "vm-1"}, db)
	expectSelected(signals.ObjectKey{Kind: "HTTPRoute", Namespace: "shop", Name: "web"}, web)
	expectSelected(signals.ObjectKey{Kind: "CiliumNetworkPolicy", Namespace: "shop", Name: "l7"}, db)
	expectSelected(signals.ObjectKey{Kind: "CiliumEnvoyConfig", Namespace: "shop", Name: "lb"}, web)
	feats := ix.FeaturesFor("shop", map[string]string{"app": "web"})
	for _, f := range []signals.Feature{signals.FeatureL7AuthzSelector, signals.FeatureMTLS, signals.FeatureHTTPRouting, signals.FeatureTimeouts, signals.FeatureCiliumEnvoyConfig} {
		if !feats.Has(f) {
			t.Errorf("web lacks %s: %v", f, feats)
		}
	}

	// The real schemas validate: an action Istio does not know is refused.
	if err := c.Client.Create(ctx, asUnstructured(t, "security.istio.io/v1", "AuthorizationPolicy", "shop", "bad",
		map[string]any{"action": "SOMETIMES"})); err == nil || !apierrors.IsInvalid(err) {
		t.Errorf("an invalid AuthorizationPolicy action was not refused by the real schema: %v", err)
	}

	// Updates: the policy moves to db (by targetRefs now: no longer the trap);
	// the route moves to the db Service; the web Service's selector changes.
	ap.Spec.Selector = nil
	ap.Spec.TargetRefs = []*typeapi.PolicyTargetReference{{Kind: "Service", Name: "db"}}
	if _, err := istio.SecurityV1().AuthorizationPolicies("shop").Update(ctx, ap, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	route.Spec.ParentRefs[0].Name = "db"
	if _, err := gw.GatewayV1().HTTPRoutes("shop").Update(ctx, route, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectSelected(signals.ObjectKey{Kind: "AuthorizationPolicy", Namespace: "shop", Name: "only-get"}, db)
	expectSelected(signals.ObjectKey{Kind: "HTTPRoute", Namespace: "shop", Name: "web"}, db)
	eventually(t, "the policy became targetRefs L7 authorization", func() (bool, string) {
		f := ix.FeaturesFor("shop", map[string]string{"app": "db"})
		return f.Has(signals.FeatureL7Authz) && !f.Has(signals.FeatureL7AuthzSelector), f.String()
	})
	svc, err := kube.CoreV1().Services("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Selector = map[string]string{"app": "db"}
	if _, err := kube.CoreV1().Services("shop").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectSelected(signals.ObjectKey{Kind: "CiliumEnvoyConfig", Namespace: "shop", Name: "lb"}, db)

	// Deletes.
	if err := istio.NetworkingV1().VirtualServices("shop").Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := istio.NetworkingV1alpha3().EnvoyFilters("shop").Delete(ctx, "lua", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := dyn.Resource(cnpGVR).Namespace("shop").Delete(ctx, "l7", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kube.AppsV1().Deployments("shop").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expectSelected(signals.ObjectKey{Kind: "VirtualService", Namespace: "shop", Name: "db"}, nil)
	expectSelected(signals.ObjectKey{Kind: "EnvoyFilter", Namespace: "shop", Name: "lua"}, nil)
	expectSelected(signals.ObjectKey{Kind: "CiliumNetworkPolicy", Namespace: "shop", Name: "l7"}, nil)
	expectSelected(signals.ObjectKey{Kind: "PeerAuthentication", Namespace: "istio-system", Name: "default"}, db)
	eventually(t, "the index holds the five remaining objects", func() (bool, string) {
		return ix.Len() == 5, fmt.Sprint(ix.Objects())
	})
	mu.Lock()
	defer mu.Unlock()
	if len(handlerErrs) > 0 {
		t.Errorf("the index could not read some informer objects: %v", handlerErrs)
	}
}

func asUnstructured(t *testing.T, apiVersion, kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	t.Helper()
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"namespace": ns, "name": name}, "spec": spec}}
}
