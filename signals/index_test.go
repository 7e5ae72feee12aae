package signals

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	extensionsapi "istio.io/api/extensions/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	telemetryapi "istio.io/api/telemetry/v1alpha1"
	typeapi "istio.io/api/type/v1beta1"
	extensionsv1alpha1 "istio.io/client-go/pkg/apis/extensions/v1alpha1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func meta(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }

func sel(kv ...string) *typeapi.WorkloadSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &typeapi.WorkloadSelector{MatchLabels: m}
}

func mustUpsert(t *testing.T, ix *Index, objs ...any) {
	t.Helper()
	for _, o := range objs {
		if err := ix.Upsert(o); err != nil {
			t.Fatalf("upsert %T: %v", o, err)
		}
	}
}

func fr(f Feature, kind, ns, name string) FeatureRef {
	return FeatureRef{Feature: f, Kind: kind, Namespace: ns, Name: name}
}

// shopIndex: namespace shop with Services web (app=web) and db (app=db), and one
// object per kind and selection style.
func shopIndex(t *testing.T) *Index {
	ix := NewIndex("")
	ix.UpsertService("shop", "web", map[string]string{"app": "web"})
	ix.UpsertService("shop", "db", map[string]string{"app": "db"})
	ix.UpsertService("shop", "headless", nil)
	return ix
}

