package cli

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/meshshift/meshshift/migrator/l7policy"
)

// PolicyMove is explain's before and after of the selector-attached
// policies that move to the workload's waypoint (plan --emit-policies
// writes the same objects).
type PolicyMove struct {
	Waypoint string         `json:"waypoint"`
	Changes  []PolicyChange `json:"changes,omitempty"`
	// Blocked says why a policy selecting the workload cannot move.
	Blocked []string `json:"blocked,omitempty"`
}

// PolicyChange is one policy selecting the workload and what it becomes.
type PolicyChange struct {
	// Object is "<Kind> <namespace>/<name>" of the policy as it is.
	Object string `json:"object"`
	Why    string `json:"why"`
	// Before is the policy's spec as it is (YAML).
	Before string `json:"before"`
	// After are the objects it becomes: the targetRefs copy and the narrowed
	// original, or the admit policy and the L4 copy.
	After []PolicyObject `json:"after"`
}

// PolicyObject is one object of a PolicyChange's after.
type PolicyObject struct {
	Object string `json:"object"`
	Role   string `json:"role"`
	Spec   string `json:"spec"`
}

// explainPolicyMove is the workload's PolicyMove, nil when no policy
// selecting it moves, is admitted or is blocked.
func explainPolicyMove(inv *Inventory, w *WorkloadInfo, o *Options) *PolicyMove {
	ps, err := ProposePolicies(inv, o, DefaultEmitMigration)
	if err != nil {
		return &PolicyMove{Blocked: []string{"cannot propose the L7 policy move: " + err.Error()}}
	}
	me := w.Kind + "/" + w.Name
	for _, np := range ps {
		if np.Namespace != w.Namespace {
			continue
		}
		pm := &PolicyMove{Waypoint: np.Namespace + "/" + np.Waypoint}
		for _, m := range np.Plan.Moves {
			if !contains(m.Workloads, me) {
				continue
			}
			pm.Changes = append(pm.Changes, PolicyChange{
				Object: refOf(m.Source), Why: m.Why, Before: specYAML(m.Source),
				After: []PolicyObject{
					{Object: refOf(m.Copy), Role: "targetRefs copy, enforced by the waypoint", Spec: specYAML(m.Copy)},
					{Object: refOf(m.Narrowed), Role: "narrowed original, for pods still on a sidecar", Spec: specYAML(m.Narrowed)},
				},
			})
		}
		var admits []*PolicyChange
		bySource := map[string]*PolicyChange{}
		for _, a := range np.Plan.Admit {
			src := a.GetAnnotations()[l7policy.AnnotationSource]
			c := bySource[src]
			if c == nil {
				sel, _, _ := unstructured.NestedStringMap(a.Object, "spec", "selector", "matchLabels")
				why := "an L4 ALLOW that ztunnel keeps enforcing; behind the waypoint it sees the waypoint's identity"
				switch {
				case a.GetKind() == l7policy.KindRequestAuthentication:
					why = "a namespace- or mesh-wide RequestAuthentication: the waypoint reads no policy without targetRefs"
					if orig := np.source(src); orig != nil {
						osel, _, _ := unstructured.NestedStringMap(orig.Object, "spec", "selector", "matchLabels")
						if !selectsPods(osel, w.Template.Labels) {
							continue // a root-namespace one selecting other workloads
						}
					}
				case sel == nil || !selectsPods(sel, w.Template.Labels):
					continue // not for this workload
				}
				c = &PolicyChange{Object: strings.Replace(src, "/", " ", 1), Why: why}
				if orig := np.source(src); orig != nil {
					c.Object, c.Before = refOf(orig), specYAML(orig)
				}
				bySource[src] = c
				admits = append(admits, c)
			}
			role := "ztunnel admit policy for the waypoint's identity, on the moved pods"
			if _, ok := a.Object["spec"].(map[string]interface{})["targetRefs"]; ok {
				role = "targetRefs copy: the waypoint checks the caller"
				if a.GetKind() == l7policy.KindRequestAuthentication {
					role = "targetRefs copy: the waypoint validates the JWT"
				}
			}
			c.After = append(c.After, PolicyObject{Object: refOf(a), Role: role, Spec: specYAML(a)})
		}
		for _, c := range admits {
			pm.Changes = append(pm.Changes, *c)
		}
		for _, b := range np.Plan.Blocked {
			if strings.Contains(b, me+")") || strings.Contains(b, me+",") {
				pm.Blocked = append(pm.Blocked, b)
			}
		}
		if len(pm.Changes)+len(pm.Blocked) == 0 {
			return nil
		}
		return pm
	}
	return nil
}

// selectsPods reports whether an admit policy's selector, but for the
// dataplane label the moved pods get, selects the template's pods.
func selectsPods(sel, labels map[string]string) bool {
	for k, v := range sel {
		if k != l7policy.LabelDataplane && labels[k] != v {
			return false
		}
	}
	return true
}

// source finds a policy read by its "<Kind>/<namespace>/<name>".
func (np *NamespacePolicies) source(ref string) *unstructured.Unstructured {
	for u := range np.sources {
		if u.GetKind()+"/"+u.GetNamespace()+"/"+u.GetName() == ref {
			return u
		}
	}
	return nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func refOf(u *unstructured.Unstructured) string {
	return u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
}

func specYAML(u *unstructured.Unstructured) string {
	b, err := yaml.Marshal(u.Object["spec"])
	if err != nil {
		return fmt.Sprintf("(spec cannot be shown: %v)", err)
	}
	return string(b)
}

// printPolicyMove writes explain's before/after table section.
func printPolicyMove(o *out, pm *PolicyMove) {
	if pm == nil {
		return
	}
	o.f("\nL7 policies moving to waypoint %s (MeshMigration spec.policyMigration: Apply):\n", pm.Waypoint)
	for _, c := range pm.Changes {
		o.f("  %s: %s\n", c.Object, c.Why)
		o.ln("    before:")
		o.ln(indent(c.Before, "      "))
		for _, a := range c.After {
			o.f("    after: %s (%s):\n", a.Object, a.Role)
			o.ln(indent(a.Spec, "      "))
		}
	}
	for _, b := range pm.Blocked {
		o.f("  blocked: %s\n", b)
	}
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pre + l
	}
	return strings.Join(lines, "\n")
}
