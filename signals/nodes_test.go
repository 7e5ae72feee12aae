package signals

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestNodeRequirement(t *testing.T) {
	expr := func(key, op string, values ...string) NodeExpression {
		return NodeExpression{Key: key, Operator: op, Values: values}
	}
	term := func(es ...NodeExpression) NodeTerm { return NodeTerm{Expressions: es} }
	linux := map[string]string{LabelNodeOS: "linux", "pool": "general", "gpus": "0"}
	gpu := map[string]string{LabelNodeOS: "linux", "pool": "gpu", "gpus": "4"}
	win := map[string]string{LabelNodeOS: "windows", "pool": "general"}
	cases := []struct {
		name    string
		req     NodeRequirement
		matches []bool // linux, gpu, win
		windows bool
	}{
		{"none", NodeRequirement{}, []bool{true, true, true}, false},
		{"nodeSelector", NodeRequirement{Selector: map[string]string{"pool": "gpu"}}, []bool{false, true, false}, false},
		{"windows selector", NodeRequirement{Selector: map[string]string{LabelNodeOS: "windows"}}, []bool{false, false, true}, true},
		{"In", NodeRequirement{Terms: []NodeTerm{term(expr("pool", "In", "gpu", "general"))}}, []bool{true, true, true}, false},
		{"NotIn", NodeRequirement{Terms: []NodeTerm{term(expr("pool", "NotIn", "gpu"))}}, []bool{true, false, true}, false},
		{"Exists and DoesNotExist", NodeRequirement{Terms: []NodeTerm{term(expr("gpus", "Exists"), expr("taint", "DoesNotExist"))}}, []bool{true, true, false}, false},
		{"Gt", NodeRequirement{Terms: []NodeTerm{term(expr("gpus", "Gt", "2"))}}, []bool{false, true, false}, false},
		{"Lt with a bad value", NodeRequirement{Terms: []NodeTerm{term(expr("gpus", "Lt", "x"))}}, []bool{false, false, false}, false},
		{"terms are ORed", NodeRequirement{Terms: []NodeTerm{term(expr("pool", "In", "gpu")), term(expr(LabelNodeOS, "In", "windows"))}}, []bool{false, true, true}, false},
		{"windows affinity in every term", NodeRequirement{Terms: []NodeTerm{term(expr(LabelNodeOS, "In", "windows")), term(expr(LabelNodeOS, "In", "windows"), expr("pool", "In", "general"))}}, []bool{false, false, true}, true},
		{"windows or linux is not windows-only", NodeRequirement{Terms: []NodeTerm{term(expr(LabelNodeOS, "In", "windows", "linux"))}}, []bool{true, true, true}, false},
		{"a field-only term matches every node", NodeRequirement{Terms: []NodeTerm{term()}}, []bool{true, true, true}, false},
	}
	for _, tc := range cases {
		for i, n := range []map[string]string{linux, gpu, win} {
			if got := tc.req.Matches(n); got != tc.matches[i] {
				t.Errorf("%s: node %d matches %v, want %v", tc.name, i, got, tc.matches[i])
			}
		}
		if got := tc.req.WindowsOnly(); got != tc.windows {
			t.Errorf("%s: WindowsOnly %v, want %v", tc.name, got, tc.windows)
		}
	}
}

func TestNodeRequirementOf(t *testing.T) {
	spec := &corev1.PodSpec{NodeSelector: map[string]string{"a": "b"}, Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: LabelNodeOS, Operator: corev1.NodeSelectorOpIn, Values: []string{"windows"}}},
			MatchFields:      []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}},
		}}}}}}
	r := NodeRequirementOf(spec)
	if r.Selector["a"] != "b" || len(r.Terms) != 1 || len(r.Terms[0].Expressions) != 1 || r.Terms[0].Expressions[0].Key != LabelNodeOS {
		t.Fatalf("got %+v", r)
	}
	if !r.WindowsOnly() {
		t.Error("a required affinity on kubernetes.io/os In [windows] is Windows-only")
	}
}