func TestIndexClassifiesEveryKind(t *testing.T) {
	web := map[string]string{"app": "web", "version": "v1"}
	cases := []struct {
		name string
		obj  any
		ns   string
		pod  map[string]string
		want Features
	}{
		{"VirtualService by short host with retries, timeout, fault, split", &networkingv1.VirtualService{ObjectMeta: meta("shop", "web-vs"),
			Spec: networkingapi.VirtualService{Hosts: []string{"web"}, Http: []*networkingapi.HTTPRoute{{
				Retries: &networkingapi.HTTPRetry{Attempts: 3}, Fault: &networkingapi.HTTPFaultInjection{},
				Route: []*networkingapi.HTTPRouteDestination{{Weight: 90}, {Weight: 10}}}}}}, "shop", web,
			Features{fr(FeatureFaultInjection, "VirtualService", "shop", "web-vs"), fr(FeatureHTTPRouting, "VirtualService", "shop", "web-vs"),
				fr(FeatureRetries, "VirtualService", "shop", "web-vs"), fr(FeatureTrafficSplit, "VirtualService", "shop", "web-vs")}},
		{"VirtualService by FQDN from another namespace", &networkingv1.VirtualService{ObjectMeta: meta("ops", "x"),
			Spec: networkingapi.VirtualService{Hosts: []string{"web.shop.svc.cluster.local"}}}, "shop", web,
			Features{fr(FeatureHTTPRouting, "VirtualService", "ops", "x")}},
		{"VirtualService on a gateway only selects nothing", &networkingv1.VirtualService{ObjectMeta: meta("shop", "ingress"),
			Spec: networkingapi.VirtualService{Hosts: []string{"web"}, Gateways: []string{"istio-system/public"}}}, "shop", web, nil},
		{"VirtualService wildcard host of a namespace", &networkingv1.VirtualService{ObjectMeta: meta("shop", "all"),
			Spec: networkingapi.VirtualService{Hosts: []string{"*.shop.svc.cluster.local"}, Gateways: []string{"mesh"}}}, "shop", web,
			Features{fr(FeatureHTTPRouting, "VirtualService", "shop", "all")}},
		{"VirtualService for an external host selects nothing", &networkingv1.VirtualService{ObjectMeta: meta("shop", "ext"),
			Spec: networkingapi.VirtualService{Hosts: []string{"api.example.com"}}}, "shop", web, nil},
		{"DestinationRule with load balancing", &networkingv1.DestinationRule{ObjectMeta: meta("shop", "web-dr"),
			Spec: networkingapi.DestinationRule{Host: "web.shop.svc.cluster.local", TrafficPolicy: &networkingapi.TrafficPolicy{
				LoadBalancer: &networkingapi.LoadBalancerSettings{}}}}, "shop", web,
			Features{fr(FeatureTrafficPolicy, "DestinationRule", "shop", "web-dr")}},
		{"DestinationRule with TLS only gives nothing", &networkingv1.DestinationRule{ObjectMeta: meta("shop", "tls"),
			Spec: networkingapi.DestinationRule{Host: "web", TrafficPolicy: &networkingapi.TrafficPolicy{Tls: &networkingapi.ClientTLSSettings{}}}},
			"shop", web, nil},
		{"EnvoyFilter by workloadSelector", &networkingv1alpha3.EnvoyFilter{ObjectMeta: meta("shop", "lua"),
			Spec: networkingapi.EnvoyFilter{WorkloadSelector: &networkingapi.WorkloadSelector{Labels: map[string]string{"app": "web"}}}}, "shop", web,
			Features{fr(FeatureEnvoyFilter, "EnvoyFilter", "shop", "lua")}},
		{"EnvoyFilter in the root namespace covers the mesh", &networkingv1alpha3.EnvoyFilter{ObjectMeta: meta("istio-system", "global")}, "shop", web,
			Features{fr(FeatureEnvoyFilter, "EnvoyFilter", "istio-system", "global")}},
		{"EnvoyFilter patching gateways only gives nothing", &networkingv1alpha3.EnvoyFilter{ObjectMeta: meta("shop", "gw"),
			Spec: networkingapi.EnvoyFilter{ConfigPatches: []*networkingapi.EnvoyFilter_EnvoyConfigObjectPatch{{
				Match: &networkingapi.EnvoyFilter_EnvoyConfigObjectMatch{Context: networkingapi.EnvoyFilter_GATEWAY}}}}}, "shop", web, nil},
		{"WasmPlugin by selector", &extensionsv1alpha1.WasmPlugin{ObjectMeta: meta("shop", "auth"),
			Spec: extensionsapi.WasmPlugin{Selector: sel("app", "web")}}, "shop", web, Features{fr(FeatureWasmPlugin, "WasmPlugin", "shop", "auth")}},
		{"WasmPlugin by targetRefs runs on the waypoint", &extensionsv1alpha1.WasmPlugin{ObjectMeta: meta("shop", "auth"),
			Spec: extensionsapi.WasmPlugin{TargetRefs: []*typeapi.PolicyTargetReference{{Kind: "Service", Name: "web"}}}}, "shop", web,
			Features{fr(FeatureWaypointExtension, "WasmPlugin", "shop", "auth")}},
		{"L4 AuthorizationPolicy", &securityv1.AuthorizationPolicy{ObjectMeta: meta("shop", "l4"),
			Spec: securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Rules: []*securityapi.Rule{{
				From: []*securityapi.Rule_From{{Source: &securityapi.Source{Principals: []string{"cluster.local/ns/a/sa/b"}}}},
				To:   []*securityapi.Rule_To{{Operation: &securityapi.Operation{Ports: []string{"8080"}}}},
				When: []*securityapi.Condition{{Key: "source.ip", Values: []string{"10.0.0.0/8"}}}}}}}, "shop", web,
			Features{fr(FeatureL4Authz, "AuthorizationPolicy", "shop", "l4")}},
		{"namespace-wide L7 AuthorizationPolicy is the DENY-all trap", &securityv1.AuthorizationPolicy{ObjectMeta: meta("shop", "paths"),
			Spec: securityapi.AuthorizationPolicy{Rules: []*securityapi.Rule{{To: []*securityapi.Rule_To{{Operation: &securityapi.Operation{Paths: []string{"/api"}}}}}}}},
			"shop", web, Features{fr(FeatureL7AuthzSelector, "AuthorizationPolicy", "shop", "paths")}},
		{"header condition is L7", &securityv1.AuthorizationPolicy{ObjectMeta: meta("shop", "hdr"),
			Spec: securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Rules: []*securityapi.Rule{{When: []*securityapi.Condition{{Key: "request.headers[x-user]"}}}}}},
			"shop", web, Features{fr(FeatureL7AuthzSelector, "AuthorizationPolicy", "shop", "hdr")}},
		{"CUSTOM action by selector is ignored by ztunnel", &securityv1.AuthorizationPolicy{ObjectMeta: meta("shop", "ext"),
			Spec: securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: securityapi.AuthorizationPolicy_CUSTOM}},
			"shop", web, Features{fr(FeatureExtAuthzSelector, "AuthorizationPolicy", "shop", "ext")}},
		{"L7 AuthorizationPolicy by targetRefs", &securityv1.AuthorizationPolicy{ObjectMeta: meta("shop", "get"),
			Spec: securityapi.AuthorizationPolicy{TargetRefs: []*typeapi.PolicyTargetReference{{Kind: "Service", Name: "web"}},
				Rules: []*securityapi.Rule{{To: []*securityapi.Rule_To{{Operation: &securityapi.Operation{Methods: []string{"GET"}}}}}}}},
			"shop", web, Features{fr(FeatureL7Authz, "AuthorizationPolicy", "shop", "get")}},
		{"AuthorizationPolicy on a waypoint Gateway covers the namespace's services", &securityv1.AuthorizationPolicy{ObjectMeta: meta("shop", "wp"),
			Spec: securityapi.AuthorizationPolicy{TargetRefs: []*typeapi.PolicyTargetReference{{Group: "gateway.networking.k8s.io", Kind: "Gateway", Name: "waypoint"}},
				Rules: []*securityapi.Rule{{From: []*securityapi.Rule_From{{Source: &securityapi.Source{RequestPrincipals: []string{"*"}}}}}}}},
			"shop", web, Features{fr(FeatureL7Authz, "AuthorizationPolicy", "shop", "wp")}},
		{"RequestAuthentication", &securityv1.RequestAuthentication{ObjectMeta: meta("shop", "jwt"),
			Spec: securityapi.RequestAuthentication{Selector: sel("app", "web")}}, "shop", web,
			Features{fr(FeatureRequestAuthn, "RequestAuthentication", "shop", "jwt")}},
		{"PeerAuthentication STRICT mesh-wide", &securityv1.PeerAuthentication{ObjectMeta: meta("istio-system", "default"),
			Spec: securityapi.PeerAuthentication{Mtls: &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}}},
			"shop", web, Features{fr(FeatureMTLS, "PeerAuthentication", "istio-system", "default")}},
		{"PeerAuthentication port-level DISABLE", &securityv1.PeerAuthentication{ObjectMeta: meta("shop", "plain"),
			Spec: securityapi.PeerAuthentication{Selector: sel("app", "web"), PortLevelMtls: map[uint32]*securityapi.PeerAuthentication_MutualTLS{
				9000: {Mode: securityapi.PeerAuthentication_MutualTLS_DISABLE}}}},
			"shop", web, Features{fr(FeaturePeerAuthDisable, "PeerAuthentication", "shop", "plain")}},
		{"Telemetry with tracing", &telemetryv1.Telemetry{ObjectMeta: meta("shop", "trace"),
			Spec: telemetryapi.Telemetry{Tracing: []*telemetryapi.Tracing{{}}}}, "shop", web,
			Features{fr(FeatureHTTPTelemetry, "Telemetry", "shop", "trace")}},
		{"Telemetry with access logs needs HTTP data", &telemetryv1.Telemetry{ObjectMeta: meta("shop", "logs"),
			Spec: telemetryapi.Telemetry{Selector: sel("app", "web"), AccessLogging: []*telemetryapi.AccessLogging{{}}}}, "shop", web,
			Features{fr(FeatureHTTPTelemetry, "Telemetry", "shop", "logs")}},
		{"Sidecar resource locking egress", &networkingv1.Sidecar{ObjectMeta: meta("shop", "scope"),
			Spec: networkingapi.Sidecar{WorkloadSelector: &networkingapi.WorkloadSelector{Labels: map[string]string{"version": "v1"}},
				OutboundTrafficPolicy: &networkingapi.OutboundTrafficPolicy{Mode: networkingapi.OutboundTrafficPolicy_REGISTRY_ONLY}}}, "shop", web,
			Features{fr(FeatureSidecarEgressLockdown, "Sidecar", "shop", "scope")}},
		{"Sidecar selecting other pods", &networkingv1.Sidecar{ObjectMeta: meta("shop", "scope"),
			Spec: networkingapi.Sidecar{WorkloadSelector: &networkingapi.WorkloadSelector{Labels: map[string]string{"version": "v2"}}}}, "shop", web, nil},
		{"WorkloadEntry behind the web Service", &networkingv1.WorkloadEntry{ObjectMeta: meta("shop", "vm-1"),
			Spec: networkingapi.WorkloadEntry{Address: "10.1.2.3", Labels: map[string]string{"app": "web", "vm": "true"}}}, "shop", web,
			Features{fr(FeatureWorkloadEntry, "WorkloadEntry", "shop", "vm-1")}},
		{"WorkloadEntry behind another Service", &networkingv1.WorkloadEntry{ObjectMeta: meta("shop", "vm-2"),
			Spec: networkingapi.WorkloadEntry{Address: "10.1.2.4", Labels: map[string]string{"app": "db"}}}, "shop", web, nil},
		{"HTTPRoute with a Service parent (GAMMA)", &gatewayv1.HTTPRoute{ObjectMeta: meta("shop", "web-route"),
			Spec: gatewayv1.HTTPRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
				Group: ptr.To(gatewayv1.Group("")), Kind: ptr.To(gatewayv1.Kind("Service")), Name: "web"}}},
				Rules: []gatewayv1.HTTPRouteRule{{Timeouts: &gatewayv1.HTTPRouteTimeouts{Request: ptr.To(gatewayv1.Duration("2s"))}}}}},
			"shop", web, Features{fr(FeatureHTTPRouting, "HTTPRoute", "shop", "web-route"), fr(FeatureTimeouts, "HTTPRoute", "shop", "web-route")}},
		{"HTTPRoute on a Gateway selects nothing", &gatewayv1.HTTPRoute{ObjectMeta: meta("shop", "north-south"),
			Spec: gatewayv1.HTTPRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "public"}}}}},
			"shop", web, nil},
		{"GRPCRoute with a Service parent", &gatewayv1.GRPCRoute{ObjectMeta: meta("shop", "grpc"),
			Spec: gatewayv1.GRPCRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
				Kind: ptr.To(gatewayv1.Kind("Service")), Name: "web"}}}}},
			"shop", web, Features{fr(FeatureHTTPRouting, "GRPCRoute", "shop", "grpc")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ix := shopIndex(t)
			mustUpsert(t, ix, tc.obj)
			if diff := cmp.Diff(tc.want, ix.FeaturesFor(tc.ns, tc.pod)); diff != "" {
				t.Errorf("features of the web pod (-want +got):\n%s", diff)
			}
			if got := ix.FeaturesFor("shop", map[string]string{"app": "other"}); len(got) > 0 && tc.name != "EnvoyFilter in the root namespace covers the mesh" &&
				tc.name != "PeerAuthentication STRICT mesh-wide" && tc.name != "Telemetry with tracing" && tc.name != "namespace-wide L7 AuthorizationPolicy is the DENY-all trap" {
				t.Errorf("an unrelated pod got %v", got)
			}
			if err := ix.Delete(tc.obj); err != nil {
				t.Fatal(err)
			}
			if got := ix.FeaturesFor(tc.ns, tc.pod); len(got) > 0 {
				t.Errorf("after delete: %v", got)
			}
			if ix.Len() != 0 {
				t.Errorf("after delete the index holds %d objects", ix.Len())
			}
		})
	}
}

