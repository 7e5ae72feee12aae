package policies

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// TestFeatureTable decides one workload per row of the mesh-feature table,
// under a policy whose default is ambient (so every need shows), and asserts
// mode, rule, reason and labels. A row without a case fails the test.
func TestFeatureTable(t *testing.T) {
	p := mustCompile(t, "features", 2, v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeAmbient)})
	const dflt = "default mode of DataplanePolicy features"
	type want struct {
		kind   string
		mode   v1alpha1.Mode
		rule   string
		reason string
	}
	wp := func(kind, what, why string) want {
		return want{kind, v1alpha1.ModeAmbientWaypoint, RuleFeatureWaypoint,
			"needs a waypoint: " + kind + " shop/obj selects this workload for " + what + "; " + why + " (policy-default chose ambient)"}
	}
	sc := func(kind, what, why string) want {
		return want{kind, v1alpha1.ModeSidecar, RuleFeatureSidecar, "keeps sidecar: " + kind + " shop/obj selects this workload for " + what + "; " + why}
	}
	cil := func(kind, what, why string) want {
		return want{kind, v1alpha1.ModeCilium, RuleFeatureCilium,
			"needs cilium: " + kind + " shop/obj selects this workload for " + what + "; " + why + " (policy-default chose ambient)"}
	}
	blk := func(kind, what, why string) want {
		return want{kind, v1alpha1.ModeSidecar, RuleDenyAllTrap, "keeps sidecar: " + kind + " shop/obj selects this workload for " + what + "; " + why}
	}
	const sidecarGone = "a Sidecar resource has no effect on ambient workloads (istio#48105): "
	cases := map[signals.Feature]want{
		signals.FeatureMTLS:                  {"PeerAuthentication", v1alpha1.ModeAmbient, RuleDefault, dflt},
		signals.FeatureL4Authz:               {"AuthorizationPolicy", v1alpha1.ModeAmbient, RuleDefault, dflt},
		signals.FeatureTCPTelemetry:          {"Telemetry", v1alpha1.ModeAmbient, RuleDefault, dflt},
		signals.FeatureProxyConfigAnnotation: {signals.KindPodAnnotations, v1alpha1.ModeAmbient, RuleDefault, dflt},
		signals.FeatureHTTPRouting:           wp("VirtualService", "HTTP routing", "ztunnel serves L4 only; HTTP routing needs a waypoint or a sidecar"),
		signals.FeatureRetries:               wp("VirtualService", "HTTP retries", "ztunnel serves L4 only; retries need a waypoint or a sidecar"),
		signals.FeatureTimeouts:              wp("HTTPRoute", "HTTP timeouts", "ztunnel serves L4 only; timeouts need a waypoint or a sidecar"),
		signals.FeatureFaultInjection:        wp("VirtualService", "fault injection", "ztunnel serves L4 only; fault injection needs a waypoint or a sidecar"),
		signals.FeatureTrafficSplit:          wp("HTTPRoute", "traffic split", "ztunnel serves L4 only; a traffic split needs a waypoint or a sidecar"),
		signals.FeatureTrafficPolicy:         wp("DestinationRule", "traffic policy", "ztunnel serves L4 only; load balancing and outlier detection need a waypoint or a sidecar"),
		signals.FeatureWaypointExtension: wp("TrafficExtension", "a Wasm or Lua extension on the waypoint",
			"a WasmPlugin or TrafficExtension attached with targetRefs runs on a waypoint"),
		signals.FeatureL7Authz: wp("AuthorizationPolicy", "L7 authorization", "L7 authorization is enforced by a waypoint or a sidecar"),
		signals.FeatureWaypointAuthz: wp("AuthorizationPolicy", "authorization on the waypoint",
			"a policy attached with targetRefs is enforced by a waypoint, never by ztunnel"),
		signals.FeatureRequestAuthn: wp("RequestAuthentication", "JWT authentication", "RequestAuthentication is enforced by a waypoint or a sidecar"),
		signals.FeatureHTTPTelemetry: wp("Telemetry", "HTTP telemetry (access logs, HTTP metrics or tracing)",
			"ztunnel logs and measures connections only; HTTP access logs, HTTP metrics and tracing need a waypoint or a sidecar"),
		signals.FeatureCiliumL7Policy: cil("CiliumNetworkPolicy", "Cilium L7 policy",
			"Cilium's HTTP policy is not compatible with Istio mTLS (STRICT or PERMISSIVE)"),
		signals.FeatureCiliumEnvoyConfig: cil("CiliumEnvoyConfig", "Cilium Envoy listeners", "Cilium's Envoy cannot read traffic Istio's mTLS encrypted"),
		signals.FeatureEnvoyFilter:       sc("EnvoyFilter", "Envoy configuration patches", "EnvoyFilter is not supported on waypoints"),
		signals.FeatureWasmPlugin:        sc("WasmPlugin", "a Wasm extension", "a selector-attached WasmPlugin runs only in a sidecar"),
		signals.FeatureTrafficExtension: sc("TrafficExtension", "a Wasm or Lua extension",
			"a TrafficExtension attached by selector runs only in a sidecar; sidecarless it would silently stop running (attach it to a waypoint with targetRefs to move)"),
		signals.FeatureSidecarResource: sc("Sidecar", "Sidecar proxy settings (inbound connection pool, egress proxy or listener ports)",
			sidecarGone+"these settings would silently vanish"),
		signals.FeatureSidecarEgressLockdown: sc("Sidecar", "egress lock-down (outboundTrafficPolicy REGISTRY_ONLY)",
			sidecarGone+"the egress lock-down REGISTRY_ONLY would silently vanish and calls to hosts outside the service registry would go out"),
		signals.FeatureSidecarEgressHosts: sc("Sidecar", "egress host scoping (Sidecar egress hosts)",
			sidecarGone+"its egress host list would silently vanish and every service of the mesh would be in scope"),
		signals.FeatureSidecarIngress: sc("Sidecar", "Sidecar ingress listeners",
			sidecarGone+"its ingress listeners (ports, default endpoints, TLS the sidecar terminates) would silently vanish"),
		signals.FeatureL7DenyIgnored: sc("AuthorizationPolicy", "an L7 DENY rule",
			"ztunnel cannot match L7 attributes and skips a selector-attached DENY rule that matches only on them, so without a sidecar it would deny nothing: "+
				"what it denies now would be allowed (istio#61126); attach it to a waypoint with targetRefs to move"),
		signals.FeatureAuditSelector: sc("AuthorizationPolicy", "request auditing (AUDIT)",
			"ztunnel does not support the AUDIT action and ignores the policy: the requests it marks would no longer be audited; attach it to a waypoint with targetRefs to move"),
		signals.FeatureExtAuthzSelector: sc("AuthorizationPolicy", "external authorization (CUSTOM)",
			"ztunnel does not support the CUSTOM action and ignores the policy: the external authorizer would never be asked, so what it denies would be allowed; "+
				"attach it to a waypoint with targetRefs to move"),
		signals.FeatureCaptureAnnotations: {signals.KindPodAnnotations, v1alpha1.ModeSidecar, RuleFeatureSidecar,
			"keeps sidecar: the pod template's annotations obj set sidecar traffic capture settings; " +
				"ambient has no per-port or per-range capture settings: the traffic these annotations keep out of the mesh would go through ztunnel " +
				"(plaintext callers of excluded inbound ports are refused under STRICT mTLS) and what they leave uncaptured would be captured; remove them to move"},
		signals.FeaturePeerAuthDisable: sc("PeerAuthentication", "plaintext (mTLS DISABLE)",
			"ambient does not support mTLS mode DISABLE and treats it as PERMISSIVE: ztunnel would still use mTLS between meshed workloads"),
		signals.FeatureWorkloadEntry: sc("WorkloadEntry", "a VM endpoint", "VM workloads (WorkloadEntry) are not supported in ambient"),
		signals.FeatureSpireCA: {"", v1alpha1.ModeSidecar, RuleFeatureSidecar,
			"keeps sidecar: the mesh uses SPIRE as its CA; SPIRE as the mesh CA is not supported in ambient"},
		signals.FeatureL7AuthzSelector: blk("AuthorizationPolicy", "selector-based L7 authorization",
			"ztunnel cannot evaluate L7 rules and enforces a selector-attached L7 AuthorizationPolicy as DENY-all; attach it to a waypoint with targetRefs first"),
		signals.FeatureL7AllowNarrowed: blk("AuthorizationPolicy", "selector-based L7 authorization",
			"ztunnel drops the rules with L7 attributes from a selector-attached ALLOW policy, so it would deny what they allow and allow only what its L4 rules allow; "+
				"attach it to a waypoint with targetRefs first"),
		signals.FeatureL7DenyBroadened: blk("AuthorizationPolicy", "an L7 DENY rule with L4 attributes",
			"ztunnel enforces a selector-attached DENY rule without its L7 attributes, so it would deny every request its L4 attributes match, "+
				"whatever the method, path or header; attach it to a waypoint with targetRefs first"),
	}
	if len(FeatureTable) != len(signals.AllFeatures) {
		t.Errorf("feature table has %d rows, signals defines %d features", len(FeatureTable), len(signals.AllFeatures))
	}
	for _, f := range signals.AllFeatures {
		if _, ok := Row(f); !ok {
			t.Errorf("feature %s has no row in FeatureTable", f)
		}
	}
	for _, row := range FeatureTable {
		w, ok := cases[row.Feature]
		if !ok {
			t.Errorf("row %s has no test case", row.Feature)
			continue
		}
		t.Run(string(row.Feature), func(t *testing.T) {
			in := baseInput(p)
			if row.Feature == signals.FeatureSpireCA {
				in.Capabilities.SpireCA = true
			} else {
				in.Features = signals.Features{fref(row.Feature, w.kind, "shop", "obj")}
			}
			d := Decide(in)
			if d.Mode != w.mode || d.Rule != w.rule || d.Reason != w.reason {
				t.Errorf("got %s by %s: %q\nwant %s by %s: %q", d.Mode, d.Rule, d.Reason, w.mode, w.rule, w.reason)
			}
			if !row.Need.Serves(d.Mode) {
				t.Errorf("decided %s, which does not meet need %s", d.Mode, row.Need)
			}
			waypoint := ""
			if w.mode == v1alpha1.ModeAmbientWaypoint {
				waypoint = DefaultWaypoint
			}
			if diff := cmp.Diff(istioLabels(w.mode, waypoint), d.Labels); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			// What a sidecarless mode drops without needing anything is a
			// warning (sidecarlessWarnings), not a need.
			warn := sidecarlessWarnings(in.Features, d.Mode)
			if droppedSidecarless[row.Feature] != (len(warn) == 1) {
				t.Errorf("sidecarless warnings %q for a feature dropped sidecarless: %v", warn, droppedSidecarless[row.Feature])
			}
		})
	}
}

