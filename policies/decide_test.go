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
		DefaultMode: v1alpha1.ModeAmbient,
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
		warnings []string
		waypoint string
	}
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
			in.Namespace.Labels["istio-injection"] = "enabled"
		}, want{mode: v1alpha1.ModeSidecar, rule: "rule:legacy-stays",
			reason: "rule legacy-stays of DataplanePolicy prec keeps the current mode sidecar",
			labels: istioLabels(v1alpha1.ModeSidecar, "")}},
		{"5 current-mode rule without a known mode does not match", func(in *Input) {
			in.Workload.Labels["tier"] = "legacy"
		}, want{mode: v1alpha1.ModeAmbient, rule: RuleDefault,
			reason: "default mode of DataplanePolicy prec",
			labels: istioLabels(v1alpha1.ModeAmbient, "")}},
		{"6 no Cilium: the rule's cilium falls back", func(in *Input) {
			in.Workload.Labels["tier"] = "db"
			in.Capabilities.Cilium = false
		}, want{mode: v1alpha1.ModeSidecar, rule: RuleCapabilityFallback,
			reason: "falls back to sidecar from cilium (rule:db-on-cilium): the cluster has no Cilium agent",
			labels: istioLabels(v1alpha1.ModeSidecar, "")}},
		{"6 old kernel: cilium falls back", func(in *Input) {
			in.Workload.Labels["tier"] = "db"
			in.Capabilities.Nodes.Kernel = signals.KernelVersion{Major: 4, Minor: 19, Patch: 0}
		}, want{mode: v1alpha1.ModeSidecar, rule: RuleCapabilityFallback,
			reason: "falls back to sidecar from cilium (rule:db-on-cilium): the nodes' kernel 4.19.0 is older than 5.10.0",
			labels: istioLabels(v1alpha1.ModeSidecar, "")}},
		{"6 no eBPF: cilium falls back", func(in *Input) {
			in.Workload.Labels["tier"] = "db"
			in.Capabilities.Nodes.EBPF = signals.EBPFNone
		}, want{mode: v1alpha1.ModeSidecar, rule: RuleCapabilityFallback,
			reason: "falls back to sidecar from cilium (rule:db-on-cilium): the nodes' eBPF level none is below basic",
			labels: istioLabels(v1alpha1.ModeSidecar, "")}},
		{"6 no ztunnel: the default ambient falls back", func(in *Input) { in.Capabilities.Ztunnel = false },
			want{mode: v1alpha1.ModeSidecar, rule: RuleCapabilityFallback,
				reason: "falls back to sidecar from ambient (policy-default): the cluster has no ztunnel",
				labels: istioLabels(v1alpha1.ModeSidecar, "")}},
		{"6 capability applies to the pod's own ask too", func(in *Input) {
			in.Capabilities.Ztunnel = false
			in.Workload.Annotations = map[string]string{v1alpha1.AnnotationMode: "ambient"}
		}, want{mode: v1alpha1.ModeSidecar, rule: RuleCapabilityFallback,
			reason: "falls back to sidecar from ambient (pod-annotation): the cluster has no ztunnel",
			labels: istioLabels(v1alpha1.ModeSidecar, "")}},
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
				excluded: d.Excluded, warnings: d.Warnings, waypoint: d.Waypoint}
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
	p := mustCompile(t, "lk", 1, v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.ModeSidecar, MeshProvider: v1alpha1.MeshProviderLinkerd})
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
	p := mustCompile(t, "err", 1, v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.ModeSidecar,
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
	if d.Mode != v1alpha1.ModeSidecar || d.Rule != RuleDefault || d.Policy != "builtin/0" {
		t.Errorf("got %s by %s of %s; want sidecar by %s of builtin/0", d.Mode, d.Rule, d.Policy, RuleDefault)
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