func TestIndexCilium(t *testing.T) {
	ix := shopIndex(t)
	l7 := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
		"metadata": map[string]any{"namespace": "shop", "name": "l7"},
		"spec": map[string]any{
			"endpointSelector": map[string]any{"matchLabels": map[string]any{"k8s:app": "web"}},
			"ingress": []any{map[string]any{"toPorts": []any{map[string]any{
				"ports": []any{map[string]any{"port": "80", "protocol": "TCP"}},
				"rules": map[string]any{"http": []any{map[string]any{"method": "GET"}}}}}}},
		}}}
	l4 := l7.DeepCopy()
	l4.SetName("l4")
	unstructured.RemoveNestedField(l4.Object, "spec", "ingress")
	ccnp := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
		"metadata": map[string]any{"name": "dns"},
		"specs": []any{map[string]any{
			"endpointSelector": map[string]any{"matchLabels": map[string]any{"k8s:io.kubernetes.pod.namespace": "shop"},
				"matchExpressions": []any{map[string]any{"key": "k8s:app", "operator": "In", "values": []any{"web", "api"}}}},
			"egress": []any{map[string]any{"toPorts": []any{map[string]any{"rules": map[string]any{"dns": []any{map[string]any{"matchPattern": "*"}}}}}}},
		}}}}
	cec := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cilium.io/v2", "kind": "CiliumEnvoyConfig",
		"metadata": map[string]any{"namespace": "shop", "name": "lb"},
		"spec":     map[string]any{"services": []any{map[string]any{"name": "web"}}, "resources": []any{}},
	}}
	mustUpsert(t, ix, l7, l4, ccnp, cec)
	want := Features{
		fr(FeatureCiliumEnvoyConfig, "CiliumEnvoyConfig", "shop", "lb"),
		fr(FeatureCiliumL7Policy, "CiliumClusterwideNetworkPolicy", "", "dns"),
		fr(FeatureCiliumL7Policy, "CiliumNetworkPolicy", "shop", "l7"),
	}
	if diff := cmp.Diff(want, ix.FeaturesFor("shop", map[string]string{"app": "web"})); diff != "" {
		t.Errorf("web in shop (-want +got):\n%s", diff)
	}
	if got := ix.FeaturesFor("other", map[string]string{"app": "web"}); len(got) > 0 {
		t.Errorf("the clusterwide policy is restricted to shop; other got %v", got)
	}
	if got := ix.FeaturesFor("shop", map[string]string{"app": "db"}); len(got) > 0 {
		t.Errorf("db got %v", got)
	}
	if err := ix.Delete(cache.DeletedFinalStateUnknown{Key: "shop/l7", Obj: l7}); err != nil {
		t.Fatal(err)
	}
	if ix.FeaturesFor("shop", map[string]string{"app": "web"}).Has(FeatureCiliumL7Policy) != true {
		t.Error("the clusterwide policy should remain")
	}
	bad := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "cilium.io/v2", "kind": "CiliumEnvoyConfig",
		"metadata": map[string]any{"name": "bad"}, "spec": map[string]any{"services": []any{map[string]any{"name": "x"}}}}}
	if err := ix.Upsert(bad); err == nil {
		t.Error("a clusterwide-looking CiliumEnvoyConfig service without namespace was accepted")
	}
}

