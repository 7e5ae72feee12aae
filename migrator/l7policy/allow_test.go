package l7policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

const l7Allow = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: checkout-get, namespace: shop, resourceVersion: "7"}
spec:
  selector: {matchLabels: {app: checkout}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]
    to: [{operation: {methods: [GET], paths: ["/cart/*"]}}]
    when: [{key: "request.headers[x-tenant]", values: [acme]}, {key: source.namespace, values: [shop]}]
  - to: [{operation: {methods: [HEAD]}}]
`

func TestProposeL7Allow(t *testing.T) {
	plan, err := Propose(input(t, l7Allow))
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Blocked) != 0 || len(plan.Admit) != 0 || len(plan.Moves) != 1 {
		t.Fatalf("plan: %d moves, admit %d, blocked %v", len(plan.Moves), len(plan.Admit), plan.Blocked)
	}
	m := plan.Moves[0]
	wantCopy := obj(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: checkout-get-meshshift
  namespace: shop
  labels: {meshshift.io/migration: m1}
  annotations: {meshshift.io/source: AuthorizationPolicy/shop/checkout-get}
spec:
  targetRefs: [{group: "", kind: Service, name: checkout}]
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]
    to: [{operation: {methods: [GET], paths: ["/cart/*"]}}]
    when: [{key: "request.headers[x-tenant]", values: [acme]}, {key: source.namespace, values: [shop]}]
  - to: [{operation: {methods: [HEAD]}}]
`)
	if d := cmp.Diff(wantCopy.Object, m.Copy.Object); d != "" {
		t.Errorf("copy (-want +got):\n%s", d)
	}
	wantSpec := specOf(t, `selector: {matchLabels: {app: checkout, meshshift.io/dataplane: sidecar}}
action: ALLOW
rules:
- from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]
  to: [{operation: {methods: [GET], paths: ["/cart/*"]}}]
  when: [{key: "request.headers[x-tenant]", values: [acme]}, {key: source.namespace, values: [shop]}]
- to: [{operation: {methods: [HEAD]}}]
- from: [{source: {principals: [`+waypointPrincipal+`]}}]
  to: [{operation: {methods: [GET], paths: ["/cart/*"]}}]
  when: [{key: "request.headers[x-tenant]", values: [acme]}]
`)
	if d := cmp.Diff(wantSpec, m.Narrowed.Object["spec"]); d != "" {
		t.Errorf("narrowed spec (-want +got):\n%s", d)
	}
	if m.Narrowed.GetResourceVersion() != "7" || !IsNarrowed(m.Narrowed) || IsNarrowed(m.Source) {
		t.Errorf("narrowed keeps metadata and is marked: rv %q narrowed %v source narrowed %v",
			m.Narrowed.GetResourceVersion(), IsNarrowed(m.Narrowed), IsNarrowed(m.Source))
	}
	r, err := Restore(m.Narrowed)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := specJSON(t, r), specJSON(t, m.Source); got != want {
		t.Errorf("restored spec\n got %s\nwant %s", got, want)
	}
	if d := cmp.Diff(m.Source.Object, r.Object); d != "" {
		t.Errorf("restored object (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"Deployment/checkout"}, m.Workloads); d != "" {
		t.Error(d)
	}
	if d := cmp.Diff([]string{"checkout"}, m.Services); d != "" {
		t.Error(d)
	}
}
