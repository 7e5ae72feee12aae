package cli

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

var callersFiles = []string{"testdata/dumps/callers.yaml", "testdata/dumps/istio-system.yaml"}

const callersTraffic = "testdata/traffic/callers.yaml"

// loadCallers is the callers dump (namespaces on sidecars; orders/api and
// payments/gateway carry selector-attached L7 ALLOW policies) with extra
// manifests and the given callers (callee → callers).
func loadCallers(t *testing.T, extra string, callers map[string][]string) *Inventory {
	t.Helper()
	objs, err := LoadFiles(callersFiles)
	if err != nil {
		t.Fatal(err)
	}
	if extra != "" {
		more, err := ParseManifests("extra.yaml", []byte(extra))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, more...)
	}
	inv, err := Build(objs)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("time: 2026-11-26T11:59:00Z\nworkloads:\n")
	for callee, cs := range callers {
		ns, name, _ := strings.Cut(callee, "/")
		fmt.Fprintf(&b, "- {namespace: %s, workload: %s, callers: [%s]}\n", ns, name, strings.Join(cs, ", "))
	}
	if inv.Traffic, err = ParseTraffic("callers.yaml", []byte(b.String())); err != nil {
		t.Fatal(err)
	}
	return inv
}

// waveOf is each namespace's wave in a plan (0: in none).
func waveOf(p *Plan) map[string]int {
	out := map[string]int{}
	for _, w := range p.Waves {
		for _, ns := range w.Namespaces {
			out[ns] = w.Index
		}
	}
	return out
}

func blockedReasons(p *Plan, ns string) string {
	for _, b := range p.Blocked {
		if b.Namespace == ns {
			return strings.Join(b.Reasons, "\n")
		}
	}
	return ""
}

// TestPlanCallersFlipFirst: toward ambient-waypoint, a caller's namespace
// comes no later than the namespace of a workload whose L7 policy moves to
// its waypoint, although its score alone would put it later; callers calling
// each other share a wave.
func TestPlanCallersFlipFirst(t *testing.T) {
	o := func() *Options { return &Options{Target: meshv1alpha1.ModeAmbientWaypoint, Now: goldenNow, Waves: 4} }

	// No callers: by score alone alpha, orders, shop, payments.
	plain := loadCallers(t, "", nil)
	p := BuildPlan(plain, o())
	if diff := cmp.Diff(map[string]int{"alpha": 1, "orders": 2, "shop": 3, "payments": 4}, waveOf(p)); diff != "" {
		t.Fatalf("waves without callers (-want +got):\n%s", diff)
	}
	for _, r := range p.Rows {
		if r.Namespace == "orders" && r.Workload == "api" &&
			(r.Mode != meshv1alpha1.ModeAmbientWaypoint || r.Wave != 2 || !strings.Contains(r.Reason, "L7 policies move to its waypoint")) {
			t.Errorf("orders/api row %+v: want ambient-waypoint in wave 2, its L7 policies moving", r)
		}
	}

	// shop/frontend calls orders/api: shop moves before orders.
	inv := loadCallers(t, "", map[string][]string{"orders/api": {"shop/frontend"}})
	p = BuildPlan(inv, o())
	if diff := cmp.Diff(map[string]int{"alpha": 1, "shop": 2, "orders": 3, "payments": 4}, waveOf(p)); diff != "" {
		t.Errorf("waves with shop/frontend calling orders/api (-want +got):\n%s", diff)
	}
	if !slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, "namespace shop flips no later than orders") }) {
		t.Errorf("no note on the order: %q", p.Notes)
	}

	// A cycle: orders/api and payments/gateway call each other; both move
	// their L7 policies, so both namespaces share one wave.
	inv = loadCallers(t, "", map[string][]string{"orders/api": {"payments/gateway"}, "payments/gateway": {"orders/api"}})
	p = BuildPlan(inv, o())
	w := waveOf(p)
	if w["orders"] == 0 || w["orders"] != w["payments"] {
		t.Errorf("cycle orders <-> payments split over waves %v", w)
	}
	if diff := cmp.Diff(map[string]int{"alpha": 1, "orders": 2, "payments": 2, "shop": 3}, w); diff != "" {
		t.Errorf("waves with a cycle (-want +got):\n%s", diff)
	}

	// A caller of a workload that keeps its sidecar, or one in an ambient
	// namespace, orders nothing: only sidecar callers of moving policies do.
	inv = loadCallers(t, "", map[string][]string{"shop/cart": {"payments/ledger"}})
	if diff := cmp.Diff(map[string]int{"alpha": 1, "orders": 2, "shop": 3, "payments": 4}, waveOf(BuildPlan(inv, o()))); diff != "" {
		t.Errorf("a caller of a workload moving no L7 policy changed the order (-want +got):\n%s", diff)
	}

	// Toward ambient nothing moves its L7 policies: orders stays blocked by
	// the DENY-all trap whatever calls it.
	inv = loadCallers(t, "", map[string][]string{"orders/api": {"shop/frontend"}})
	p = BuildPlan(inv, &Options{Target: meshv1alpha1.ModeAmbient, Now: goldenNow, Waves: 4})
	if r := blockedReasons(p, "orders"); !strings.Contains(r, "api: keeps sidecar") {
		t.Errorf("toward ambient, orders blocked for %q, want the DENY-all trap", r)
	}
}