func TestIndexFollowsUpdatesServicesAndWorkloads(t *testing.T) {
	ix := shopIndex(t)
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: meta("shop", "ap"), Spec: securityapi.AuthorizationPolicy{Selector: sel("app", "web")}}
	vs := &networkingv1.VirtualService{ObjectMeta: meta("shop", "vs"), Spec: networkingapi.VirtualService{Hosts: []string{"db"}}}
	mustUpsert(t, ix, ap, vs,
		&appsv1.Deployment{ObjectMeta: meta("shop", "web"), Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}}}},
		&appsv1.StatefulSet{ObjectMeta: meta("shop", "db"), Spec: appsv1.StatefulSetSpec{Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}}}}},
	)
	key := func(name string) WorkloadKey { return WorkloadKey{Namespace: "shop", Name: name} }
	if diff := cmp.Diff([]WorkloadKey{key("web")}, ix.SelectedBy(ObjectKey{"AuthorizationPolicy", "shop", "ap"})); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]WorkloadKey{key("db")}, ix.SelectedBy(ObjectKey{"VirtualService", "shop", "vs"})); diff != "" {
		t.Error(diff)
	}
	// Update: the policy now selects db.
	ap2 := ap.DeepCopy()
	ap2.Spec.Selector = sel("app", "db")
	mustUpsert(t, ix, ap2)
	if diff := cmp.Diff([]WorkloadKey{key("db")}, ix.SelectedBy(ObjectKey{"AuthorizationPolicy", "shop", "ap"})); diff != "" {
		t.Error(diff)
	}
	// The db Service's selector changes: the VirtualService follows it.
	mustUpsert(t, ix, &corev1.Service{ObjectMeta: meta("shop", "db"), Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}}})
	if diff := cmp.Diff([]WorkloadKey{key("web")}, ix.SelectedBy(ObjectKey{"VirtualService", "shop", "vs"})); diff != "" {
		t.Error(diff)
	}
	if err := ix.Delete(&corev1.Service{ObjectMeta: meta("shop", "db")}); err != nil {
		t.Fatal(err)
	}
	if got := ix.SelectedBy(ObjectKey{"VirtualService", "shop", "vs"}); len(got) > 0 {
		t.Errorf("with the Service gone: %v", got)
	}
	if err := ix.Delete(&appsv1.StatefulSet{ObjectMeta: meta("shop", "db")}); err != nil {
		t.Fatal(err)
	}
	if got := ix.SelectedBy(ObjectKey{"AuthorizationPolicy", "shop", "ap"}); len(got) > 0 {
		t.Errorf("with the StatefulSet gone: %v", got)
	}
	gen := ix.Generation()
	mustUpsert(t, ix, ap)
	if ix.Generation() <= gen {
		t.Error("generation did not grow")
	}
	if err := ix.Upsert(&corev1.ConfigMap{}); err == nil {
		t.Error("an unsupported type was accepted")
	}
}