func TestFeatureNeedsCombine(t *testing.T) {
	p := mustCompile(t, "combine", 1, v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeAmbient)})
	in := baseInput(p)
	in.Features = signals.Features{
		fref(signals.FeatureCiliumL7Policy, "CiliumNetworkPolicy", "shop", "l7"),
		fref(signals.FeatureHTTPRouting, "VirtualService", "shop", "vs"),
	}
	d := Decide(in)
	want := "keeps sidecar: VirtualService shop/vs needs L7 processing and CiliumNetworkPolicy shop/l7 needs Cilium's proxy; no sidecarless mode serves both (policy-default chose ambient)"
	if d.Mode != v1alpha1.ModeSidecar || d.Rule != RuleFeatureWaypoint || d.Reason != want {
		t.Errorf("got %s by %s: %q", d.Mode, d.Rule, d.Reason)
	}
	if len(d.Warnings) != 1 || !strings.HasPrefix(d.Warnings[0], "unmet: CiliumNetworkPolicy shop/l7") {
		t.Errorf("warnings %q", d.Warnings)
	}
	// The strongest need wins: a sidecar-only feature beats the waypoint need.
	in.Features = append(in.Features, fref(signals.FeatureWasmPlugin, "WasmPlugin", "shop", "wasm"))
	if d := Decide(in); d.Rule != RuleFeatureSidecar || !strings.Contains(d.Reason, "WasmPlugin shop/wasm") {
		t.Errorf("got %s by %s: %q; want the WasmPlugin to decide", d.Mode, d.Rule, d.Reason)
	}
}

