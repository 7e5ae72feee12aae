package cli

import (
	"errors"
	"testing"
	"time"
)

// FuzzParseAndPlan feeds arbitrary manifest bytes through the loader, the
// inventory and a plan: bad input must give a *ManifestError naming where,
// never a panic. Seeds: testdata/fuzz/FuzzParseAndPlan.
func FuzzParseAndPlan(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: {istio-injection: enabled}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		objs, err := ParseManifests("fuzz.yaml", b)
		if err != nil {
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not a *ManifestError", err)
			}
		}
		inv, err := Build(objs)
		if err != nil {
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("build error %v is not a *ManifestError", err)
			}
			return
		}
		o := &Options{Target: "ambient", Now: time.Unix(0, 0)}
		p := BuildPlan(inv, o)
		if len(p.Rows) != len(inv.Workloads) {
			t.Fatalf("%d rows for %d workloads", len(p.Rows), len(inv.Workloads))
		}
		_ = Precheck(inv, o, false)
		// Toward ambient-waypoint L7 policies move and callers order the
		// waves: every workload still gets one row.
		ow := &Options{Target: "ambient-waypoint", Now: time.Unix(0, 0), Waves: 2}
		if p := BuildPlan(inv, ow); len(p.Rows) != len(inv.Workloads) {
			t.Fatalf("ambient-waypoint: %d rows for %d workloads", len(p.Rows), len(inv.Workloads))
		}
		_ = Precheck(inv, ow, false)
		for _, w := range inv.Workloads {
			if _, err := Explain(inv, w.Namespace, w.Name, o); err != nil {
				t.Fatalf("explain %s: %v", w.Key(), err)
			}
		}
	})
}
