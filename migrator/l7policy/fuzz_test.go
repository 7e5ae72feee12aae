package l7policy

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// FuzzProposeRestore: Propose never panics on any policy object and pod
// labels; every narrowed original Restores to the original's spec byte for
// byte; Restore never panics on any object. Seeds are in
// testdata/fuzz/FuzzProposeRestore.
func FuzzProposeRestore(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy","metadata":{"name":"p","namespace":"shop"},"spec":{"selector":{"matchLabels":{"app":"checkout"}},"rules":[{"to":[{"operation":{"methods":["GET"]}}]}]}}`),
		[]byte(`{"app":"checkout"}`))
	f.Fuzz(func(t *testing.T, policyJSON, labelsJSON []byte) {
		var o map[string]interface{}
		if err := utiljson.Unmarshal(policyJSON, &o); err != nil || o == nil {
			return
		}
		var labels map[string]string
		_ = json.Unmarshal(labelsJSON, &labels)
		u := &unstructured.Unstructured{Object: o}
		if IsNarrowed(u) {
			_, _ = Restore(u)
		}
		in := Input{
			Namespace: "shop", Waypoint: "waypoint", Migration: "m1",
			Workloads: []Workload{{Kind: "Deployment", Name: "w", PodLabels: labels}},
			Services: []*unstructured.Unstructured{{Object: map[string]interface{}{
				"apiVersion": "v1", "kind": "Service", "metadata": map[string]interface{}{"name": "s", "namespace": "shop"},
				"spec": map[string]interface{}{"selector": stringMapToJSON(labels)},
			}}},
			Policies: []*unstructured.Unstructured{u},
		}
		plan, err := Propose(in)
		if err != nil {
			return
		}
		for _, m := range plan.Moves {
			orig := m.Source
			if IsNarrowed(orig) {
				if orig, err = Restore(orig); err != nil {
					t.Fatalf("restore source: %v", err)
				}
			}
			r, err := Restore(m.Narrowed)
			if err != nil {
				t.Fatalf("restore narrowed: %v", err)
			}
			want, _ := json.Marshal(orig.Object["spec"])
			got, _ := json.Marshal(r.Object["spec"])
			if string(want) != string(got) {
				t.Fatalf("restored spec\n got %s\nwant %s", got, want)
			}
			if IsNarrowed(r) {
				t.Fatalf("restored object still carries %s", AnnotationOriginal)
			}
		}
	})
}
