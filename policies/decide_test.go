package policies

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// precedencePolicy: default ambient, one rule choosing cilium for tier=db, one
// keeping the current mode without traffic for tier=legacy, and app teams in
// namespaces labelled team=restricted may ask only for sidecar or ambient.
func precedencePolicy(t testing.TB) *Policy {
	return mustCompile(t, "prec", 7, v1alpha1.DataplanePolicySpec{
		DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeAmbient),
		AllowedModes: []v1alpha1.AllowedModes{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "restricted"}},
			Modes:             []v1alpha1.Mode{v1alpha1.ModeSidecar, v1alpha1.ModeAmbient},
		}},
		Rules: []v1alpha1.Rule{
			{Name: "db-on-cilium", When: `"tier" in workload.labels && workload.labels["tier"] == "db"`, Mode: "cilium"},
			{Name: "legacy-stays", When: `workload.labels.?tier.orValue("") == "legacy" && !traffic.available`, Mode: v1alpha1.RuleModeCurrent},
		},
	})
}

func TestDecidePrecedence(t *testing.T) {
	p := precedencePolicy(t)
	type want struct {
		mode     v1alpha1.Mode
		rule     string
		reason   string
		labels   map[string]string
		remove   []string
		excluded bool
		observed bool
		warnings []string
		waypoint string
	}
	own := func(m v1alpha1.Mode) map[string]string { return map[string]string{v1alpha1.LabelDataplane: string(m)} }
	cases := []struct {
		name string
		edit func(in *Input)
		want want
	}{
		{"1 hostNetwork pod", func(in *Input) {
			in.Workload.HostNetwork = true
			in.Workload.Annotations = map[string]string{v1alpha1.AnnotationMode: "sidecar"}
		}, want{mode: v1alpha1.ModeNone, rule: RuleExcludeHostNetwork, excluded: true,
			reason: "hostNetwork pod: no dataplane can intercept its traffic",
			labels: map[string]string{v1alpha1.LabelDataplane: "none"}}},
		{"1 kube-system", func(in *Input) { in.Namespace.Name = "kube-system"; in.Workload.Namespace = "kube-system" },
			want{mode: v1alpha1.ModeNone, rule: RuleExcludeNamespace, excluded: true,
				reason: "namespace kube-system belongs to Kubernetes or a mesh; its pods are never decided",
				labels: map[string]string{v1alpha1.LabelDataplane: "none"}}},
		{"1 istio-system", func(in *Input) { in.Namespace.Name = "istio-system" },
			want{mode: v1alpha1.ModeNone, rule: RuleExcludeNamespace, excluded: true,
				reason: "namespace istio-system belongs to Kubernetes or a mesh; its pods are never decided",
				labels: map[string]string{v1alpha1.LabelDataplane: "none"}}},
		{"1 mesh namespace from capabilities", func(in *Input) {
			in.Namespace.Name = "mesh-ops"
			in.Capabilities.MeshNamespaces = []string{"mesh-ops"}
		}, want{mode: v1alpha1.ModeNone, rule: RuleExcludeNamespace, excluded: true,
			reason: "namespace mesh-ops belongs to Kubernetes or a mesh; its pods are never decided",
			labels: map[string]string{v1alpha1.LabelDataplane: "none"}}},
		{"1 already injected (istio)", func(in *Input) {
			in.Workload.Annotations = map[string]string{AnnotationIstioStatus: `{"containers":["istio-proxy"]}`, v1alpha1.AnnotationMode: "ambient"}
		}, want{mode: v1alpha1.ModeSidecar, rule: RuleExcludeInjected, excluded: true,
			reason: "pod already carries an injected sidecar (sidecar.istio.io/status or linkerd.io/proxy-version)",
			labels: map[string]string{v1alpha1.LabelDataplane: "sidecar"}}},
		{"1 already injected (linkerd)", func(in *Input) {
			in.Workload.Annotations = map[string]string{AnnotationLinkerdProxy: "edge-25.1.1"}
		}, want{mode: v1alpha1.ModeSidecar, rule: RuleExcludeInjected, excluded: true,
			reason: "pod already carries an injected sidecar (sidecar.istio.io/status or linkerd.io/proxy-version)",
			labels: map[string]string{v1alpha1.LabelDataplane: "sidecar"}}},
		{"2 pod annotation beats namespace annotation and rules", func(in *Input) {
			in.Workload.Annotations = map[string]string{v1alpha1.AnnotationMode: "ambient-waypoint"}
			in.Workload.Labels["tier"] = "db"
			in.Namespace.Annotations = map[string]string{v1alpha1.AnnotationMode: "sidecar"}
		}, want{mode: v1alpha1.ModeAmbientWaypoint, rule: RulePodAnnotation, waypoint: "waypoint",
			reason: "pod annotation meshshift.io/mode asks for ambient-waypoint",
			labels: istioLabels(v1alpha1.ModeAmbientWaypoint, "waypoint")}},
		{"2 pod annotation beats features, with a warning", func(in *Input) {
			in.Workload.Annotations = map[string]string{v1alpha1.AnnotationMode: "ambient"}
			in.Features = signals.Features{fref(signals.FeatureEnvoyFilter, "EnvoyFilter", "shop", "lua-auth")}
		}, want{mode: v1alpha1.ModeAmbient, rule: RulePodAnnotation,
			reason:   "pod annotation meshshift.io/mode asks for ambient",
			labels:   istioLabels(v1alpha1.ModeAmbient, ""),
			warnings: []string{"pod asks for ambient but EnvoyFilter shop/lua-auth selects this workload for Envoy configuration patches; EnvoyFilter is not supported on waypoints"}}},
		{"2 pod annotation not allowed by the namespace's policy", func(in *Input) {
			in.Namespace.Labels["team"] = "restricted"
			in.Workload.Annotations = map[string]string{v1alpha1.AnnotationMode: "cilium"}
		}, want{mode: v1alpha1.ModeAmbient, rule: RuleDefault,
			reason:   "default mode of DataplanePolicy prec",
			labels:   istioLabels(v1alpha1.ModeAmbient, ""),
			warnings: []string{"ignores the pod's meshshift.io/mode=cilium: DataplanePolicy prec allows only sidecar, ambient in namespace shop"}}},
		{"2 pod annotation with an unknown mode", func(in *Input) {
			in.Workload.Annotations = map[string]string{v1alpha1.AnnotationMode: "Ambient"}
		}, want{mode: v1alpha1.ModeAmbient, rule: RuleDefault,
			reason:   "default mode of DataplanePolicy prec",
			labels:   istioLabels(v1alpha1.ModeAmbient, ""),
			warnings: []string{`ignores the pod's metadata.annotations[meshshift.io/mode]: Unsupported value: "Ambient": supported values: "sidecar", "ambient", "ambient-waypoint", "cilium", "none"`}}},
		{"3 feature needing a sidecar beats the namespace annotation", func(in *Input) {
			in.Namespace.Annotations = map[string]string{v1alpha1.AnnotationMode: "ambient"}
			in.Features = signals.Features{fref(signals.FeatureEnvoyFilter, "EnvoyFilter", "payments", "lua-auth")}
		}, want{mode: v1alpha1.ModeSidecar, rule: RuleFeatureSidecar,
			reason: "keeps sidecar: EnvoyFilter payments/lua-auth selects this workload for Envoy configuration patches; EnvoyFilter is not supported on waypoints",
			labels: istioLabels(v1alpha1.ModeSidecar, "")}},
		{"3 DENY-all trap beats everything below it", func(in *Input) {
			in.Workload.Labels["tier"] = "db"
			in.Features = signals.Features{
				fref(signals.FeatureHTTPRouting, "VirtualService", "shop", "web"),
				fref(signals.FeatureL7AuthzSelector, "AuthorizationPolicy", "shop", "only-get"),
			}
		}, want{mode: v1alpha1.ModeSidecar, rule: RuleDenyAllTrap,
			reason: "keeps sidecar: AuthorizationPolicy shop/only-get selects this workload for selector-based L7 authorization; " +
				"ztunnel cannot evaluate L7 rules and enforces a selector-attached L7 AuthorizationPolicy as DENY-all; attach it to a waypoint with targetRefs first",
			labels: istioLabels(v1alpha1.ModeSidecar, "")}},
		{"3 waypoint need upgrades the namespace's ambient", func(in *Input) {
			in.Namespace.Annotations = map[string]string{v1alpha1.AnnotationMode: "ambient"}
			in.Features = signals.Features{fref(signals.FeatureHTTPRouting, "VirtualService", "shop", "reviews")}
		}, want{mode: v1alpha1.ModeAmbientWaypoint, rule: RuleFeatureWaypoint, waypoint: "waypoint",
			reason: "needs a waypoint: VirtualService shop/reviews selects this workload for HTTP routing; ztunnel serves L4 only; HTTP routing needs a waypoint or a sidecar (namespace-annotation chose ambient)",
			labels: istioLabels(v1alpha1.ModeAmbientWaypoint, "waypoint")}},
		{"3 waypoint need turns a rule's cilium into sidecar", func(in *Input) {
			in.Workload.Labels["tier"] = "db"
			in.Features = signals.Features{fref(signals.FeatureRequestAuthn, "RequestAuthentication", "shop", "jwt")}
		}, want{mode: v1alpha1.ModeSidecar, rule: RuleFeatureWaypoint,
			reason: "needs a sidecar: RequestAuthentication shop/jwt selects this workload for JWT authentication; RequestAuthentication is enforced by a waypoint or a sidecar (rule:db-on-cilium chose cilium)",
			labels: istioLabels(v1alpha1.ModeSidecar, "")}},
		{"3 waypoint need already met by the namespace's sidecar", func(in *Input) {
			in.Namespace.Annotations = map[string]string{v1alpha1.AnnotationMode: "sidecar"}
			in.Features = signals.Features{fref(signals.FeatureHTTPRouting, "VirtualService", "shop", "reviews")}
		}, want{mode: v1alpha1.ModeSidecar, rule: RuleNamespaceAnnotation,
			reason: "namespace annotation meshshift.io/mode asks for sidecar",
			labels: istioLabels(v1alpha1.ModeSidecar, "")}},
		{"4 namespace annotation beats rules", func(in *Input) {
			in.Workload.Labels["tier"] = "db"
			in.Namespace.Annotations = map[string]string{v1alpha1.AnnotationMode: "none"}
		}, want{mode: v1alpha1.ModeNone, rule: RuleNamespaceAnnotation,
			reason: "namespace annotation meshshift.io/mode asks for none",
			labels: istioLabels(v1alpha1.ModeNone, "")}},
		{"4 unknown namespace annotation falls through", func(in *Input) {
			in.Namespace.Annotations = map[string]string{v1alpha1.AnnotationMode: "waypoint"}
		}, want{mode: v1alpha1.ModeAmbient, rule: RuleDefault,
			reason:   "default mode of DataplanePolicy prec",
			labels:   istioLabels(v1alpha1.ModeAmbient, ""),
			warnings: []string{`ignores the namespace's namespace.annotations[meshshift.io/mode]: Unsupported value: "waypoint": supported values: "sidecar", "ambient", "ambient-waypoint", "cilium", "none"`}}},
		{"5 rule decides", func(in *Input) { in.Workload.Labels["tier"] = "db" },
			want{mode: v1alpha1.ModeCilium, rule: "rule:db-on-cilium",
				reason: "rule db-on-cilium of DataplanePolicy prec chose cilium",
				labels: istioLabels(v1alpha1.ModeCilium, "")}},
		{"5 rule keeps the current mode", func(in *Input) {
			in.Workload.Labels["tier"] = "legacy"
		}, want{mode: v1alpha1.ModeSidecar, rule: "rule:legacy-stays", observed: true,
			reason: "rule legacy-stays of DataplanePolicy prec keeps the current mode sidecar",
			labels: own(v1alpha1.ModeSidecar)}},
		{"5 current-mode rule keeps an unmeshed workload out of the mesh", func(in *Input) {
			in.Workload.Labels["tier"] = "legacy"
			delete(in.Namespace.Labels, LabelIstioInjection)
		}, want{mode: v1alpha1.ModeNone, rule: "rule:legacy-stays", observed: true,
			reason: "rule legacy-stays of DataplanePolicy prec keeps the current mode none",
			labels: own(v1alpha1.ModeNone)}},
		{"6 no Cilium: the rule's cilium keeps the current sidecar", func(in *Input) {
			in.Workload.Labels["tier"] = "db"
			in.Capabilities.Cilium = false
		}, want{mode: v1alpha1.ModeSidecar, rule: RuleCapabilityFallback, observed: true,
			reason: "keeps its current mode sidecar: rule:db-on-cilium chose cilium, but the cluster has no Cilium agent",
			labels: own(v1alpha1.ModeSidecar)}},
		{"6 old kernel: cilium keeps the current sidecar", func(in *Input) {
			in.Workload.Labels["tier"] = "db"
			in.Capabilities.Nodes.Kernel = signals.KernelVersion{Major: 4, Minor: 19, Patch: 0}
		}, want{mode: v1alpha1.ModeSidecar, rule: RuleCapabilityFallback, observed: true,
			reason: "keeps its current mode sidecar: rule:db-on-cilium chose cilium, but the nodes' kernel 4.19.0 is older than 5.10.0",
			labels: own(v1alpha1.ModeSidecar)}},
		{"6 no eBPF: cilium keeps the current sidecar", func(in *Input) {
			in.Workload.Labels["tier"] = "db"
			in.Capabilities.Nodes.EBPF = signals.EBPFNone
		}, want{mode: v1alpha1.ModeSidecar, rule: RuleCapabilityFallback, observed: true,
			reason: "keeps its current mode sidecar: rule:db-on-cilium chose cilium, but the nodes' eBPF level none is below basic",
			labels: own(v1alpha1.ModeSidecar)}},
		{"6 no ztunnel: the default ambient keeps the current sidecar", func(in *Input) { in.Capabilities.Ztunnel = false },
			want{mode: v1alpha1.ModeSidecar, rule: RuleCapabilityFallback, observed: true,
				reason: "keeps its current mode sidecar: policy-default chose ambient, but the cluster has no ztunnel",
				labels: own(v1alpha1.ModeSidecar)}},
		{"6 no ztunnel: an unmeshed workload never gets a sidecar by fallback", func(in *Input) {
			in.Capabilities.Ztunnel = false
			delete(in.Namespace.Labels, LabelIstioInjection)
		}, want{mode: v1alpha1.ModeNone, rule: RuleCapabilityFallback, observed: true,
			reason: "keeps its current mode none: policy-default chose ambient, but the cluster has no ztunnel",
			labels: own(v1alpha1.ModeNone)}},
		{"6 no Cilium: an ambient workload stays ambient, no proxy added", func(in *Input) {
			in.Workload.Labels["tier"] = "db"
			in.Capabilities.Cilium = false
			in.Namespace.Labels = map[string]string{LabelIstioDataplaneMode: "ambient"}
		}, want{mode: v1alpha1.ModeAmbient, rule: RuleCapabilityFallback, observed: true,
			reason: "keeps its current mode ambient: rule:db-on-cilium chose cilium, but the cluster has no Cilium agent",
			labels: own(v1alpha1.ModeAmbient)}},
		{"6 capability applies to the pod's own ask too", func(in *Input) {
			in.Capabilities.Ztunnel = false
			in.Workload.Annotations = map[string]string{v1alpha1.AnnotationMode: "ambient"}
		}, want{mode: v1alpha1.ModeSidecar, rule: RuleCapabilityFallback, observed: true,
			reason: "keeps its current mode sidecar: pod-annotation chose ambient, but the cluster has no ztunnel",
			labels: own(v1alpha1.ModeSidecar)}},
		{"6 nodes: required affinity excludes every ztunnel node", func(in *Input) {
			in.Capabilities.NodesKnown = true
			in.Capabilities.ZtunnelNodes = []map[string]string{{"pool": "general"}}
			in.Workload.Nodes = signals.NodeRequirement{Selector: map[string]string{"pool": "gpu"}}
		}, want{mode: v1alpha1.ModeSidecar, rule: RuleNodeUnserved, observed: true,
			reason: "keeps its current mode sidecar: policy-default chose ambient, but its node selector or required node affinity excludes every node where ztunnel runs",
			labels: own(v1alpha1.ModeSidecar)}},
		{"6 nodes: one admitted node runs ztunnel", func(in *Input) {
			in.Capabilities.NodesKnown = true
			in.Capabilities.ZtunnelNodes = []map[string]string{{"pool": "general"}, {"pool": "gpu"}}
			in.Workload.Nodes = signals.NodeRequirement{Terms: []signals.NodeTerm{{Expressions: []signals.NodeExpression{{Key: "pool", Operator: "In", Values: []string{"gpu"}}}}}}
		}, want{mode: v1alpha1.ModeAmbient, rule: RuleDefault,
			reason: "default mode of DataplanePolicy prec",
			labels: istioLabels(v1alpha1.ModeAmbient, "")}},
		{"1 Windows-only pod is excluded", func(in *Input) {
			in.Workload.Nodes = signals.NodeRequirement{Selector: map[string]string{signals.LabelNodeOS: "windows"}}
			in.Workload.Annotations = map[string]string{v1alpha1.AnnotationMode: "ambient"}
		}, want{mode: v1alpha1.ModeNone, rule: RuleExcludeWindows, excluded: true,
			reason: "the pod runs only on Windows nodes (kubernetes.io/os=windows), which no sidecarless dataplane serves and meshshift does not decide",
			labels: own(v1alpha1.ModeNone)}},
		{"1 opt-out: istio.io/dataplane-mode=none is decided none", func(in *Input) {
			in.Namespace.Labels = map[string]string{LabelIstioDataplaneMode: "ambient"}
			in.Namespace.Annotations = map[string]string{v1alpha1.AnnotationMode: "ambient"}
			in.Workload.Labels[LabelIstioDataplaneMode] = "none"
		}, want{mode: v1alpha1.ModeNone, rule: RuleOptOut, observed: true,
			reason: "keeps its current mode none: the pod template opts out of ambient with istio.io/dataplane-mode=none (namespace-annotation chose ambient)",
			labels: own(v1alpha1.ModeNone)}},
		{"1 opt-out where the policy forbids none: kept, with a warning", func(in *Input) {
			in.Namespace.Labels = map[string]string{"team": "restricted"}
			in.Workload.Labels[LabelIstioDataplaneMode] = "none"
		}, want{mode: v1alpha1.ModeNone, rule: RuleOptOut, observed: true,
			reason:   "keeps its current mode none: the pod template opts out of ambient with istio.io/dataplane-mode=none (policy-default chose ambient)",
			labels:   own(v1alpha1.ModeNone),
			warnings: []string{"the pod template opts out of the mesh, but DataplanePolicy prec allows only sidecar, ambient in namespace shop"}}},
		{"1 opt-out: sidecar.istio.io/inject=false is never decided sidecar", func(in *Input) {
			in.Workload.Labels[LabelIstioInject] = "false"
			in.Namespace.Annotations = map[string]string{v1alpha1.AnnotationMode: "sidecar"}
		}, want{mode: v1alpha1.ModeNone, rule: RuleOptOut, observed: true,
			reason: "keeps its current mode none: the pod template opts out of the sidecar with sidecar.istio.io/inject=false (namespace-annotation chose sidecar)",
			labels: own(v1alpha1.ModeNone)}},
		{"1 opt-out: sidecar.istio.io/inject=false may still go sidecarless", func(in *Input) {
			in.Workload.Labels[LabelIstioInject] = "false"
		}, want{mode: v1alpha1.ModeAmbient, rule: RuleDefault,
			reason: "default mode of DataplanePolicy prec",
			labels: istioLabels(v1alpha1.ModeAmbient, "")}},
		{"3 a feature keeps no sidecar for an opted-out pod", func(in *Input) {
			in.Workload.Labels[LabelIstioInject] = "false"
			in.Features = signals.Features{fref(signals.FeatureEnvoyFilter, "EnvoyFilter", "shop", "lua")}
		}, want{mode: v1alpha1.ModeNone, rule: RuleOptOut, observed: true,
			reason: "keeps its current mode none: the pod template opts out of the sidecar with sidecar.istio.io/inject=false (feature-requires-sidecar chose sidecar)",
			labels: own(v1alpha1.ModeNone)}},
		{"7 default", func(in *Input) {},
			want{mode: v1alpha1.ModeAmbient, rule: RuleDefault,
				reason: "default mode of DataplanePolicy prec",
				labels: istioLabels(v1alpha1.ModeAmbient, "")}},
		{"7 default removes a contradicting waypoint label", func(in *Input) {
			in.Workload.Labels[LabelIstioUseWaypoint] = "old"
		}, want{mode: v1alpha1.ModeAmbient, rule: RuleDefault,
			reason: "default mode of DataplanePolicy prec",
			labels: istioLabels(v1alpha1.ModeAmbient, ""), remove: []string{LabelIstioUseWaypoint}}},
		{"waypoint named by the namespace label", func(in *Input) {
			in.Namespace.Labels[LabelIstioUseWaypoint] = "shop-wp"
			in.Features = signals.Features{fref(signals.FeatureTimeouts, "HTTPRoute", "shop", "web")}
		}, want{mode: v1alpha1.ModeAmbientWaypoint, rule: RuleFeatureWaypoint, waypoint: "shop-wp",
			reason: "needs a waypoint: HTTPRoute shop/web selects this workload for HTTP timeouts; ztunnel serves L4 only; timeouts need a waypoint or a sidecar (policy-default chose ambient)",
			labels: istioLabels(v1alpha1.ModeAmbientWaypoint, "shop-wp")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(p)
			tc.edit(&in)
			d := Decide(in)
			got := want{mode: d.Mode, rule: d.Rule, reason: d.Reason, labels: d.Labels, remove: d.LabelsToRemove,
				excluded: d.Excluded, observed: d.Observed, warnings: d.Warnings, waypoint: d.Waypoint}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
			wantAnn := map[string]string{
				v1alpha1.AnnotationDecision: string(tc.want.mode) + "/" + tc.want.rule,
				v1alpha1.AnnotationReason:   tc.want.reason,
				v1alpha1.AnnotationPolicy:   "prec/7",
			}
			if diff := cmp.Diff(wantAnn, d.Annotations); diff != "" {
				t.Errorf("annotations (-want +got):\n%s", diff)
			}
			if d.Policy != "prec/7" {
				t.Errorf("policy %q, want prec/7", d.Policy)
			}
		})
	}
}

