package l7policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestNarrowedRules: what each kind and action of policy becomes when it
// moves: the narrowed original's spec (the identity cases of the package
// doc) and its copy's spec.
func TestNarrowedRules(t *testing.T) {
	exempt := `{key: source.principal, notValues: [` + waypointPrincipal + `]}`
	cases := []struct {
		name, policy, narrowed string
	}{{
		name: "DENY with negations exempts the waypoint; a DENY on the request alone is kept",
		policy: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: shop}
spec:
  selector: {matchLabels: {app: checkout}}
  action: DENY
  rules:
  - from: [{source: {notPrincipals: [cluster.local/ns/shop/sa/frontend]}}]
    to: [{operation: {methods: [POST]}}]
  - from: [{source: {notRequestPrincipals: ["*"]}}]
  - to: [{operation: {paths: [/admin]}}]
  - to: [{operation: {methods: [DELETE]}}]
    when: [{key: "request.auth.claims[role]", notValues: [admin]}]
`,
		narrowed: `selector: {matchLabels: {app: checkout, meshshift.io/dataplane: sidecar}}
action: DENY
rules:
- from: [{source: {notPrincipals: [cluster.local/ns/shop/sa/frontend]}}]
  to: [{operation: {methods: [POST]}}]
  when: [` + exempt + `]
- from: [{source: {notRequestPrincipals: ["*"]}}]
  when: [` + exempt + `]
- to: [{operation: {paths: [/admin]}}]
- to: [{operation: {methods: [DELETE]}}]
  when: [{key: "request.auth.claims[role]", notValues: [admin]}, ` + exempt + `]
`,
	}, {
		name: "CUSTOM: every rule exempts the waypoint, which already asked the provider",
		policy: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: shop}
spec:
  selector: {matchLabels: {app: checkout}}
  action: CUSTOM
  provider: {name: ext-authz}
  rules:
  - to: [{operation: {paths: ["/api/*"]}}]
`,
		narrowed: `selector: {matchLabels: {app: checkout, meshshift.io/dataplane: sidecar}}
action: CUSTOM
provider: {name: ext-authz}
rules:
- to: [{operation: {paths: ["/api/*"]}}]
  when: [` + exempt + `]
`,
	}, {
		name: "AUDIT: every rule exempts the waypoint, which already audited",
		policy: `apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: p, namespace: shop}
spec:
  selector: {matchLabels: {app: checkout}}
  action: AUDIT
  rules:
  - from: [{source: {namespaces: [other]}}]
`,
		narrowed: `selector: {matchLabels: {app: checkout, meshshift.io/dataplane: sidecar}}
action: AUDIT
rules:
- from: [{source: {namespaces: [other]}}]
  when: [` + exempt + `]
`,
	}, {
		name: "L4 DENY on the caller moves: behind the waypoint ztunnel would see the waypoint",
		policy: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: shop}
spec:
  selector: {matchLabels: {app: checkout}}
  action: DENY
  rules:
  - from: [{source: {namespaces: [untrusted]}}]
`,
		narrowed: `selector: {matchLabels: {app: checkout, meshshift.io/dataplane: sidecar}}
action: DENY
rules:
- from: [{source: {namespaces: [untrusted]}}]
  when: [` + exempt + `]
`,
	}, {
		name: "RequestAuthentication: narrowed only",
		policy: `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: p, namespace: shop}
spec:
  selector: {matchLabels: {app: checkout}}
  jwtRules: [{issuer: "https://issuer.example", jwksUri: "https://issuer.example/jwks"}]
`,
		narrowed: `selector: {matchLabels: {app: checkout, meshshift.io/dataplane: sidecar}}
