package policies

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

func TestValidateDataplanePolicy(t *testing.T) {
	long := strings.Repeat("a", MaxRuleLength+1)
	cases := []struct {
		name string
		spec v1alpha1.DataplanePolicySpec
		want []string // "<field>: <substring of the detail>"
	}{
		{"valid", v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeAmbient),
			Rules: []v1alpha1.Rule{{Name: "a", When: "traffic.requestRate > 1.0", Mode: "ambient"}}}, nil},
		{"bad default mode", v1alpha1.DataplanePolicySpec{DefaultMode: "ztunnel"},
			[]string{`spec.defaultMode: Unsupported value: "ztunnel": supported values: "sidecar", "ambient", "ambient-waypoint", "cilium", "none"`}},
		{"bad provider", v1alpha1.DataplanePolicySpec{MeshProvider: "consul"},
			[]string{`spec.meshProvider: Unsupported value: "consul": supported values: "istio", "linkerd"`}},
		{"bad selector", v1alpha1.DataplanePolicySpec{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bad key!": "x"}}},
			[]string{`spec.namespaceSelector.matchLabels: Invalid value: "bad key!"`}},
		{"non-positive traffic age", v1alpha1.DataplanePolicySpec{TrafficMaxAge: &metav1.Duration{Duration: -time.Second}},
			[]string{`spec.trafficMaxAge: Invalid value: "-1s": must be a positive duration`}},
		{"allowed modes", v1alpha1.DataplanePolicySpec{AllowedModes: []v1alpha1.AllowedModes{
			{Modes: nil}, {Modes: []v1alpha1.Mode{"ambient", "ambient", "x"}}}},
			[]string{`spec.allowedModes[0].modes: Required value: list at least one of sidecar, ambient, ambient-waypoint, cilium, none`,
				`spec.allowedModes[1].modes[1]: Duplicate value: "ambient"`,
				`spec.allowedModes[1].modes[2]: Unsupported value: "x"`}},
		{"rule names", v1alpha1.DataplanePolicySpec{Rules: []v1alpha1.Rule{
			{Name: "", When: "true", Mode: "none"}, {Name: "Big_Rule", When: "true", Mode: "none"},
			{Name: "a", When: "true", Mode: "none"}, {Name: "a", When: "true", Mode: "none"}}},
			[]string{`spec.rules[0].name: Required value`, `spec.rules[1].name: Invalid value: "Big_Rule"`, `spec.rules[3].name: Duplicate value: "a"`}},
		{"rule mode", v1alpha1.DataplanePolicySpec{Rules: []v1alpha1.Rule{{Name: "a", When: "true", Mode: "keep"}}},
			[]string{`spec.rules[0].mode: Unsupported value: "keep": supported values: "sidecar", "ambient", "ambient-waypoint", "cilium", "none", "current"`}},
		{"empty when", v1alpha1.DataplanePolicySpec{Rules: []v1alpha1.Rule{{Name: "a", When: "  ", Mode: "none"}}},
			[]string{`spec.rules[0].when: Required value`}},
		{"too long", v1alpha1.DataplanePolicySpec{Rules: []v1alpha1.Rule{{Name: "a", When: long, Mode: "none"}}},
			[]string{`spec.rules[0].when: Too long: may not be more than 4096 bytes`}},
		{"syntax error with position", v1alpha1.DataplanePolicySpec{Rules: []v1alpha1.Rule{{Name: "a", When: "traffic.requestRate >", Mode: "none"}}},
			[]string{`spec.rules[0].when: Invalid value: "traffic.requestRate >": CEL: ERROR: <input>:1:22: Syntax error`}},
		{"unknown field with position", v1alpha1.DataplanePolicySpec{Rules: []v1alpha1.Rule{{Name: "a", When: "true && workload.lables.size() > 0", Mode: "none"}}},
			[]string{`spec.rules[0].when: Invalid value: "true && workload.lables.size() > 0": CEL: ERROR: <input>:1:17: undefined field 'lables'`}},
		{"not a bool", v1alpha1.DataplanePolicySpec{Rules: []v1alpha1.Rule{{Name: "a", When: "traffic.requestRate", Mode: "none"}}},
			[]string{`spec.rules[0].when: Invalid value: "traffic.requestRate": CEL: expression must evaluate to bool, not double`}},
		{"cost too high", v1alpha1.DataplanePolicySpec{Rules: []v1alpha1.Rule{{Name: "a",
			When: `workload.labels.all(k, workload.labels.all(j, k + j != ""))`, Mode: "none"}}},
			[]string{`spec.rules[0].when: Invalid value: "workload.labels.all(k, workload.labels.all(j, k + j != \"\"))": CEL: estimated cost 54134275 exceeds the limit 100000`}},
		{"namespace is reserved", v1alpha1.DataplanePolicySpec{Rules: []v1alpha1.Rule{{Name: "a", When: `namespace.name == "x"`, Mode: "none"}}},
			[]string{`spec.rules[0].when: Invalid value: "namespace.name == \"x\"": CEL: ERROR: <input>:1:1: reserved identifier: namespace`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidateDataplanePolicy(&v1alpha1.DataplanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: tc.spec})
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tc.want), errs.ToAggregate())
			}
			for i, w := range tc.want {
				if got := errs[i].Error(); !strings.HasPrefix(got, w) {
					t.Errorf("error %d:\n got %q\nwant prefix %q", i, got, w)
				}
			}
			p, cerrs := Compile(&v1alpha1.DataplanePolicy{Spec: tc.spec})
			if (p == nil) != (len(tc.want) > 0) || len(cerrs) != len(tc.want) {
				t.Errorf("Compile returned policy %v with %d errors; want errors %d", p != nil, len(cerrs), len(tc.want))
			}
		})
	}
	if errs := ValidateDataplanePolicy(nil); len(errs) != 1 || errs[0].Type != field.ErrorTypeRequired {
		t.Errorf("nil policy: %v", errs)
	}
}