// TestIndexReadsUnstructuredIstio reads Istio objects as unstructured (as a
// dynamic informer or a manifest file gives them), including protobuf JSON
// fields such as durations, in another served version.
func TestIndexReadsUnstructuredIstio(t *testing.T) {
	ix := shopIndex(t)
	vs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
		"metadata": map[string]any{"namespace": "shop", "name": "web"},
		"spec": map[string]any{"hosts": []any{"web"}, "http": []any{map[string]any{
			"timeout": "3s", "retries": map[string]any{"attempts": int64(2), "perTryTimeout": "1s"},
			"route": []any{map[string]any{"destination": map[string]any{"host": "web"}}}}}},
	}}
	mustUpsert(t, ix, vs)
	want := Features{fr(FeatureHTTPRouting, "VirtualService", "shop", "web"), fr(FeatureRetries, "VirtualService", "shop", "web"),
		fr(FeatureTimeouts, "VirtualService", "shop", "web")}
	if diff := cmp.Diff(want, ix.FeaturesFor("shop", map[string]string{"app": "web"})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := ix.Delete(vs); err != nil || ix.Len() != 0 {
		t.Errorf("delete: %v, %d left", err, ix.Len())
	}
	bad := vs.DeepCopy()
	bad.Object["spec"] = map[string]any{"hosts": "not-a-list"}
	if err := ix.Upsert(bad); err == nil {
		t.Error("a malformed VirtualService was accepted")
	}
}