// TestDenyAllTrap indexes a real AuthorizationPolicy object with L7 rules and a
// selector, and shows ambient is blocked with a reason naming the policy; the
// same policy attached with targetRefs gets a waypoint instead.
func TestDenyAllTrap(t *testing.T) {
	p := mustCompile(t, "trap", 1, v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeSidecar)})
	ix := signals.NewIndex("")
	ix.UpsertService("payments", "api", map[string]string{"app": "api"})
	ap := &securityv1.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "only-get"},
	}
	ap.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "api"}}
	ap.Spec.Rules = []*securityapi.Rule{{To: []*securityapi.Rule_To{{Operation: &securityapi.Operation{Methods: []string{"GET"}}}}}}
	if err := ix.Upsert(ap); err != nil {
		t.Fatal(err)
	}
	in := baseInput(p)
	in.Namespace = Namespace{Name: "payments", Annotations: map[string]string{v1alpha1.AnnotationMode: "ambient"}}
	in.Workload.Namespace = "payments"
	in.Workload.Labels = map[string]string{"app": "api"}
	in.Features = ix.FeaturesFor("payments", in.Workload.Labels)
	d := Decide(in)
	if d.Mode != v1alpha1.ModeSidecar || d.Rule != RuleDenyAllTrap {
		t.Fatalf("got %s by %s (%q); want sidecar by %s", d.Mode, d.Rule, d.Reason, RuleDenyAllTrap)
	}
	if !strings.Contains(d.Reason, "AuthorizationPolicy payments/only-get") || !strings.Contains(d.Reason, "DENY-all") {
		t.Errorf("reason %q does not name the policy and the DENY-all trap", d.Reason)
	}
	if d.Labels[LabelIstioDataplaneMode] == "ambient" || d.Labels[LabelIstioInject] != "true" {
		t.Errorf("labels %v would put the pod in ambient", d.Labels)
	}
	// The same rules attached to the Service with targetRefs: no trap, a waypoint.
	ap = ap.DeepCopy()
	ap.Spec.Selector = nil
	ap.Spec.TargetRefs = []*typeapi.PolicyTargetReference{{Kind: "Service", Name: "api"}}
	if err := ix.Upsert(ap); err != nil {
		t.Fatal(err)
	}
	in.Features = ix.FeaturesFor("payments", in.Workload.Labels)
	d = Decide(in)
	if d.Mode != v1alpha1.ModeAmbientWaypoint || d.Rule != RuleFeatureWaypoint {
		t.Errorf("with targetRefs: got %s by %s (%q); want ambient-waypoint by %s", d.Mode, d.Rule, d.Reason, RuleFeatureWaypoint)
	}
}