jwtRules: [{issuer: "https://issuer.example", jwksUri: "https://issuer.example/jwks"}]
`,
	}, {
		name: "ALLOW with a JWT rule: the waypoint rule drops the request principal and keeps the operation",
		policy: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: shop}
spec:
  selector: {matchLabels: {app: checkout}}
  rules:
  - from: [{source: {requestPrincipals: ["https://issuer.example/*"]}}]
    to: [{operation: {methods: [POST], ports: ["8080"]}}]
`,
		narrowed: `selector: {matchLabels: {app: checkout, meshshift.io/dataplane: sidecar}}
rules:
- from: [{source: {requestPrincipals: ["https://issuer.example/*"]}}]
  to: [{operation: {methods: [POST], ports: ["8080"]}}]
- from: [{source: {principals: [` + waypointPrincipal + `]}}]
  to: [{operation: {methods: [POST], ports: ["8080"]}}]
`,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := Propose(input(t, tc.policy))
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Moves) != 1 || len(plan.Blocked) != 0 {
				t.Fatalf("moves %d blocked %v, want 1 move", len(plan.Moves), plan.Blocked)
			}
			m := plan.Moves[0]
			if d := cmp.Diff(specOf(t, tc.narrowed), m.Narrowed.Object["spec"]); d != "" {
				t.Errorf("narrowed spec (-want +got):\n%s", d)
			}
			// The copy: the original's spec, no selector, targetRefs to the Service.
			want := m.Source.Object["spec"].(map[string]interface{})
			got := m.Copy.Object["spec"].(map[string]interface{})
			if _, ok := got["selector"]; ok {
				t.Errorf("copy keeps a selector: %v", got)
			}
			for k, v := range want {
				if k != "selector" && !cmp.Equal(v, got[k]) {
					t.Errorf("copy spec.%s = %v, want %v", k, got[k], v)
				}
			}
			if d := cmp.Diff([]interface{}{map[string]interface{}{"group": "", "kind": "Service", "name": "checkout"}}, got["targetRefs"]); d != "" {
				t.Errorf("copy targetRefs: %s", d)
			}
			if m.Copy.GetKind() != m.Source.GetKind() || m.Copy.GetAPIVersion() != m.Source.GetAPIVersion() ||
				m.Copy.GetLabels()[LabelMigration] != "m1" || m.Copy.GetAnnotations()[AnnotationSource] != m.Source.GetKind()+"/shop/p" {
				t.Errorf("copy metadata: %v %v", m.Copy.GetLabels(), m.Copy.GetAnnotations())
			}
			r, err := Restore(m.Narrowed)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(m.Source.Object, r.Object); d != "" {
				t.Errorf("restore (-want +got):\n%s", d)
			}
		})
	}
}

const l4Allow = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: l4, namespace: shop}
spec:
  selector: {matchLabels: {app: checkout}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]
    to: [{operation: {ports: ["8080"]}}]
  - to: [{operation: {ports: ["9090"]}}]
`

// TestAdmitL4Allow: an L4 ALLOW stays with ztunnel; ztunnel must admit the
// waypoint on the ambient pods for what the policy allows from a named caller,
// and the waypoint gets a copy to check the caller itself.
func TestAdmitL4Allow(t *testing.T) {
	plan, err := Propose(input(t, l4Allow))
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Moves) != 0 || len(plan.Blocked) != 0 || len(plan.Admit) != 2 {
		t.Fatalf("moves %d admit %d blocked %v; want 0, 2, none", len(plan.Moves), len(plan.Admit), plan.Blocked)
	}
	want := obj(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: l4-meshshift-admit
  namespace: shop
  labels: {meshshift.io/migration: m1}
  annotations: {meshshift.io/source: AuthorizationPolicy/shop/l4}
spec:
  selector: {matchLabels: {app: checkout, meshshift.io/dataplane: ambient-waypoint}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [`+waypointPrincipal+`]}}]
    to: [{operation: {ports: ["8080"]}}]
`)
	if d := cmp.Diff(want.Object, plan.Admit[0].Object); d != "" {
		t.Errorf("admit (-want +got):\n%s", d)
	}
	cp := plan.Admit[1]
	if cp.GetName() != "l4-meshshift" || cp.Object["spec"].(map[string]interface{})["targetRefs"] == nil {
		t.Errorf("second admit object is not the targetRefs copy: %v", cp.Object)
	}

	// Allowing any caller (or nothing) needs no admit.
	for _, p := range []string{
		"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: any, namespace: shop}\nspec:\n  selector: {matchLabels: {app: checkout}}\n  rules: [{to: [{operation: {ports: [\"8080\"]}}]}]\n",
		"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: none, namespace: shop}\nspec:\n  selector: {matchLabels: {app: checkout}}\n",
	} {
		plan, err := Propose(input(t, p))
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Admit)+len(plan.Moves)+len(plan.Blocked) != 0 {
			t.Errorf("%s: plan %+v, want empty", p, plan)
		}
	}
}

