package signals

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	extensionsapi "istio.io/api/extensions/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	telemetryapi "istio.io/api/telemetry/v1alpha1"
	typeapi "istio.io/api/type/v1beta1"
	extensionsv1alpha1 "istio.io/client-go/pkg/apis/extensions/v1alpha1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Rule builders for AuthorizationPolicy tables.
func toOp(op *securityapi.Operation) []*securityapi.Rule_To {
	return []*securityapi.Rule_To{{Operation: op}}
}

func fromSrc(src *securityapi.Source) []*securityapi.Rule_From {
	return []*securityapi.Rule_From{{Source: src}}
}

func svcRef(name string) []*typeapi.PolicyTargetReference {
	return []*typeapi.PolicyTargetReference{{Kind: "Service", Name: name}}
}

// TestAuthorizationPolicyUnderZtunnel classifies AuthorizationPolicies as
// istiod translates them for ztunnel (pilot/pkg/serviceregistry/ambient/
// authorization.go): which are enforced as written, which deny nothing, which
// deny more, which are ignored, and which need a waypoint.
func TestAuthorizationPolicyUnderZtunnel(t *testing.T) {
	web := map[string]string{"app": "web", "version": "v1"}
	deny, allow := securityapi.AuthorizationPolicy_DENY, securityapi.AuthorizationPolicy_ALLOW
	cases := []struct {
		name  string
		ns    string
		spec  *securityapi.AuthorizationPolicy
		podNs string
		want  []Feature
	}{
		{"DENY on paths only denies nothing", "shop", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: deny,
			Rules: []*securityapi.Rule{{To: toOp(&securityapi.Operation{Paths: []string{"/admin"}})}}}, "shop", []Feature{FeatureL7DenyIgnored}},
		{"DENY without a JWT (istio#61126) denies nothing", "shop", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: deny,
			Rules: []*securityapi.Rule{{From: fromSrc(&securityapi.Source{NotRequestPrincipals: []string{"*"}})}}}, "shop", []Feature{FeatureL7DenyIgnored}},
		{"DENY on a header condition denies nothing", "shop", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: deny,
			Rules: []*securityapi.Rule{{When: []*securityapi.Condition{{Key: "request.headers[x-debug]", Values: []string{"1"}}}}}}, "shop", []Feature{FeatureL7DenyIgnored}},
		{"DENY on request.auth claims denies nothing", "shop", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: deny,
			Rules: []*securityapi.Rule{{When: []*securityapi.Condition{{Key: "request.auth.claims[group]", Values: []string{"guest"}}}}}}, "shop", []Feature{FeatureL7DenyIgnored}},
		{"DENY on methods and hosts denies nothing", "shop", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: deny,
			Rules: []*securityapi.Rule{{To: toOp(&securityapi.Operation{Methods: []string{"DELETE"}, Hosts: []string{"web.example.com"}})}}}, "shop", []Feature{FeatureL7DenyIgnored}},
		{"DENY on remote IP blocks denies nothing", "shop", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: deny,
			Rules: []*securityapi.Rule{{From: fromSrc(&securityapi.Source{RemoteIpBlocks: []string{"1.2.3.4/32"}})}}}, "shop", []Feature{FeatureL7DenyIgnored}},
		{"DENY from a namespace on a path: the to clause keeps no L4 field, denies nothing", "shop", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: deny,
			Rules: []*securityapi.Rule{{From: fromSrc(&securityapi.Source{Namespaces: []string{"guest"}}), To: toOp(&securityapi.Operation{Paths: []string{"/admin"}})}}},
			"shop", []Feature{FeatureL7DenyIgnored}},
		{"DENY on a port and a path denies the whole port", "shop", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: deny,
			Rules: []*securityapi.Rule{{To: toOp(&securityapi.Operation{Ports: []string{"8080"}, Paths: []string{"/admin"}})}}}, "shop", []Feature{FeatureL7DenyBroadened}},
		{"DENY from a namespace without a JWT denies the whole namespace", "shop", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: deny,
			Rules: []*securityapi.Rule{{From: fromSrc(&securityapi.Source{Namespaces: []string{"guest"}, NotRequestPrincipals: []string{"*"}})}}},
			"shop", []Feature{FeatureL7DenyBroadened}},
		{"DENY with one rule of each kind", "shop", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: deny,
			Rules: []*securityapi.Rule{
				{To: toOp(&securityapi.Operation{Methods: []string{"POST"}})},
				{To: toOp(&securityapi.Operation{Ports: []string{"9090"}, Methods: []string{"GET"}})}}},
			"shop", []Feature{FeatureL7DenyBroadened, FeatureL7DenyIgnored}},
		{"DENY on L4 attributes only is enforced as written", "shop", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: deny,
			Rules: []*securityapi.Rule{{From: fromSrc(&securityapi.Source{Namespaces: []string{"guest"}}),
				When: []*securityapi.Condition{{Key: "destination.port", Values: []string{"9090"}}}}}}, "shop", []Feature{FeatureL4Authz}},
		{"namespace-wide DENY on paths applies to every pod and denies nothing", "shop", &securityapi.AuthorizationPolicy{Action: deny,
			Rules: []*securityapi.Rule{{To: toOp(&securityapi.Operation{Paths: []string{"/admin"}})}}}, "shop", []Feature{FeatureL7DenyIgnored}},
		{"mesh-wide DENY with a selector applies in every namespace", "istio-system", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: deny,
			Rules: []*securityapi.Rule{{To: toOp(&securityapi.Operation{Methods: []string{"DELETE"}})}}}, "shop", []Feature{FeatureL7DenyIgnored}},
		{"source.serviceAccount is not a condition ztunnel matches", "shop", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: deny,
			Rules: []*securityapi.Rule{{When: []*securityapi.Condition{{Key: "source.serviceAccount", Values: []string{"guest/sa"}}}}}}, "shop", []Feature{FeatureL7DenyIgnored}},
		{"ALLOW on methods only is DENY-all", "shop", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: allow,
			Rules: []*securityapi.Rule{{To: toOp(&securityapi.Operation{Methods: []string{"GET"}})}}}, "shop", []Feature{FeatureL7AuthzSelector}},
		{"ALLOW with an L4 rule and an L7 rule allows only the L4 rule", "shop", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: allow,
			Rules: []*securityapi.Rule{
				{From: fromSrc(&securityapi.Source{Namespaces: []string{"front"}})},
				{To: toOp(&securityapi.Operation{Paths: []string{"/health"}})}}}, "shop", []Feature{FeatureL7AllowNarrowed}},
		{"AUDIT by selector is ignored by ztunnel", "shop", &securityapi.AuthorizationPolicy{Selector: sel("app", "web"), Action: securityapi.AuthorizationPolicy_AUDIT,
			Rules: []*securityapi.Rule{{To: toOp(&securityapi.Operation{Paths: []string{"/pay"}})}}}, "shop", []Feature{FeatureAuditSelector}},
		{"AUDIT on L4 attributes is ignored by ztunnel too", "shop", &securityapi.AuthorizationPolicy{Action: securityapi.AuthorizationPolicy_AUDIT,
			Rules: []*securityapi.Rule{{From: fromSrc(&securityapi.Source{Namespaces: []string{"guest"}})}}}, "shop", []Feature{FeatureAuditSelector}},
		{"CUSTOM mesh-wide is ignored by ztunnel", "istio-system", &securityapi.AuthorizationPolicy{Action: securityapi.AuthorizationPolicy_CUSTOM,
			ActionDetail: &securityapi.AuthorizationPolicy_Provider{Provider: &securityapi.AuthorizationPolicy_ExtensionProvider{Name: "opa"}}},
			"shop", []Feature{FeatureExtAuthzSelector}},
		{"CUSTOM by targetRefs runs on the waypoint", "shop", &securityapi.AuthorizationPolicy{TargetRefs: svcRef("web"), Action: securityapi.AuthorizationPolicy_CUSTOM},
			"shop", []Feature{FeatureL7Authz}},
		{"DENY on paths by targetRefs runs on the waypoint", "shop", &securityapi.AuthorizationPolicy{TargetRefs: svcRef("web"), Action: deny,
			Rules: []*securityapi.Rule{{To: toOp(&securityapi.Operation{Paths: []string{"/admin"}})}}}, "shop", []Feature{FeatureL7Authz}},
		{"L4 ALLOW by targetRefs needs the waypoint", "shop", &securityapi.AuthorizationPolicy{TargetRefs: svcRef("web"),
			Rules: []*securityapi.Rule{{From: fromSrc(&securityapi.Source{Namespaces: []string{"front"}})}}}, "shop", []Feature{FeatureWaypointAuthz}},
		{"targetRefs to another namespace's Service attach to nothing", "ops", &securityapi.AuthorizationPolicy{
			TargetRefs: []*typeapi.PolicyTargetReference{{Kind: "Service", Name: "web", Namespace: "shop"}}}, "shop", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ix := shopIndex(t)
			obj := &securityv1.AuthorizationPolicy{ObjectMeta: meta(tc.ns, "p")}
			proto.Merge(&obj.Spec, tc.spec)
			mustUpsert(t, ix, obj)
			var want Features
			for _, f := range tc.want {
				want = append(want, fr(f, KindAuthorizationPolicy, tc.ns, "p"))
			}
			if diff := cmp.Diff(want, ix.FeaturesFor(tc.podNs, web)); diff != "" {
				t.Errorf("features (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSidecarResourceFeatures: what each part of a Sidecar gives, worded by
// its spec (a Sidecar has no effect on ambient workloads, istio#48105).
func TestSidecarResourceFeatures(t *testing.T) {
	web := map[string]string{"app": "web"}
	otp := func(m networkingapi.OutboundTrafficPolicy_Mode) *networkingapi.OutboundTrafficPolicy {
		return &networkingapi.OutboundTrafficPolicy{Mode: m}
	}
	cases := []struct {
		name string
		spec *networkingapi.Sidecar
		want []Feature
	}{
		{"REGISTRY_ONLY locks egress", &networkingapi.Sidecar{OutboundTrafficPolicy: otp(networkingapi.OutboundTrafficPolicy_REGISTRY_ONLY)},
			[]Feature{FeatureSidecarEgressLockdown}},
		{"an outboundTrafficPolicy without mode is REGISTRY_ONLY", &networkingapi.Sidecar{OutboundTrafficPolicy: &networkingapi.OutboundTrafficPolicy{}},
			[]Feature{FeatureSidecarEgressLockdown}},
		{"ALLOW_ANY locks nothing", &networkingapi.Sidecar{OutboundTrafficPolicy: otp(networkingapi.OutboundTrafficPolicy_ALLOW_ANY)}, nil},
		{"egress hosts narrow the scope", &networkingapi.Sidecar{Egress: []*networkingapi.IstioEgressListener{{Hosts: []string{"./*", "istio-system/*"}}}},
			[]Feature{FeatureSidecarEgressHosts}},
		{"egress */* is Istio's default", &networkingapi.Sidecar{Egress: []*networkingapi.IstioEgressListener{{Hosts: []string{"*/*"}}}}, nil},
		{"an ingress listener", &networkingapi.Sidecar{Ingress: []*networkingapi.IstioIngressListener{{
			Port: &networkingapi.SidecarPort{Number: 9080, Protocol: "HTTP", Name: "http"}, DefaultEndpoint: "127.0.0.1:8080"}}},
			[]Feature{FeatureSidecarIngress}},
		{"an inbound connection pool", &networkingapi.Sidecar{InboundConnectionPool: &networkingapi.ConnectionPoolSettings{}},
			[]Feature{FeatureSidecarResource}},
		{"an egress listener on its own port", &networkingapi.Sidecar{Egress: []*networkingapi.IstioEgressListener{{
			Port: &networkingapi.SidecarPort{Number: 3306, Protocol: "TCP", Name: "mysql"}, Hosts: []string{"*/*"}}}},
			[]Feature{FeatureSidecarResource}},
		{"a locked-down egress namespace", &networkingapi.Sidecar{
			Egress:                []*networkingapi.IstioEgressListener{{Hosts: []string{"./*", "istio-system/*"}}},
			OutboundTrafficPolicy: otp(networkingapi.OutboundTrafficPolicy_REGISTRY_ONLY)},
			[]Feature{FeatureSidecarEgressHosts, FeatureSidecarEgressLockdown}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ix := shopIndex(t)
			obj := &networkingv1.Sidecar{ObjectMeta: meta("shop", "default")}
			proto.Merge(&obj.Spec, tc.spec)
			mustUpsert(t, ix, obj)
			var want Features
			for _, f := range tc.want {
				want = append(want, fr(f, KindSidecar, "shop", "default"))
			}
			if diff := cmp.Diff(want, ix.FeaturesFor("shop", web)); diff != "" {
				t.Errorf("features (-want +got):\n%s", diff)
			}
			if err := ix.Delete(obj); err != nil {
				t.Fatal(err)
			}
			if ix.Len() != 0 {
				t.Errorf("after delete the index holds %d objects", ix.Len())
			}
		})
	}
}

// TestTelemetryFeatures: Telemetry overrides that need HTTP data need a
// waypoint; TCP-only overrides and switching things off need nothing.
func TestTelemetryFeatures(t *testing.T) {
	web := map[string]string{"app": "web"}
	off := wrapperspb.Bool(true)
	metric := func(m telemetryapi.MetricSelector_IstioMetric, disabled *wrapperspb.BoolValue) []*telemetryapi.Metrics {
		return []*telemetryapi.Metrics{{Overrides: []*telemetryapi.MetricsOverrides{{
			Match:    &telemetryapi.MetricSelector{MetricMatch: &telemetryapi.MetricSelector_Metric{Metric: m}},
			Disabled: disabled}}}}
	}
	cases := []struct {
		name string
		spec *telemetryapi.Telemetry
		want Feature
	}{
		{"tracing", &telemetryapi.Telemetry{Tracing: []*telemetryapi.Tracing{{RandomSamplingPercentage: wrapperspb.Double(10)}}}, FeatureHTTPTelemetry},
		{"tracing switched off", &telemetryapi.Telemetry{Tracing: []*telemetryapi.Tracing{{DisableSpanReporting: off}}}, FeatureTCPTelemetry},
		{"access logs", &telemetryapi.Telemetry{AccessLogging: []*telemetryapi.AccessLogging{{Filter: &telemetryapi.AccessLogging_Filter{Expression: "response.code >= 400"}}}},
			FeatureHTTPTelemetry},
		{"access logs switched off", &telemetryapi.Telemetry{AccessLogging: []*telemetryapi.AccessLogging{{Disabled: off}}}, FeatureTCPTelemetry},
		{"HTTP metric override", &telemetryapi.Telemetry{Metrics: metric(telemetryapi.MetricSelector_REQUEST_COUNT, nil)}, FeatureHTTPTelemetry},
		{"HTTP metric switched off", &telemetryapi.Telemetry{Metrics: metric(telemetryapi.MetricSelector_REQUEST_DURATION, off)}, FeatureTCPTelemetry},
		{"TCP metric override", &telemetryapi.Telemetry{Metrics: metric(telemetryapi.MetricSelector_TCP_OPENED_CONNECTIONS, nil)}, FeatureTCPTelemetry},
		{"override of every metric", &telemetryapi.Telemetry{Metrics: []*telemetryapi.Metrics{{Overrides: []*telemetryapi.MetricsOverrides{{}}}}}, FeatureHTTPTelemetry},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ix := shopIndex(t)
			obj := &telemetryv1.Telemetry{ObjectMeta: meta("shop", "tel")}
			proto.Merge(&obj.Spec, tc.spec)
			mustUpsert(t, ix, obj)
			want := Features{fr(tc.want, KindTelemetry, "shop", "tel")}
			if diff := cmp.Diff(want, ix.FeaturesFor("shop", web)); diff != "" {
				t.Errorf("features (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTrafficExtension: read typed and from unstructured manifests; by
// selector it runs only in sidecars, by targetRefs on the waypoint.
func TestTrafficExtension(t *testing.T) {
	web := map[string]string{"app": "web"}
	lua := &extensionsapi.TrafficExtension_Lua{Lua: &extensionsapi.LuaConfig{InlineCode: "function envoy_on_request(h) end"}}
	cases := []struct {
		name string
		obj  any
		ns   string
		want Features
	}{
		{"by selector", &extensionsv1alpha1.TrafficExtension{ObjectMeta: meta("shop", "parity"),
			Spec: extensionsapi.TrafficExtension{Selector: sel("app", "web"), FilterConfig: lua}}, "shop",
			Features{fr(FeatureTrafficExtension, KindTrafficExtension, "shop", "parity")}},
		{"by targetRefs", &extensionsv1alpha1.TrafficExtension{ObjectMeta: meta("shop", "parity"),
			Spec: extensionsapi.TrafficExtension{TargetRefs: svcRef("web"), FilterConfig: lua}}, "shop",
			Features{fr(FeatureWaypointExtension, KindTrafficExtension, "shop", "parity")}},
		{"mesh-wide with a selector", &extensionsv1alpha1.TrafficExtension{ObjectMeta: meta("istio-system", "parity"),
			Spec: extensionsapi.TrafficExtension{Selector: sel("app", "web"), FilterConfig: lua}}, "shop",
			Features{fr(FeatureTrafficExtension, KindTrafficExtension, "istio-system", "parity")}},
		{"from an unstructured manifest", &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "extensions.istio.io/v1alpha1", "kind": "TrafficExtension",
			"metadata": map[string]any{"namespace": "shop", "name": "parity"},
			"spec": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
				"phase": "STATS", "lua": map[string]any{"inlineCode": "function envoy_on_request(h) end"}}}}, "shop",
			Features{fr(FeatureTrafficExtension, KindTrafficExtension, "shop", "parity")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ix := shopIndex(t)
			mustUpsert(t, ix, tc.obj)
			if diff := cmp.Diff(tc.want, ix.FeaturesFor(tc.ns, web)); diff != "" {
				t.Errorf("features (-want +got):\n%s", diff)
			}
			if err := ix.Delete(tc.obj); err != nil {
				t.Fatal(err)
			}
			if ix.Len() != 0 {
				t.Errorf("after delete the index holds %d objects", ix.Len())
			}
		})
	}
}
