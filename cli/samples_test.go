package cli

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
)

// TestSamplesSayWhatUsersMustSee checks, beyond the golden files, the facts
// each sample dump is there for.
func TestSamplesSayWhatUsersMustSee(t *testing.T) {
	rows := map[string]Row{}
	blockers := map[string][]string{}
	var skipped []SkippedObject
	for _, s := range samples {
		inv := loadSample(t, s)
		skipped = append(skipped, inv.Skipped...)
		for _, target := range []meshv1alpha1.Mode{"", meshv1alpha1.ModeAmbient} {
			for _, r := range BuildPlan(inv, &Options{Target: target, Now: goldenNow}).Rows {
				rows[string(target)+" "+r.Namespace+"/"+r.Workload] = r
				if target == "" && r.Mode == meshv1alpha1.ModeSidecar && r.CurrentMode != string(meshv1alpha1.ModeSidecar) {
					t.Errorf("%s/%s decided sidecar as it is, currently %s: installing meshshift would add a proxy", r.Namespace, r.Workload, r.CurrentMode)
				}
				if strings.Contains(strings.ToLower(r.Reason), "deny-all") && r.Rule != policies.RuleDenyAllTrap {
					t.Errorf("%s/%s: reason %q speaks of DENY-all", r.Namespace, r.Workload, r.Reason)
				}
			}
		}
		for _, f := range Precheck(inv, &Options{Target: meshv1alpha1.ModeAmbient, Now: goldenNow}, false).Findings {
			if f.Severity == SeverityBlocker && f.Workload != "" {
				blockers[f.Namespace+"/"+f.Workload] = append(blockers[f.Namespace+"/"+f.Workload], f.Check+" "+f.Object)
			}
		}
	}
	for key, want := range map[string]string{
		// nobody asked: nothing moves, the unmeshed namespace stays out
		" tools/netshoot":                 "none keep-current",
		" bookinfo/reviews-v2":            "sidecar keep-current",
		"ambient bookinfo/reviews-v2":     "ambient-waypoint feature-requires-waypoint",
		"ambient bookinfo/details-v1":     "ambient namespace-annotation",
		"ambient batch/nightly-report":    "ambient namespace-annotation",
		"ambient batch/db-migrate-v42":    "ambient namespace-annotation",
		"ambient storefront/storefront":   "ambient namespace-annotation",
		"ambient storefront/checkout":     "ambient namespace-annotation",
		"ambient billing/billing-sync":    "sidecar feature-requires-sidecar",
		"ambient orders/orders-api":       "sidecar feature-requires-sidecar",
		"ambient orders/orders-worker":    "ambient namespace-annotation",
		" legacy-win/iis-frontend":        "none exclude-windows",
		" analytics/dashboards":           "none capability-fallback",
		" analytics/ingest":               "ambient capability-fallback",
		" batch/cache-warmer":             "none keep-current",
		"ambient storefront/legacy-cart":  "ambient namespace-annotation",
		"ambient legacy-win/iis-frontend": "none exclude-windows",
		" storefront/storefront":          "sidecar keep-current",
	} {
		r, ok := rows[key]
		if !ok {
			t.Errorf("no row %q", key)
			continue
		}
		if got := string(r.Mode) + " " + r.Rule; got != want {
			t.Errorf("%s: %s (%s), want %s", key, got, r.Reason, want)
		}
	}
	if r := rows["ambient orders/orders-api"]; !strings.Contains(r.Reason, "would deny nothing") {
		t.Errorf("L7 DENY reason %q does not say it would deny nothing under ambient", r.Reason)
	}
	kinds := map[string]string{}
	for k, r := range rows {
		kinds[strings.TrimPrefix(strings.TrimPrefix(k, "ambient"), " ")] = r.Kind
	}
	for w, kind := range map[string]string{"batch/nightly-report": "CronJob", "batch/db-migrate-v42": "Job",
		"storefront/checkout": "Rollout", "storefront/storefront": "Rollout", "storefront/legacy-cart": "ReplicationController"} {
		if kinds[w] != kind {
			t.Errorf("%s read as %q, want %s", w, kinds[w], kind)
		}
	}
	if _, ok := rows[" batch/nightly-report-29400480"]; ok {
		t.Error("a CronJob's Job is planned as a workload of its own")
	}
	for w, want := range map[string][]string{
		"billing/billing-sync":   {"sidecar-egress-hosts Sidecar billing/default", "sidecar-egress-lockdown Sidecar billing/default"},
		"orders/orders-api":      {"l7-deny-ignored AuthorizationPolicy orders/deny-admin-writes"},
		"storefront/legacy-cart": {"cannot-restart "},
	} {
		if diff := cmp.Diff(want, blockers[w]); diff != "" {
			t.Errorf("precheck blockers of %s (-want +got):\n%s", w, diff)
		}
	}
	wantSkipped := []SkippedObject{{Source: "testdata/dumps/bookinfo.yaml:1 (document 1, item 16)", Object: "DestinationRule bookinfo/ratings",
		Field: "spec.trafficPolicy.connectionPool.tcp.idleTimeout", Reason: `bad Duration: time: unknown unit " hour" in duration "1 hour"`}}
	if diff := cmp.Diff(wantSkipped, skipped); diff != "" {
		t.Errorf("skipped objects (-want +got):\n%s", diff)
	}
}