func TestDecideLinkerdProvider(t *testing.T) {
	p := mustCompile(t, "lk", 1, v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeSidecar), MeshProvider: v1alpha1.MeshProviderLinkerd})
	in := baseInput(p)
	d := Decide(in)
	wantLabels := map[string]string{v1alpha1.LabelDataplane: "sidecar", LabelIstioInject: "false", LabelIstioDataplaneMode: "none"}
	if diff := cmp.Diff(wantLabels, d.Labels); diff != "" {
		t.Errorf("sidecar labels (-want +got):\n%s", diff)
	}
	if got := d.Annotations[AnnotationLinkerdInject]; got != "enabled" {
		t.Errorf("linkerd.io/inject = %q, want enabled", got)
	}
	in.Namespace.Annotations = map[string]string{v1alpha1.AnnotationMode: "ambient"}
	d = Decide(in)
	if d.Mode != v1alpha1.ModeAmbient || d.Annotations[AnnotationLinkerdInject] != "disabled" {
		t.Errorf("ambient under linkerd: mode %s, linkerd.io/inject %q; want ambient, disabled", d.Mode, d.Annotations[AnnotationLinkerdInject])
	}
	if diff := cmp.Diff(istioLabels(v1alpha1.ModeAmbient, ""), d.Labels); diff != "" {
		t.Errorf("ambient labels (-want +got):\n%s", diff)
	}
}