func TestRuntimeCostLimitStopsARule(t *testing.T) {
	// A cheap-looking estimate can still run long on real data; the runtime
	// limit stops it and the rule counts as not matching.
	p := mustCompile(t, "cost", 1, v1alpha1.DataplanePolicySpec{Rules: []v1alpha1.Rule{{Name: "heavy",
		When: `namespaceObject.name == "shop" && workload.labels.all(k, k.size() > 0)`, Mode: "none"}}})
	in := baseInput(p)
	in.Workload.Labels = map[string]string{}
	for i := range 40000 {
		in.Workload.Labels[fmt.Sprintf("k%d", i)] = "v"
	}
	d := Decide(in)
	if d.Rule != RuleKeepCurrent || len(d.Warnings) != 1 || !strings.Contains(d.Warnings[0], "actual cost limit exceeded") {
		t.Errorf("got %s, warnings %q; want the default (keep-current) with a cost warning", d.Rule, d.Warnings)
	}
}

func TestSelectAndAllows(t *testing.T) {
	catchAll := mustCompile(t, "all", 1, v1alpha1.DataplanePolicySpec{})
	teamA := mustCompile(t, "team-a", 1, v1alpha1.DataplanePolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}},
		AllowedModes: []v1alpha1.AllowedModes{
			{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}}, Modes: []v1alpha1.Mode{"sidecar"}},
			{Modes: []v1alpha1.Mode{"sidecar", "ambient"}},
		},
	})
	zeta := mustCompile(t, "zeta", 1, v1alpha1.DataplanePolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}})
	ps := []*Policy{zeta, catchAll, teamA}
	if got := Select(ps, map[string]string{"team": "a"}); got != teamA {
		t.Errorf("team a: got %s, want team-a (the first specific policy by name)", got.Name())
	}
	if got := Select(ps, map[string]string{"team": "b"}); got != catchAll {
		t.Errorf("team b: got %s, want all", got.Name())
	}
	if got := Select([]*Policy{teamA}, nil); got != Builtin() {
		t.Errorf("no match: got %s, want builtin", got.Name())
	}
	prod := map[string]string{"team": "a", "tier": "prod"}
	if teamA.Allows(prod, v1alpha1.ModeAmbient) || !teamA.Allows(prod, v1alpha1.ModeSidecar) {
		t.Error("prod namespaces may ask for sidecar only")
	}
	if !teamA.Allows(map[string]string{"team": "a"}, v1alpha1.ModeAmbient) || teamA.Allows(nil, v1alpha1.ModeCilium) {
		t.Error("other namespaces may ask for sidecar or ambient")
	}
	if diff := cmp.Diff([]v1alpha1.Mode{"sidecar", "ambient"}, teamA.AllowedModes(nil)); diff != "" {
		t.Error(diff)
	}
	if !catchAll.Allows(nil, v1alpha1.ModeNone) {
		t.Error("without allowedModes every mode is allowed")
	}
}

