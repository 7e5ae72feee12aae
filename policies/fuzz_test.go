package policies

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meshshift/meshshift/api/v1alpha1"
)

// FuzzParseAnnotations feeds one value to every annotation and label parser and
// to Decide as the pod's and the namespace's meshshift.io/mode. Nothing may
// panic; a rejected value is a field error on the field it came from.
func FuzzParseAnnotations(f *testing.F) {
	for _, s := range []string{"", "sidecar", "ambient-waypoint", "ambient/rule:x", "default/3", "Ambient", "none/", "/", "a/b/c", "default/-1", "\x00", "ambient\n"} {
		f.Add(s)
	}
	p := Builtin()
	f.Fuzz(func(t *testing.T, v string) {
		path := field.NewPath("metadata", "annotations").Key("k")
		if m, err := ParseMode(path, v); err != nil {
			if err.Field != path.String() {
				t.Fatalf("ParseMode error on %q, want %q", err.Field, path.String())
			}
		} else if !m.Valid() {
			t.Fatalf("ParseMode(%q) returned invalid mode %q", v, m)
		}
		if m, rule, err := ParseDecision(path, v); err == nil && (!m.Valid() || rule == "" || strings.ContainsAny(rule, " /")) {
			t.Fatalf("ParseDecision(%q) = %q, %q", v, m, rule)
		} else if err != nil && err.Field != path.String() {
			t.Fatalf("ParseDecision error on %q", err.Field)
		}
		if name, gen, err := ParsePolicyRef(path, v); err == nil && (name == "" || gen < 0) {
			t.Fatalf("ParsePolicyRef(%q) = %q, %d", v, name, gen)
		} else if err != nil && err.Field != path.String() {
			t.Fatalf("ParsePolicyRef error on %q", err.Field)
		}
		meta := field.NewPath("metadata")
		for _, err := range ValidatePodMeshMetadata(meta,
			map[string]string{LabelIstioInject: v, LabelIstioDataplaneMode: v, LabelIstioUseWaypoint: v, v1alpha1.LabelDataplane: v},
			map[string]string{v1alpha1.AnnotationMode: v, AnnotationLinkerdInject: v, v1alpha1.AnnotationDecision: v, v1alpha1.AnnotationPolicy: v}) {
			if !strings.HasPrefix(err.Field, "metadata.labels[") && !strings.HasPrefix(err.Field, "metadata.annotations[") {
				t.Fatalf("error on %q: %v", err.Field, err)
			}
		}
		in := baseInput(p)
		in.Workload.Annotations = map[string]string{v1alpha1.AnnotationMode: v}
		in.Namespace.Annotations = map[string]string{v1alpha1.AnnotationMode: v}
		in.Workload.Labels[LabelIstioUseWaypoint] = v
		d := Decide(in)
		if !d.Mode.Valid() || d.Labels[v1alpha1.LabelDataplane] != string(d.Mode) {
			t.Fatalf("decision %+v", d)
		}
		if _, err := ParseMode(path, v); err != nil && len(d.Warnings) == 0 {
			t.Fatalf("an unusable mode %q gave no warning", v)
		}
	})
}

// FuzzCompileRule compiles arbitrary CEL as a rule. It must never panic; it
// either compiles (and then evaluates without panicking) or is rejected with
// errors on spec.rules[0].
func FuzzCompileRule(f *testing.F) {
	for _, s := range []string{
		"true", `traffic.requestRate > 10.0`, `"http-routing" in features`,
		`workload.labels.?app.orValue("") == "web"`, `traffic.p99Latency < duration("20ms")`,
		`namespaceObject.labels.exists(k, k.startsWith("team"))`, `traffic.protocols.all(p, p == "tls")`,
		`1 +`, `namespace.name == ""`, `workload.lables`, `traffic.requestRate`, `[1,2,3].map(x, x * 2).size() > 1`,
		`workload.labels.all(k, workload.labels.all(j, k + j != ""))`, `"a".matches("(")`, `1/0 == 1`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		dp := &v1alpha1.DataplanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "fuzz"},
			Spec: v1alpha1.DataplanePolicySpec{Rules: []v1alpha1.Rule{{Name: "r", When: expr, Mode: v1alpha1.RuleMode(v1alpha1.ModeNone)}}}}
		p, errs := Compile(dp)
		if len(errs) > 0 {
			if p != nil {
				t.Fatal("a policy with errors was compiled")
			}
			for _, err := range errs {
				if err.Field != "spec.rules[0].when" {
					t.Fatalf("error on %q: %v", err.Field, err)
				}
			}
			return
		}
		d := Decide(baseInput(p))
		if d.Rule != "rule:r" && d.Rule != RuleKeepCurrent {
			t.Fatalf("decided by %q", d.Rule)
		}
	})
}