// TestTypedListItemsTakeTheListsKind: the API's own list answers
// (DeploymentList) leave apiVersion and kind out of their items.
func TestTypedListItemsTakeTheListsKind(t *testing.T) {
	objs, err := ParseManifests("l.yaml", []byte(`apiVersion: apps/v1
kind: DeploymentList
items:
- metadata: {name: a, namespace: x}
  spec: {template: {spec: {containers: [{name: c, image: i}]}}}
- metadata: {name: b, namespace: x}
  spec: {template: {spec: {containers: [{name: c, image: i}]}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range objs {
		got = append(got, objs[i].Ref()+" "+objs[i].U.GetAPIVersion()+" "+objs[i].Source.String())
	}
	want := []string{"Deployment x/a apps/v1 l.yaml:1 (document 1, item 1)", "Deployment x/b apps/v1 l.yaml:1 (document 1, item 2)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
}

// TestRolloutErrors: a Rollout needs a template or a workloadRef to a
// Deployment; one whose Deployment is missing is skipped, not fatal.
func TestRolloutErrors(t *testing.T) {
	for in, want := range map[string]string{
		"spec: {replicas: 2}\n":                                                      "field spec.template: required: a Rollout needs spec.template or spec.workloadRef",
		"spec: {workloadRef: {kind: StatefulSet, name: s}}\n":                        `field spec.workloadRef: kind "StatefulSet" name "s": want a Deployment`,
		"spec: {template: {spec: {containers: [{name: c, image: i, portz: []}]}}}\n": "field spec.template.spec.containers[0].portz: unknown field",
		"spec: {replicas: two, template: {}}\n":                                      "field spec.replicas: got a JSON string, want int32",
	} {
		_, err := build(t, "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\n"+in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", in, err, want)
		}
	}
	inv, err := build(t, "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec: {workloadRef: {apiVersion: apps/v1, kind: Deployment, name: gone}}\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Workloads) != 0 || len(inv.Skipped) != 1 || inv.Skipped[0].Field != "spec.workloadRef" {
		t.Errorf("dangling workloadRef: workloads %v, skipped %v; want it skipped", inv.Workloads, inv.Skipped)
	}
}

// TestReadsTrafficExtension: Istio 1.30's TrafficExtension is read (indexed),
// not skipped as a kind meshshift does not read.
func TestReadsTrafficExtension(t *testing.T) {
	inv, err := build(t, `apiVersion: extensions.istio.io/v1alpha1
kind: TrafficExtension
metadata: {name: lua-headers, namespace: shop}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Notes) != 0 || len(inv.Skipped) != 0 {
		t.Errorf("notes %v, skipped %v; want the TrafficExtension read", inv.Notes, inv.Skipped)
	}
	found := false
	for k := range inv.Index.Objects() {
		found = found || k.Kind == "TrafficExtension"
	}
	if !found {
		t.Error("the TrafficExtension is not in the index")
	}
}
