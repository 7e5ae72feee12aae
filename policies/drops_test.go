package policies

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	extensionsapi "istio.io/api/extensions/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	telemetryapi "istio.io/api/telemetry/v1alpha1"
	typeapi "istio.io/api/type/v1beta1"
	extensionsv1alpha1 "istio.io/client-go/pkg/apis/extensions/v1alpha1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// TestWhatAmbientDrops indexes real Istio objects and pod annotations for a
// sidecar workload whose namespace asks for ambient, and checks the decision
// and that its reason states the true consequence of the move: "would deny
// nothing" where ztunnel would skip a DENY, DENY-all only where it is one.
func TestWhatAmbientDrops(t *testing.T) {
	p := mustCompile(t, "drops", 1, v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeSidecar)})
	om := func(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	api := &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "api"}}
	svc := []*typeapi.PolicyTargetReference{{Kind: "Service", Name: "api"}}
	deny := securityapi.AuthorizationPolicy_DENY
	noJWT := []*securityapi.Rule{{From: []*securityapi.Rule_From{{Source: &securityapi.Source{NotRequestPrincipals: []string{"*"}}}}}}
	lockdown := func(ns string) *networkingv1.Sidecar {
		return &networkingv1.Sidecar{ObjectMeta: om(ns, "default"), Spec: networkingapi.Sidecar{
			Egress:                []*networkingapi.IstioEgressListener{{Hosts: []string{"./*", "istio-system/*"}}},
			OutboundTrafficPolicy: &networkingapi.OutboundTrafficPolicy{Mode: networkingapi.OutboundTrafficPolicy_REGISTRY_ONLY}}}
	}
	cases := []struct {
		name     string
		objs     []any
		ann      map[string]string
		mode     v1alpha1.Mode
		rule     string
		reason   string // the reason, exactly
		not      string // a phrase the reason must not contain
		warnings []string
	}{
		{name: "a locked-down egress namespace", objs: []any{lockdown("payments")}, mode: v1alpha1.ModeSidecar, rule: RuleFeatureSidecar,
			reason: "keeps sidecar: Sidecar payments/default selects this workload for egress lock-down (outboundTrafficPolicy REGISTRY_ONLY); " +
				"a Sidecar resource has no effect on ambient workloads (istio#48105): the egress lock-down REGISTRY_ONLY would silently vanish " +
				"and calls to hosts outside the service registry would go out"},
		{name: "the mesh-wide lock-down", objs: []any{lockdown("istio-system")}, mode: v1alpha1.ModeSidecar, rule: RuleFeatureSidecar,
			reason: "keeps sidecar: Sidecar istio-system/default selects this workload for egress lock-down (outboundTrafficPolicy REGISTRY_ONLY); " +
				"a Sidecar resource has no effect on ambient workloads (istio#48105): the egress lock-down REGISTRY_ONLY would silently vanish " +
				"and calls to hosts outside the service registry would go out"},
		{name: "a DENY without a JWT would deny nothing", not: "DENY-all",
			objs: []any{&securityv1.AuthorizationPolicy{ObjectMeta: om("payments", "deny-no-jwt"),
				Spec: securityapi.AuthorizationPolicy{Selector: api, Action: deny, Rules: noJWT}}},
			mode: v1alpha1.ModeSidecar, rule: RuleFeatureSidecar,
			reason: "keeps sidecar: AuthorizationPolicy payments/deny-no-jwt selects this workload for an L7 DENY rule; ztunnel cannot match L7 attributes " +
				"and skips a selector-attached DENY rule that matches only on them, so without a sidecar it would deny nothing: what it denies now would be allowed " +
				"(istio#61126); attach it to a waypoint with targetRefs to move"},
		{name: "the same DENY attached with targetRefs gets a waypoint",
			objs: []any{&securityv1.AuthorizationPolicy{ObjectMeta: om("payments", "deny-no-jwt"),
				Spec: securityapi.AuthorizationPolicy{TargetRefs: svc, Action: deny, Rules: noJWT}}},
			mode: v1alpha1.ModeAmbientWaypoint, rule: RuleFeatureWaypoint,
			reason: "needs a waypoint: AuthorizationPolicy payments/deny-no-jwt selects this workload for L7 authorization; " +
				"L7 authorization is enforced by a waypoint or a sidecar (namespace-annotation chose ambient)"},
		{name: "a DENY on a port and a path would deny the whole port", not: "DENY-all",
			objs: []any{&securityv1.AuthorizationPolicy{ObjectMeta: om("payments", "no-admin"), Spec: securityapi.AuthorizationPolicy{
				Selector: api, Action: deny, Rules: []*securityapi.Rule{{To: []*securityapi.Rule_To{{Operation: &securityapi.Operation{
					Ports: []string{"8080"}, Paths: []string{"/admin*"}}}}}}}}},
			mode: v1alpha1.ModeSidecar, rule: RuleDenyAllTrap,
			reason: "keeps sidecar: AuthorizationPolicy payments/no-admin selects this workload for an L7 DENY rule with L4 attributes; " +
				"ztunnel enforces a selector-attached DENY rule without its L7 attributes, so it would deny every request its L4 attributes match, " +
				"whatever the method, path or header; attach it to a waypoint with targetRefs first"},
		{name: "an ALLOW on methods only is the DENY-all trap",
			objs: []any{&securityv1.AuthorizationPolicy{ObjectMeta: om("payments", "only-get"), Spec: securityapi.AuthorizationPolicy{
				Selector: api, Rules: []*securityapi.Rule{{To: []*securityapi.Rule_To{{Operation: &securityapi.Operation{Methods: []string{"GET"}}}}}}}}},
			mode: v1alpha1.ModeSidecar, rule: RuleDenyAllTrap,
			reason: "keeps sidecar: AuthorizationPolicy payments/only-get selects this workload for selector-based L7 authorization; " +
				"ztunnel cannot evaluate L7 rules and enforces a selector-attached L7 AuthorizationPolicy as DENY-all; attach it to a waypoint with targetRefs first"},
		{name: "an external authorizer mesh-wide would never be asked", not: "DENY-all",
			objs: []any{&securityv1.AuthorizationPolicy{ObjectMeta: om("istio-system", "opa"), Spec: securityapi.AuthorizationPolicy{
				Action:       securityapi.AuthorizationPolicy_CUSTOM,
				ActionDetail: &securityapi.AuthorizationPolicy_Provider{Provider: &securityapi.AuthorizationPolicy_ExtensionProvider{Name: "opa"}},
				Rules:        []*securityapi.Rule{{To: []*securityapi.Rule_To{{Operation: &securityapi.Operation{Paths: []string{"/pay"}}}}}}}}},
			mode: v1alpha1.ModeSidecar, rule: RuleFeatureSidecar,
			reason: "keeps sidecar: AuthorizationPolicy istio-system/opa selects this workload for external authorization (CUSTOM); " +
				"ztunnel does not support the CUSTOM action and ignores the policy: the external authorizer would never be asked, so what it denies would be allowed; " +
				"attach it to a waypoint with targetRefs to move"},
		{name: "capture exclusions are named", ann: map[string]string{signals.AnnotationExcludeInboundPorts: "9090", signals.AnnotationExcludeOutboundPorts: "3306"},
			mode: v1alpha1.ModeSidecar, rule: RuleFeatureSidecar,
			reason: "keeps sidecar: the pod template's annotations traffic.sidecar.istio.io/excludeInboundPorts, traffic.sidecar.istio.io/excludeOutboundPorts " +
				"set sidecar traffic capture settings; ambient has no per-port or per-range capture settings: the traffic these annotations " +
				"keep out of the mesh would go through ztunnel (plaintext callers of excluded inbound ports are refused under STRICT mTLS) and what they leave " +
				"uncaptured would be captured; remove them to move"},
		{name: "proxy settings are dropped with a warning", ann: map[string]string{signals.AnnotationProxyConfig: "holdApplicationUntilProxyStarts: true"},
			mode: v1alpha1.ModeAmbient, rule: RuleNamespaceAnnotation,
			warnings: []string{"the pod template's annotations proxy.istio.io/config set sidecar proxy settings (proxy.istio.io/config); " +
				"proxy.istio.io/config configures only the sidecar's Envoy; sidecarless nothing reads it and its settings are dropped"}},
		{name: "a TrafficExtension by selector runs only in the sidecar",
			objs: []any{&extensionsv1alpha1.TrafficExtension{ObjectMeta: om("payments", "parity"), Spec: extensionsapi.TrafficExtension{Selector: api}}},
			mode: v1alpha1.ModeSidecar, rule: RuleFeatureSidecar,
			reason: "keeps sidecar: TrafficExtension payments/parity selects this workload for a Wasm or Lua extension; a TrafficExtension attached by selector " +
				"runs only in a sidecar; sidecarless it would silently stop running (attach it to a waypoint with targetRefs to move)"},
		{name: "a TrafficExtension by targetRefs runs on the waypoint",
			objs: []any{&extensionsv1alpha1.TrafficExtension{ObjectMeta: om("payments", "parity"), Spec: extensionsapi.TrafficExtension{TargetRefs: svc}}},
			mode: v1alpha1.ModeAmbientWaypoint, rule: RuleFeatureWaypoint,
			reason: "needs a waypoint: TrafficExtension payments/parity selects this workload for a Wasm or Lua extension on the waypoint; " +
				"a WasmPlugin or TrafficExtension attached with targetRefs runs on a waypoint (namespace-annotation chose ambient)"},
		{name: "access logs need a waypoint",
			objs: []any{&telemetryv1.Telemetry{ObjectMeta: om("payments", "logs"), Spec: telemetryapi.Telemetry{
				AccessLogging: []*telemetryapi.AccessLogging{{Providers: []*telemetryapi.ProviderRef{{Name: "envoy"}}}}}}},
			mode: v1alpha1.ModeAmbientWaypoint, rule: RuleFeatureWaypoint,
			reason: "needs a waypoint: Telemetry payments/logs selects this workload for HTTP telemetry (access logs, HTTP metrics or tracing); " +
				"ztunnel logs and measures connections only; HTTP access logs, HTTP metrics and tracing need a waypoint or a sidecar (namespace-annotation chose ambient)"},
		{name: "mTLS DISABLE in the namespace",
			objs: []any{&securityv1.PeerAuthentication{ObjectMeta: om("payments", "plain"), Spec: securityapi.PeerAuthentication{
				Mtls: &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_DISABLE}}}},
			mode: v1alpha1.ModeSidecar, rule: RuleFeatureSidecar,
			reason: "keeps sidecar: PeerAuthentication payments/plain selects this workload for plaintext (mTLS DISABLE); ambient does not support " +
				"mTLS mode DISABLE and treats it as PERMISSIVE: ztunnel would still use mTLS between meshed workloads"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ix := signals.NewIndex("")
			ix.UpsertService("payments", "api", map[string]string{"app": "api"})
			for _, o := range tc.objs {
				if err := ix.Upsert(o); err != nil {
					t.Fatal(err)
				}
			}
			in := baseInput(p)
			in.Namespace = Namespace{Name: "payments", Labels: map[string]string{"istio-injection": "enabled"},
				Annotations: map[string]string{v1alpha1.AnnotationMode: "ambient"}}
			in.Workload.Namespace = "payments"
			in.Workload.Labels = map[string]string{"app": "api"}
			in.Workload.Annotations = tc.ann
			in.Features = signals.AppendAnnotationFeatures(ix.FeaturesFor("payments", in.Workload.Labels), in.Workload.Annotations)
			d := Decide(in)
			if d.Mode != tc.mode || d.Rule != tc.rule {
				t.Fatalf("got %s by %s (%q); want %s by %s", d.Mode, d.Rule, d.Reason, tc.mode, tc.rule)
			}
			if tc.reason != "" && d.Reason != tc.reason {
				t.Errorf("reason\n got %q\nwant %q", d.Reason, tc.reason)
			}
			if tc.not != "" && strings.Contains(d.Reason, tc.not) {
				t.Errorf("reason %q says %q", d.Reason, tc.not)
			}
			if diff := cmp.Diff(tc.warnings, sidecarlessWarnings(in.Features, d.Mode)); diff != "" {
				t.Errorf("sidecarless warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBlockersTowardAmbient: precheck (cli) reports as a blocker toward a
// target mode every feature whose need is sidecar or block and that the
// target does not serve, naming the object. These are the features that
// block a move to ambient.
func TestBlockersTowardAmbient(t *testing.T) {
	want := []signals.Feature{
		signals.FeatureL7DenyIgnored, signals.FeatureExtAuthzSelector, signals.FeatureSidecarEgressLockdown,
		signals.FeatureCaptureAnnotations, signals.FeatureSidecarIngress, signals.FeatureSidecarEgressHosts,
		signals.FeatureSidecarResource, signals.FeatureAuditSelector, signals.FeatureEnvoyFilter, signals.FeatureWasmPlugin,
		signals.FeatureTrafficExtension, signals.FeaturePeerAuthDisable, signals.FeatureWorkloadEntry, signals.FeatureSpireCA,
		signals.FeatureL7AuthzSelector, signals.FeatureL7AllowNarrowed, signals.FeatureL7DenyBroadened,
	}
	var got []signals.Feature
	for _, row := range FeatureTable {
		if row.Need >= NeedSidecar && !row.Need.Serves(v1alpha1.ModeAmbient) {
			got = append(got, row.Feature)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("blockers toward ambient (-want +got):\n%s", diff)
	}
}
