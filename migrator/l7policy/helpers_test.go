package l7policy

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// obj decodes one YAML object, as a client or a manifest would give it.
func obj(t testing.TB, y string) *unstructured.Unstructured {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatalf("yaml: %v", err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return u
}

func svc(t testing.TB, name, selector string) *unstructured.Unstructured {
	return obj(t, "apiVersion: v1\nkind: Service\nmetadata: {name: "+name+", namespace: shop}\nspec: {selector: "+selector+"}")
}

func specJSON(t testing.TB, u *unstructured.Unstructured) string {
	t.Helper()
	b, err := json.Marshal(u.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// input is a wave of namespace shop moving Deployment checkout (app=checkout)
// behind waypoint "waypoint", with Service checkout selecting it.
func input(t testing.TB, policies ...string) Input {
	in := Input{
		Namespace: "shop", Waypoint: "waypoint", Migration: "m1",
		Workloads: []Workload{{Kind: "Deployment", Name: "checkout", PodLabels: map[string]string{"app": "checkout", "version": "v1"}}},
		Services:  []*unstructured.Unstructured{svc(t, "checkout", "{app: checkout}")},
	}
	for _, p := range policies {
		in.Policies = append(in.Policies, obj(t, p))
	}
	return in
}

const waypointPrincipal = "cluster.local/ns/shop/sa/waypoint"

// specOf decodes a YAML spec.
func specOf(t testing.TB, y string) interface{} {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatalf("yaml: %v", err)
	}
	var v interface{}
	if err := json.Unmarshal(j, &v); err != nil {
		t.Fatal(err)
	}
	return v
}
