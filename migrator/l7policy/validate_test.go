package l7policy

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshshift/meshshift/api/v1alpha1"
)

// TestProposeRejectsMalformedInput: each malformed input is an error naming
// the field.
func TestProposeRejectsMalformedInput(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*Input)
		field string
	}{
		{"no namespace", func(in *Input) { in.Namespace = "" }, "Namespace"},
		{"root namespace moves", func(in *Input) { in.Namespace = "istio-system" }, "root namespace"},
		{"no waypoint", func(in *Input) { in.Waypoint = "" }, "Waypoint"},
		{"bad migration", func(in *Input) { in.Migration = "not a label value" }, "Migration"},
		{"bad trust domain", func(in *Input) { in.TrustDomain = "a/b" }, "TrustDomain"},
		{"workload without name", func(in *Input) { in.Workloads[0].Name = "" }, "Workloads[0]"},
		{"policy of another kind", func(in *Input) {
			in.Policies = []*unstructured.Unstructured{obj(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: shop}")}
		}, "policies[0]: kind"},
		{"policy of another group", func(in *Input) {
			in.Policies = []*unstructured.Unstructured{obj(t, "apiVersion: v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}")}
		}, "policies[0]: apiVersion"},
		{"policy in another namespace", func(in *Input) {
			in.Policies = []*unstructured.Unstructured{obj(t, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: elsewhere}")}
		}, "policies[0]: metadata.namespace"},
		{"spec that is not an AuthorizationPolicy", func(in *Input) {
			in.Policies = []*unstructured.Unstructured{obj(t, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec: {rules: 3}")}
		}, "policies[0]: spec"},
		{"policy given twice", func(in *Input) { in.Policies = append(in.Policies, in.Policies[0]) }, "given twice"},
		{"nil policy", func(in *Input) { in.Policies = []*unstructured.Unstructured{nil} }, "policies[0]"},
		{"not a Service", func(in *Input) {
			in.Services = []*unstructured.Unstructured{obj(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: s, namespace: shop}")}
		}, "services[0]"},
		{"narrowed with a broken record", func(in *Input) {
			in.Policies[0].SetAnnotations(map[string]string{AnnotationOriginal: "{"})
		}, "policies[0]: restore"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := input(t, l7Allow)
			tc.edit(&in)
			_, err := Propose(in)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want one naming %q", err, tc.field)
			}
		})
	}
}

func TestRestoreErrors(t *testing.T) {
	if _, err := Restore(nil); err == nil {
		t.Error("nil: no error")
	}
	u := obj(t, l7Allow)
	if _, err := Restore(u); err == nil || !strings.Contains(err.Error(), "not narrowed") {
		t.Errorf("not narrowed: err = %v", err)
	}
	u.SetAnnotations(map[string]string{AnnotationOriginal: `{"spec": 3}`})
	if _, err := Restore(u); err == nil || !strings.Contains(err.Error(), "want an object") {
		t.Errorf("spec not an object: err = %v", err)
	}
	// An original without annotations comes back without an annotation map.
	u.SetAnnotations(map[string]string{AnnotationOriginal: `{"spec": {"action": "DENY"}}`})
	r, err := Restore(u)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Object["metadata"].(map[string]interface{})["annotations"]; ok || r.Object["spec"].(map[string]interface{})["action"] != "DENY" {
		t.Errorf("restored %v", r.Object)
	}
}

func TestObjectName(t *testing.T) {
	long := strings.Repeat("a", 250)
	n := objectName(long, "-meshshift-admit")
	if len(n) > 253 || !strings.HasSuffix(n, "-meshshift-admit") || n == objectName(long+"b", "-meshshift-admit") {
		t.Errorf("objectName = %q (%d)", n, len(n))
	}
	if objectName("p", "-meshshift") != "p-meshshift" {
		t.Error("short name changed")
	}
}

func TestLabelDataplaneIsTheAPIs(t *testing.T) {
	if LabelDataplane != v1alpha1.LabelDataplane || ModeSidecar != string(v1alpha1.ModeSidecar) || ModeAmbientWaypoint != string(v1alpha1.ModeAmbientWaypoint) {
		t.Errorf("labels differ from api/v1alpha1: %s %s %s", LabelDataplane, ModeSidecar, ModeAmbientWaypoint)
	}
}
