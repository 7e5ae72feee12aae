package signals

import (
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// LabelNodeOS is the well-known node label naming the node's operating system.
const LabelNodeOS = "kubernetes.io/os"

// NodeRequirement is what a pod requires of its node: spec.nodeSelector and
// the required terms of spec.affinity.nodeAffinity (the scheduler's hard
// constraints; preferences and taints are not part of it).
type NodeRequirement struct {
	// Selector is spec.nodeSelector: every key must equal its value.
	Selector map[string]string
	// Terms are requiredDuringSchedulingIgnoredDuringExecution's terms: a node
	// matches when it matches any of them. None means no affinity.
	Terms []NodeTerm
}

// NodeTerm is one node selector term: every expression must match. Field
// expressions (matchFields, e.g. a DaemonSet pod's metadata.name) are left
// out: they pin a pod to one named node, not to a kind of node.
type NodeTerm struct {
	Expressions []NodeExpression
}

// NodeExpression is one label requirement (operators In, NotIn, Exists,
// DoesNotExist, Gt, Lt, as Kubernetes defines them).
type NodeExpression struct {
	Key      string
	Operator string
	Values   []string
}

// NodeRequirementOf reads a pod spec's node constraints.
func NodeRequirementOf(spec *corev1.PodSpec) NodeRequirement {
	r := NodeRequirement{Selector: spec.NodeSelector}
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		r.Terms = nodeTerms(a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms)
	}
	return r
}

func nodeTerms(ts []corev1.NodeSelectorTerm) []NodeTerm {
	out := make([]NodeTerm, 0, len(ts))
	for _, t := range ts {
		var nt NodeTerm
		for _, e := range t.MatchExpressions {
			nt.Expressions = append(nt.Expressions, NodeExpression{Key: e.Key, Operator: string(e.Operator), Values: e.Values})
		}
		out = append(out, nt)
	}
	return out
}

// IsZero reports whether the pod constrains its node at all.
func (r *NodeRequirement) IsZero() bool { return len(r.Selector) == 0 && len(r.Terms) == 0 }

// Matches reports whether a node with these labels satisfies r. A term whose
// only expressions were field expressions matches every node (see NodeTerm);
// an empty term list means no affinity; a non-empty list of terms where none
// matches means no node, as the scheduler treats it.
func (r *NodeRequirement) Matches(labels map[string]string) bool {
	for k, v := range r.Selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	if len(r.Terms) == 0 {
		return true
	}
	for i := range r.Terms {
		if r.Terms[i].matches(labels) {
			return true
		}
	}
	return false
}

func (t *NodeTerm) matches(labels map[string]string) bool {
	for _, e := range t.Expressions {
		if !e.matches(labels) {
			return false
		}
	}
	return true
}

func (e *NodeExpression) matches(labels map[string]string) bool {
	v, has := labels[e.Key]
	switch e.Operator {
	case string(corev1.NodeSelectorOpIn):
		return has && slices.Contains(e.Values, v)
	case string(corev1.NodeSelectorOpNotIn):
		return !has || !slices.Contains(e.Values, v)
	case string(corev1.NodeSelectorOpExists):
		return has
	case string(corev1.NodeSelectorOpDoesNotExist):
		return !has
	case string(corev1.NodeSelectorOpGt), string(corev1.NodeSelectorOpLt):
		if !has || len(e.Values) != 1 {
			return false
		}
		got, err1 := strconv.ParseInt(v, 10, 64)
		want, err2 := strconv.ParseInt(e.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if e.Operator == string(corev1.NodeSelectorOpGt) {
			return got > want
		}
		return got < want
	}
	return false // an operator the API server would have rejected
}

// WindowsOnly reports whether the pod can only run on Windows nodes: its
// nodeSelector asks for kubernetes.io/os=windows, or every required term
// admits only windows for kubernetes.io/os.
func (r *NodeRequirement) WindowsOnly() bool {
	if os, ok := r.Selector[LabelNodeOS]; ok {
		return os == "windows"
	}
	if len(r.Terms) == 0 {
		return false
	}
	for i := range r.Terms {
		if !r.Terms[i].windowsOnly() {
			return false
		}
	}
	return true
}

func (t *NodeTerm) windowsOnly() bool {
	for _, e := range t.Expressions {
		if e.Key == LabelNodeOS && e.Operator == string(corev1.NodeSelectorOpIn) && len(e.Values) > 0 &&
			!slices.ContainsFunc(e.Values, func(v string) bool { return v != "windows" }) {
			return true
		}
	}
	return false
}

// AnyMatches reports whether some node of nodes (label sets) satisfies r.
func (r *NodeRequirement) AnyMatches(nodes []map[string]string) bool {
	for _, n := range nodes {
		if r.Matches(n) {
			return true
		}
	}
	return false
}