// TestBlocked: each case that cannot move safely names the policy and the
// reason, and leaves the workload out of every move.
func TestBlocked(t *testing.T) {
	l7 := func(ns, selector string) string {
		return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: " + ns + "}\nspec:\n" + selector +
			"  rules: [{to: [{operation: {methods: [GET], ports: [\"8080\"]}}]}]\n"
	}
	sel := "  selector: {matchLabels: {app: checkout}}\n"
	cases := []struct {
		name   string
		in     func(t *testing.T) Input
		reason string
	}{
		{"namespace-wide", func(t *testing.T) Input { return input(t, l7("shop", "")) }, "namespace-wide"},
		{"mesh-wide", func(t *testing.T) Input { return input(t, l7("istio-system", "")) }, "root namespace istio-system"},
		{"root namespace with selector", func(t *testing.T) Input { return input(t, l7("istio-system", sel)) }, "root namespace"},
		{"no Service", func(t *testing.T) Input {
			in := input(t, l7("shop", sel))
			in.Services = nil
			return in
		}, "no Service selects the workload"},
		{"Service widens", func(t *testing.T) Input {
			in := input(t, l7("shop", "  selector: {matchLabels: {app: checkout, version: v1}}\n"))
			return in
		}, "would widen the policy"},
		{"Service on another waypoint", func(t *testing.T) Input {
			in := input(t, l7("shop", sel))
			in.Services[0].SetLabels(map[string]string{"istio.io/use-waypoint": "other"})
			return in
		}, "uses waypoint other"},
		{"ports remapped", func(t *testing.T) Input {
			in := input(t, l7("shop", sel))
			in.Services = []*unstructured.Unstructured{obj(t, "apiVersion: v1\nkind: Service\nmetadata: {name: checkout, namespace: shop}\nspec: {selector: {app: checkout}, ports: [{port: 80, targetPort: 8080}]}")}
			return in
		}, "maps port 80->8080"},
		{"selector on another dataplane", func(t *testing.T) Input {
			return input(t, l7("shop", "  selector: {matchLabels: {app: checkout, meshshift.io/dataplane: ambient-waypoint}}\n"))
		}, "cannot be narrowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := Propose(tc.in(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Moves)+len(plan.Admit) != 0 || len(plan.Blocked) != 1 {
				t.Fatalf("moves %d admit %d blocked %q; want one blocked entry only", len(plan.Moves), len(plan.Admit), plan.Blocked)
			}
			if b := plan.Blocked[0]; !strings.Contains(b, tc.reason) || !strings.Contains(b, "AuthorizationPolicy/") || !strings.Contains(b, "Deployment/checkout") {
				t.Errorf("blocked %q: want the policy, the workload and %q", b, tc.reason)
			}
		})
	}
}

// TestBlockedWorkloadLeavesOtherMoves: a workload blocked by one policy does
// not move; another policy selecting it and a movable workload moves for the
// movable one only.
func TestBlockedWorkloadLeavesOtherMoves(t *testing.T) {
	in := input(t,
		`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: both, namespace: shop}
spec:
  selector: {matchLabels: {tier: web}}
  rules: [{to: [{operation: {methods: [GET]}}]}]
`)
	in.Workloads = []Workload{
		{Kind: "Deployment", Name: "checkout", PodLabels: map[string]string{"app": "checkout", "tier": "web"}},
		{Kind: "Deployment", Name: "orphan", PodLabels: map[string]string{"app": "orphan", "tier": "web"}},
	}
	in.Services = []*unstructured.Unstructured{svc(t, "checkout", "{app: checkout, tier: web}")}
	plan, err := Propose(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Blocked) != 1 || !strings.Contains(plan.Blocked[0], "Deployment/orphan") {
		t.Fatalf("blocked %q, want orphan", plan.Blocked)
	}
	if len(plan.Moves) != 1 || !cmp.Equal(plan.Moves[0].Workloads, []string{"Deployment/checkout"}) {
		t.Fatalf("moves %+v, want one for checkout", plan.Moves)
	}
}