func TestDecideRuleEvaluationErrorIsAWarning(t *testing.T) {
	p := mustCompile(t, "err", 1, v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeSidecar),
		Rules: []v1alpha1.Rule{{Name: "missing-key", When: `workload.labels["nope"] == "x"`, Mode: "ambient"}}})
	d := Decide(baseInput(p))
	if d.Mode != v1alpha1.ModeSidecar || d.Rule != RuleDefault {
		t.Fatalf("got %s by %s, want sidecar by %s", d.Mode, d.Rule, RuleDefault)
	}
	if len(d.Warnings) != 1 || d.Warnings[0] != "rule missing-key of DataplanePolicy err did not evaluate: no such key: nope" {
		t.Errorf("warnings %q", d.Warnings)
	}
}

func TestDecideNilPolicyIsBuiltin(t *testing.T) {
	d := Decide(baseInput(nil))
	if d.Mode != v1alpha1.ModeSidecar || d.Rule != RuleKeepCurrent || d.Policy != "builtin/0" || !d.Observed {
		t.Errorf("got %s by %s of %s (observed %v); want sidecar kept by %s of builtin/0, observed", d.Mode, d.Rule, d.Policy, d.Observed, RuleKeepCurrent)
	}
}

func TestDecideIsDeterministic(t *testing.T) {
	p := precedencePolicy(t)
	in := baseInput(p)
	in.Features = signals.Features{fref(signals.FeatureHTTPRouting, "VirtualService", "shop", "a"), fref(signals.FeatureRetries, "VirtualService", "shop", "a")}
	first := Decide(in)
	for range 100 {
		if d := Decide(in); !cmp.Equal(first, d) {
			t.Fatalf("decisions differ:\n%s", cmp.Diff(first, d))
		}
	}
}