func TestEventHandler(t *testing.T) {
	ix := shopIndex(t)
	var errs []error
	h := ix.EventHandler(func(_ any, err error) { errs = append(errs, err) })
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: meta("shop", "ap"), Spec: securityapi.AuthorizationPolicy{Selector: sel("app", "web")}}
	h.OnAdd(ap, true)
	if !ix.FeaturesFor("shop", map[string]string{"app": "web"}).Has(FeatureL4Authz) {
		t.Error("add not seen")
	}
	ap2 := ap.DeepCopy()
	ap2.Spec.Selector = sel("app", "db")
	h.OnUpdate(ap, ap2)
	if ix.FeaturesFor("shop", map[string]string{"app": "web"}).Has(FeatureL4Authz) {
		t.Error("update not seen")
	}
	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "shop/ap", Obj: ap2})
	if ix.Len() != 0 {
		t.Error("delete not seen")
	}
	h.OnAdd(&corev1.Pod{}, false)
	if len(errs) != 1 {
		t.Errorf("errors %v, want one for the unsupported Pod", errs)
	}
}

func TestWatchedObjectsAreAllReadable(t *testing.T) {
	ix := NewIndex("")
	for _, o := range WatchedObjects() {
		if u, ok := o.(*unstructured.Unstructured); ok {
			u.SetName("x")
			u.SetNamespace("shop")
		}
		if err := ix.Upsert(o); err != nil {
			t.Errorf("%T: %v", o, err)
		}
	}
}