// TestPlanBlocksCalleeOfStayingCaller: a sidecar caller that does not leave
// its sidecar in the plan (out of scope, kept on its sidecar by an
// EnvoyFilter, or in a blocked namespace) blocks the callee's namespace,
// naming the caller; blocking cascades.
func TestPlanBlocksCalleeOfStayingCaller(t *testing.T) {
	o := &Options{Target: meshv1alpha1.ModeAmbientWaypoint, Now: goldenNow, Namespaces: []string{"alpha", "orders"}}
	inv := loadCallers(t, "", map[string][]string{"orders/api": {"shop/frontend"}})
	p := BuildPlan(inv, o)
	want := "api: its L7 policies move to its waypoint (Gateway waypoint), and callers on sidecars that do not leave them would bypass it (istio#57213): shop/frontend (outside the planned namespaces)"
	if got := blockedReasons(p, "orders"); got != want {
		t.Errorf("orders blocked for %q, want %q", got, want)
	}
	if diff := cmp.Diff(map[string]int{"alpha": 1}, waveOf(p)); diff != "" {
		t.Errorf("waves (-want +got):\n%s", diff)
	}

	const envoyFilter = `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: lua, namespace: shop}
spec:
  workloadSelector: {labels: {app: frontend}}
  configPatches:
  - applyTo: HTTP_FILTER
    patch: {operation: INSERT_BEFORE, value: {name: envoy.lua}}
`
	// shop/frontend keeps its sidecar (EnvoyFilter) and calls orders/api;
	// orders/api calls payments/gateway, so payments is blocked in turn.
	inv = loadCallers(t, envoyFilter, map[string][]string{"orders/api": {"shop/frontend"}, "payments/gateway": {"orders/api"}})
	p = BuildPlan(inv, &Options{Target: meshv1alpha1.ModeAmbientWaypoint, Now: goldenNow, Waves: 4})
	if got := blockedReasons(p, "orders"); !strings.Contains(got, "shop/frontend (keeps its sidecar in this plan)") {
		t.Errorf("orders blocked for %q, want shop/frontend keeping its sidecar named", got)
	}
	if got := blockedReasons(p, "payments"); !strings.Contains(got, "orders/api (its namespace orders is blocked)") {
		t.Errorf("payments blocked for %q, want orders/api in a blocked namespace named", got)
	}
	if diff := cmp.Diff(map[string]int{"alpha": 1, "shop": 2}, waveOf(p)); diff != "" {
		t.Errorf("waves (-want +got):\n%s", diff)
	}
}