func TestDefaultPolicy(t *testing.T) {
	dp, err := DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	dp.Generation = 1
	p, errs := Compile(dp)
	if len(errs) > 0 {
		t.Fatalf("the shipped default policy does not compile: %v", errs.ToAggregate())
	}
	fresh := func(tr signals.WorkloadTraffic) signals.WorkloadTraffic {
		tr.SampleTime = testNow.Add(-30 * time.Second)
		return tr
	}
	cases := []struct {
		name     string
		edit     func(in *Input)
		wantMode v1alpha1.Mode
		wantRule string
	}{
		{"no traffic keeps a sidecar namespace on sidecar", func(in *Input) { in.Namespace.Labels["istio-injection"] = "enabled" },
			v1alpha1.ModeSidecar, "rule:no-traffic-keep-current"},
		{"no traffic keeps an ambient namespace on ambient", func(in *Input) { in.Namespace.Labels = map[string]string{"istio.io/dataplane-mode": "ambient"} },
			v1alpha1.ModeAmbient, "rule:no-traffic-keep-current"},
		{"stale traffic is no traffic", func(in *Input) {
			in.Namespace.Labels = map[string]string{"istio.io/dataplane-mode": "ambient"}
			in.HasTraffic, in.Traffic = true, signals.WorkloadTraffic{RequestRate: 500, SampleTime: testNow.Add(-time.Hour)}
		}, v1alpha1.ModeAmbient, "rule:no-traffic-keep-current"},
		{"no traffic, no mesh label: stays out of the mesh", func(in *Input) { in.Namespace.Labels = nil }, v1alpha1.ModeNone, "rule:no-traffic-keep-current"},
		{"opaque traffic, no mesh label: stays out of the mesh", func(in *Input) {
			in.Namespace.Labels = nil
			in.HasTraffic, in.Traffic = true, fresh(signals.WorkloadTraffic{ConnectionRate: 3, Protocols: []signals.Protocol{"tls"}})
		}, v1alpha1.ModeNone, RuleKeepCurrent},
		{"high-rate L4-only on ambient already: kept", func(in *Input) {
			in.Namespace.Labels = map[string]string{"istio.io/dataplane-mode": "ambient"}
			in.HasTraffic, in.Traffic = true, fresh(signals.WorkloadTraffic{RequestRate: 800, P99Latency: 90 * time.Millisecond, Protocols: []signals.Protocol{"http1"}})
		}, v1alpha1.ModeAmbient, RuleKeepCurrent},
		{"failing workload stays", func(in *Input) {
			in.Namespace.Labels["istio-injection"] = "enabled"
			in.HasTraffic, in.Traffic = true, fresh(signals.WorkloadTraffic{RequestRate: 500, ErrorRate: 0.2, Protocols: []signals.Protocol{"tls"}})
		}, v1alpha1.ModeSidecar, "rule:failing-keep-current"},
		{"TLS passthrough goes ambient", func(in *Input) {
			in.HasTraffic, in.Traffic = true, fresh(signals.WorkloadTraffic{ConnectionRate: 3, Protocols: []signals.Protocol{"tls"}})
		}, v1alpha1.ModeAmbient, "rule:opaque-protocols-go-ambient"},
		{"server-first protocol goes ambient", func(in *Input) {
			in.HasTraffic, in.Traffic = true, fresh(signals.WorkloadTraffic{ConnectionRate: 1, Protocols: []signals.Protocol{"other"}})
		}, v1alpha1.ModeAmbient, "rule:opaque-protocols-go-ambient"},
		{"high-rate L4-only goes ambient", func(in *Input) {
			in.Features = signals.Features{fref(signals.FeatureMTLS, "PeerAuthentication", "istio-system", "default")}
			in.HasTraffic, in.Traffic = true, fresh(signals.WorkloadTraffic{RequestRate: 800, P99Latency: 90 * time.Millisecond, Protocols: []signals.Protocol{"http1"}})
		}, v1alpha1.ModeAmbient, "rule:high-rate-l4-goes-ambient"},
		{"high-rate with L7 features is not L4-only", func(in *Input) {
			in.Features = signals.Features{fref(signals.FeatureHTTPRouting, "VirtualService", "shop", "web")}
			in.HasTraffic, in.Traffic = true, fresh(signals.WorkloadTraffic{RequestRate: 800, P99Latency: 90 * time.Millisecond, Protocols: []signals.Protocol{"http1"}})
		}, v1alpha1.ModeSidecar, RuleKeepCurrent},
		{"latency-sensitive L7 gets a waypoint", func(in *Input) {
			in.Features = signals.Features{fref(signals.FeatureRetries, "VirtualService", "shop", "web")}
			in.HasTraffic, in.Traffic = true, fresh(signals.WorkloadTraffic{RequestRate: 50, P99Latency: 5 * time.Millisecond, Protocols: []signals.Protocol{"http2"}})
		}, v1alpha1.ModeAmbientWaypoint, "rule:latency-sensitive-l7-gets-waypoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(p)
			tc.edit(&in)
			d := Decide(in)
			if d.Mode != tc.wantMode || d.Rule != tc.wantRule {
				t.Errorf("got %s by %s (%q), want %s by %s", d.Mode, d.Rule, d.Reason, tc.wantMode, tc.wantRule)
			}
			if len(d.Warnings) > 0 {
				t.Errorf("warnings: %q", d.Warnings)
			}
		})
	}
}