// TestSkipped: policies that need nothing are left alone.
func TestSkipped(t *testing.T) {
	for name, p := range map[string]string{
		"targetRefs already":         "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  targetRefs: [{kind: Service, group: \"\", name: checkout}]\n  rules: [{to: [{operation: {methods: [GET]}}]}]\n",
		"selects no moving workload": "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  selector: {matchLabels: {app: other}}\n  rules: [{to: [{operation: {methods: [GET]}}]}]\n",
		"made by a migration":        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop, labels: {meshshift.io/migration: m0}}\nspec:\n  selector: {matchLabels: {app: checkout}}\n  rules: [{to: [{operation: {methods: [GET]}}]}]\n",
		"L4 DENY on ports":           "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  selector: {matchLabels: {app: checkout}}\n  action: DENY\n  rules: [{to: [{operation: {ports: [\"9000\"]}}]}]\n",
	} {
		plan, err := Propose(input(t, p))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(plan.Moves)+len(plan.Admit)+len(plan.Blocked) != 0 {
			t.Errorf("%s: plan %+v, want empty", name, plan)
		}
	}
}

// TestProposeAgainOnNarrowed: proposing again over narrowed originals (a
// migration resumed after a crash) yields the same narrowed objects and copies.
func TestProposeAgainOnNarrowed(t *testing.T) {
	first, err := Propose(input(t, l7Allow))
	if err != nil {
		t.Fatal(err)
	}
	in := input(t)
	in.Policies = append(in.Policies, first.Moves[0].Narrowed, first.Moves[0].Copy)
	again, err := Propose(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Moves) != 1 {
		t.Fatalf("moves %d, want 1", len(again.Moves))
	}
	if d := cmp.Diff(first.Moves[0].Narrowed.Object, again.Moves[0].Narrowed.Object); d != "" {
		t.Errorf("narrowed differs (-first +again):\n%s", d)
	}
	if d := cmp.Diff(first.Moves[0].Copy.Object, again.Moves[0].Copy.Object); d != "" {
		t.Errorf("copy differs (-first +again):\n%s", d)
	}
}

// TestIdentityInputs: trust domain and waypoint service account name the
// waypoint's principal.
func TestIdentityInputs(t *testing.T) {
	in := input(t, l7Allow)
	in.TrustDomain, in.WaypointServiceAccount = "corp.example", "wp-sa"
	plan, err := Propose(in)
	if err != nil {
		t.Fatal(err)
	}
	rules := plan.Moves[0].Narrowed.Object["spec"].(map[string]interface{})["rules"].([]interface{})
	last := rules[len(rules)-1].(map[string]interface{})
	got := last["from"].([]interface{})[0].(map[string]interface{})["source"].(map[string]interface{})["principals"]
	if d := cmp.Diff([]interface{}{"corp.example/ns/shop/sa/wp-sa"}, got); d != "" {
		t.Error(d)
	}
}

// TestWideRequestAuthentication: a namespace- or mesh-wide
// RequestAuthentication is copied for the waypoint (which ignores policies
// without targetRefs) and left as it is for the sidecars.
func TestWideRequestAuthentication(t *testing.T) {
	for _, ns := range []string{"shop", "istio-system"} {
		plan, err := Propose(input(t, "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: "+ns+
			"}\nspec:\n  jwtRules: [{issuer: \"https://issuer.example\"}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Moves)+len(plan.Blocked) != 0 || len(plan.Admit) != 1 {
			t.Fatalf("%s: moves %d blocked %q admit %d; want one copy in Admit", ns, len(plan.Moves), plan.Blocked, len(plan.Admit))
		}
		cp := plan.Admit[0]
		want := "jwt-meshshift"
		if ns == "istio-system" {
			want = "istio-system-jwt-meshshift"
		}
		if cp.GetName() != want || cp.GetNamespace() != "shop" || cp.GetKind() != KindRequestAuthentication {
			t.Errorf("%s: copy %s %s/%s, want RequestAuthentication shop/%s", ns, cp.GetKind(), cp.GetNamespace(), cp.GetName(), want)
		}
		if d := cmp.Diff([]interface{}{map[string]interface{}{"group": "", "kind": "Service", "name": "checkout"}}, cp.Object["spec"].(map[string]interface{})["targetRefs"]); d != "" {
			t.Errorf("%s: targetRefs %s", ns, d)
		}
	}
}