func TestOrderWaves(t *testing.T) {
	edges := func(pairs ...string) map[string]map[string]bool {
		m := map[string]map[string]bool{}
		for _, p := range pairs {
			from, to, _ := strings.Cut(p, ">")
			if m[from] == nil {
				m[from] = map[string]bool{}
			}
			m[from][to] = true
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		edges map[string]map[string]bool
		n     int
		want  [][]string
	}{
		{"no edges: the sorted list cut evenly", nil, 2, [][]string{{"a", "b", "c"}, {"d", "e"}}},
		{"no edges, one wave each", nil, 5, [][]string{{"a"}, {"b"}, {"c"}, {"d"}, {"e"}}},
		{"caller e before callee a", edges("e>a"), 5, [][]string{{"b"}, {"c"}, {"d"}, {"e"}, {"a"}}},
		{"chain d>b>a", edges("d>b", "b>a"), 5, [][]string{{"c"}, {"d"}, {"b"}, {"a"}, {"e"}}},
		{"cycle a<>d shares a wave", edges("a>d", "d>a"), 5, [][]string{{"a", "d"}, {"b"}, {"c"}, {"e"}}},
		{"cycle of three behind its caller", edges("b>c", "c>d", "d>b", "e>c"), 3, [][]string{{"a", "e"}, {"b", "c", "d"}}},
		{"an edge to a namespace not planned is ignored", edges("a>zz", "zz>a"), 1, [][]string{{"a", "b", "c", "d", "e"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := orderWaves([]string{"a", "b", "c", "d", "e"}, tc.edges, tc.n)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("waves (-want +got):\n%s", diff)
			}
		})
	}
}

// TestGoldenPlanCallers plans the callers dump toward ambient-waypoint with
// the callers traffic file, as `meshshift plan --traffic` does.
func TestGoldenPlanCallers(t *testing.T) {
	objs, err := LoadFiles(callersFiles)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := Build(objs)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Traffic, err = LoadTraffic(callersTraffic); err != nil {
		t.Fatal(err)
	}
	p := BuildPlan(inv, &Options{Target: meshv1alpha1.ModeAmbientWaypoint, Now: goldenNow, Waves: 4})
	var out, errs bytes.Buffer
	if err := PrintPlan(&out, FormatTable, p); err != nil {
		t.Fatal(err)
	}
	for _, n := range p.Notes {
		fmt.Fprintf(&errs, "note: %s\n", n)
	}
	cmd := "$ meshshift plan -f " + strings.Join(callersFiles, " -f ") + " --traffic " + callersTraffic + " --target ambient-waypoint --waves 4\n"
	checkGolden(t, "plan-callers-ambient-waypoint", cmd+"--- stdout\n"+out.String()+"--- stderr\n"+errs.String())

	var pre bytes.Buffer
	r := Precheck(inv, &Options{Target: meshv1alpha1.ModeAmbientWaypoint, Now: goldenNow, Namespaces: []string{"orders"}}, false)
	if err := PrintPrecheck(&pre, FormatTable, r); err != nil {
		t.Fatal(err)
	}
	cmd = "$ meshshift precheck -f " + strings.Join(callersFiles, " -f ") + " --traffic " + callersTraffic + " --target ambient-waypoint -n orders\n"
	checkGolden(t, "precheck-callers-ambient-waypoint", cmd+"--- stdout\n"+pre.String())
}

// TestPrecheckRefusesSidecarCallers: precheck toward ambient-waypoint fails
// for a workload whose L7 policies move to its waypoint while an observed
// caller on a sidecar is outside the namespaces checked, or keeps its
// sidecar inside them, and names the callers; with every caller flipping in
// the checked namespaces nothing blocks.
func TestPrecheckRefusesSidecarCallers(t *testing.T) {
	sidecarCallers := func(r *PrecheckResult) []Finding {
		var out []Finding
		for _, f := range r.Findings {
			if f.Check == checkSidecarCaller {
				out = append(out, f)
			}
		}
		return out
	}
	inv := loadCallers(t, "", map[string][]string{"orders/api": {"shop/frontend", "alpha/pinger"}})
	o := &Options{Target: meshv1alpha1.ModeAmbientWaypoint, Now: goldenNow, Namespaces: []string{"orders", "alpha"}}
	r := Precheck(inv, o, false)
	fs := sidecarCallers(r)
	if len(fs) != 1 || fs[0].Severity != SeverityBlocker || fs[0].Namespace != "orders" || fs[0].Workload != "api" ||
		!strings.Contains(fs[0].Message, ": shop/frontend (outside the namespaces checked); flip them first") {
		t.Fatalf("findings %+v: want one blocker on orders/api naming shop/frontend only", fs)
	}
	if r.Blockers != 1 {
		t.Errorf("%d blockers, want 1 (the sidecar caller): %+v", r.Blockers, r.Findings)
	}

	// Every caller flips in the checked namespaces: no blocker at all (the
	// L7 policy itself is a warning toward ambient-waypoint).
	o.Namespaces = []string{"orders", "alpha", "shop"}
	if r := Precheck(inv, o, false); r.Blockers != 0 || len(sidecarCallers(r)) != 0 {
		t.Errorf("callers all in the wave: %d blockers: %+v", r.Blockers, r.Findings)
	}
	// Toward ambient the L7 policy does not move: the DENY-all trap blocks
	// and no caller finding is made.
	if r := Precheck(inv, &Options{Target: meshv1alpha1.ModeAmbient, Now: goldenNow}, false); len(sidecarCallers(r)) != 0 ||
		!slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Check == "deny-all-trap" && f.Severity == SeverityBlocker }) {
		t.Errorf("toward ambient: %+v", r.Findings)
	}

	// A caller inside the checked namespaces that keeps its sidecar.
	inv = loadCallers(t, `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: lua, namespace: shop}
spec:
  workloadSelector: {labels: {app: frontend}}
  configPatches:
  - applyTo: HTTP_FILTER
    patch: {operation: INSERT_BEFORE, value: {name: envoy.lua}}
`, map[string][]string{"orders/api": {"shop/frontend"}})
	fs = sidecarCallers(Precheck(inv, &Options{Target: meshv1alpha1.ModeAmbientWaypoint, Now: goldenNow}, false))
	if len(fs) != 1 || !strings.Contains(fs[0].Message, "shop/frontend (keeps sidecar: EnvoyFilter shop/lua selects this workload") {
		t.Errorf("findings %+v: want shop/frontend named as keeping its sidecar", fs)
	}
}