func TestDecodePolicyRejects(t *testing.T) {
	for _, doc := range []string{
		"kind: DataplanePolicy\napiVersion: meshshift.io/v1alpha1\nspec:\n  defaultMode: sidecar\n  surprise: 1\n",
		"kind: MeshMigration\napiVersion: meshshift.io/v1alpha1\n",
		"{",
	} {
		if _, err := DecodePolicy([]byte(doc)); err == nil {
			t.Errorf("DecodePolicy(%q) accepted it", doc)
		}
	}
}

func TestStabilizer(t *testing.T) {
	p := mustCompile(t, "stable", 1, v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeSidecar),
		Rules: []v1alpha1.Rule{{Name: "busy", When: "traffic.available && !traffic.stale && traffic.requestRate > 100.0", Mode: "ambient"}}})
	s := NewStabilizer(2)
	in := baseInput(p)
	in.HasTraffic, in.Traffic = true, signals.WorkloadTraffic{RequestRate: 500, SampleTime: testNow}
	first := s.Decide(in)
	if first.Mode != v1alpha1.ModeAmbient {
		t.Fatalf("first pod: %s, want ambient", first.Mode)
	}
	// The second pod of the same ReplicaSet: traffic dropped meanwhile, the
	// pod has another name; the answer stays.
	in.Workload.Name = "web-7d9f-zzzzz"
	in.Traffic.RequestRate = 1
	if d := s.Decide(in); d.Mode != v1alpha1.ModeAmbient {
		t.Errorf("second pod of the rollout: %s, want ambient", d.Mode)
	}
	if d := Decide(in); d.Mode != v1alpha1.ModeSidecar {
		t.Fatalf("without the stabilizer the figures decide: %s, want sidecar", d.Mode)
	}
	// A new ReplicaSet (the next rollout) sees the new figures.
	in.Workload.OwnerName, in.Workload.Labels = "web-8e0a", map[string]string{"app": "web", "pod-template-hash": "8e0a"}
	if d := s.Decide(in); d.Mode != v1alpha1.ModeSidecar {
		t.Errorf("next rollout: %s, want sidecar", d.Mode)
	}
	// A real input change (namespace annotation) is seen at once.
	in.Namespace.Annotations = map[string]string{v1alpha1.AnnotationMode: "none"}
	if d := s.Decide(in); d.Mode != v1alpha1.ModeNone {
		t.Errorf("after a namespace change: %s, want none", d.Mode)
	}
	if s.Len() != 2 {
		t.Errorf("remembers %d owners, want 2", s.Len())
	}
	in.Workload.OwnerName = "third"
	s.Decide(in)
	if s.Len() != 2 {
		t.Errorf("bounded at 2, holds %d", s.Len())
	}
	s.Forget("shop", "ReplicaSet", "third")
	if s.Len() != 1 {
		t.Errorf("after Forget: %d owners, want 1", s.Len())
	}
	// Bare pods are never remembered.
	in.Workload.OwnerKind, in.Workload.OwnerName = "", ""
	s.Decide(in)
	if s.Len() != 1 {
		t.Errorf("a bare pod was remembered")
	}
}

func TestParseAnnotations(t *testing.T) {
	p := field.NewPath("metadata", "annotations")
	if m, err := ParseMode(p, "ambient-waypoint"); err != nil || m != v1alpha1.ModeAmbientWaypoint {
		t.Errorf("ParseMode: %v %v", m, err)
	}
	if m, r, err := ParseDecision(p, "ambient/rule:high-rate"); err != nil || m != v1alpha1.ModeAmbient || r != "rule:high-rate" {
		t.Errorf("ParseDecision: %v %v %v", m, r, err)
	}
	if n, g, err := ParsePolicyRef(p, "default/12"); err != nil || n != "default" || g != 12 {
		t.Errorf("ParsePolicyRef: %v %v %v", n, g, err)
	}
	for _, bad := range []string{"ambient", "ambient/", "ztunnel/x", "ambient/a b"} {
		if _, _, err := ParseDecision(p, bad); err == nil {
			t.Errorf("ParseDecision(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"default", "default/-1", "default/01", "Default/1", "default/x"} {
		if _, _, err := ParsePolicyRef(p, bad); err == nil {
			t.Errorf("ParsePolicyRef(%q) accepted", bad)
		}
	}
	errs := ValidatePodMeshMetadata(field.NewPath("metadata"),
		map[string]string{LabelIstioInject: "true", LabelIstioDataplaneMode: "ambient", LabelIstioUseWaypoint: "wp"},
		map[string]string{v1alpha1.AnnotationMode: "fast"})
	want := []string{
		`metadata.annotations[meshshift.io/mode]: Unsupported value: "fast"`,
		`metadata.labels[istio.io/dataplane-mode]: Invalid value: "ambient": contradicts sidecar.istio.io/inject=true`,
		`metadata.labels[istio.io/use-waypoint]: Invalid value: "wp": contradicts sidecar.istio.io/inject=true`,
	}
	if len(errs) != len(want) {
		t.Fatalf("got %v", errs)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d: %q, want prefix %q", i, errs[i].Error(), w)
		}
	}
	if errs := ValidatePodMeshMetadata(field.NewPath("metadata"),
		map[string]string{LabelIstioInject: "false", LabelIstioDataplaneMode: "ambient", LabelIstioUseWaypoint: "wp"},
		map[string]string{v1alpha1.AnnotationMode: "ambient-waypoint", v1alpha1.AnnotationPolicy: "default/3", v1alpha1.AnnotationDecision: "ambient-waypoint/pod-annotation"}); len(errs) > 0 {
		t.Errorf("consistent metadata rejected: %v", errs)
	}
}

func TestCurrentMode(t *testing.T) {
	cases := []struct {
		pod, ns map[string]string
		podAnn  map[string]string
		want    v1alpha1.Mode
		ok      bool
	}{
		{map[string]string{v1alpha1.LabelDataplane: "cilium"}, nil, nil, v1alpha1.ModeCilium, true},
		{map[string]string{LabelIstioDataplaneMode: "ambient"}, map[string]string{LabelIstioUseWaypoint: "wp"}, nil, v1alpha1.ModeAmbientWaypoint, true},
		{map[string]string{LabelIstioInject: "true"}, nil, nil, v1alpha1.ModeSidecar, true},
		{nil, nil, map[string]string{AnnotationLinkerdInject: "enabled"}, v1alpha1.ModeSidecar, true},
		{map[string]string{LabelIstioInject: "false"}, map[string]string{LabelIstioInjection: "enabled"}, nil, v1alpha1.ModeNone, true},
		{nil, map[string]string{LabelIstioDataplaneMode: "ambient"}, nil, v1alpha1.ModeAmbient, true},
		{nil, map[string]string{LabelIstioRev: "1-32"}, nil, v1alpha1.ModeSidecar, true},
		{nil, nil, nil, v1alpha1.ModeNone, true},
		// Istio's injector: istio-injection=disabled wins over the pod's label.
		{map[string]string{LabelIstioInject: "true"}, map[string]string{LabelIstioInjection: "disabled"}, nil, v1alpha1.ModeNone, true},
		{map[string]string{LabelIstioInject: "false"}, map[string]string{LabelIstioRev: "1-32"}, nil, v1alpha1.ModeNone, true},
		{map[string]string{LabelIstioRev: "1-32"}, nil, nil, v1alpha1.ModeSidecar, true},
		// Injection wins over ambient; inject=false does not stop ambient.
		{map[string]string{LabelIstioDataplaneMode: "ambient"}, map[string]string{LabelIstioInjection: "enabled"}, nil, v1alpha1.ModeSidecar, true},
		{map[string]string{LabelIstioInject: "false"}, map[string]string{LabelIstioDataplaneMode: "ambient"}, nil, v1alpha1.ModeAmbient, true},
		{map[string]string{LabelIstioDataplaneMode: "none"}, map[string]string{LabelIstioDataplaneMode: "ambient"}, nil, v1alpha1.ModeNone, true},
		// The old annotation still turns the injector off.
		{nil, map[string]string{LabelIstioInjection: "enabled"}, map[string]string{LabelIstioInject: "false"}, v1alpha1.ModeNone, true},
		{nil, map[string]string{LabelIstioInjection: "enabled"}, map[string]string{AnnotationLinkerdInject: "enabled"}, v1alpha1.ModeSidecar, true},
	}
	for i, tc := range cases {
		m, ok := CurrentMode(&Workload{Labels: tc.pod, Annotations: tc.podAnn}, &Namespace{Labels: tc.ns})
		if m != tc.want || ok != tc.ok {
			t.Errorf("case %d: got %q %v, want %q %v", i, m, ok, tc.want, tc.ok)
		}
	}
	if m, ok := CurrentMode(&Workload{CurrentMode: v1alpha1.ModeNone, Labels: map[string]string{LabelIstioInject: "true"}}, &Namespace{}); m != v1alpha1.ModeNone || !ok {
		t.Errorf("the caller's CurrentMode wins: %q %v", m, ok)
	}
}

// TestStabilizerKeepsNoCallerMemory: the webhook's strings point into the
// request being answered, which is reused or freed afterwards. What the
// Stabilizer keeps must be its own: scribbling over the caller's bytes
// changes nothing.
func TestStabilizerKeepsNoCallerMemory(t *testing.T) {
	p := mustCompile(t, "stable", 1, v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeSidecar),
		Rules: []v1alpha1.Rule{{Name: "busy", When: "traffic.available && !traffic.stale && traffic.requestRate > 100.0", Mode: "ambient"}}})
	s := NewStabilizer(4)
	body := []byte("web-7d9f")
	in := baseInput(p)
	in.Workload.OwnerName = unsafe.String(&body[0], len(body))
	in.HasTraffic, in.Traffic = true, signals.WorkloadTraffic{RequestRate: 500, SampleTime: testNow}
	if d := s.Decide(in); d.Mode != v1alpha1.ModeAmbient {
		t.Fatalf("first pod: %s, want ambient", d.Mode)
	}
	copy(body, "xxxxxxxx") // the request's memory is reused
	in.Workload.OwnerName = "web-7d9f"
	in.Traffic.RequestRate = 1
	if d := s.Decide(in); d.Mode != v1alpha1.ModeAmbient {
		t.Errorf("second pod of web-7d9f after the first request's bytes changed: %s, want the remembered ambient", d.Mode)
	}
}
