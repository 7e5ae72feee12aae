package l7policy

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Propose computes how the selector-attached policies that select the
// wave's workloads move to the waypoint (see the package doc). It returns an
// error only for malformed input, naming the field.
func Propose(in Input) (*Plan, error) {
	if err := normalize(&in); err != nil {
		return nil, err
	}
	pols := make([]*policy, 0, len(in.Policies))
	for i, u := range in.Policies {
		p, err := decodePolicy(fmt.Sprintf("policies[%d]", i), u, &in)
		if err != nil {
			return nil, err
		}
		pols = append(pols, p)
	}
	sort.SliceStable(pols, func(i, j int) bool {
		a, b := pols[i], pols[j]
		if a.root != b.root {
			return b.root
		}
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		return a.name < b.name
	})
	for i := 1; i < len(pols); i++ {
		if pols[i].ref == pols[i-1].ref {
			return nil, fmt.Errorf("%s: %s is given twice", pols[i].field, pols[i].ref)
		}
	}
	svcs := make([]*service, 0, len(in.Services))
	for i, u := range in.Services {
		s, err := decodeService(fmt.Sprintf("services[%d]", i), u, in.Namespace)
		if err != nil {
			return nil, err
		}
		svcs = append(svcs, s)
	}
	sort.SliceStable(svcs, func(i, j int) bool { return svcs[i].name < svcs[j].name })

	// A workload that some policy blocks does not move; without it other
	// policies may move differently, so plan again until nothing new is blocked.
	moving := make([]bool, len(in.Workloads))
	for i := range moving {
		moving[i] = true
	}
	var blocked []string
	seen := map[string]bool{}
	for {
		pl := &planner{in: &in, svcs: svcs, moving: moving, principal: principal(&in)}
		plan, err := pl.run(pols)
		if err != nil {
			return nil, err
		}
		for _, b := range pl.blocked {
			if !seen[b.text] {
				seen[b.text] = true
				blocked = append(blocked, b.text)
			}
		}
		changed := false
		for _, b := range pl.blocked {
			for _, w := range b.workloads {
				if moving[w] {
					moving[w], changed = false, true
				}
			}
		}
		if !changed {
			plan.Blocked = blocked
			return plan, nil
		}
	}
}

func normalize(in *Input) error {
	if in.RootNamespace == "" {
		in.RootNamespace = DefaultRootNamespace
	}
	if in.TrustDomain == "" {
		in.TrustDomain = DefaultTrustDomain
	}
	if in.WaypointServiceAccount == "" {
		in.WaypointServiceAccount = in.Waypoint
	}
	for _, f := range []struct{ name, v string }{{"Namespace", in.Namespace}, {"RootNamespace", in.RootNamespace}} {
		if errs := validation.IsDNS1123Label(f.v); len(errs) > 0 {
			return fmt.Errorf("field %s %q: want a namespace name (%s)", f.name, f.v, strings.Join(errs, "; "))
		}
	}
	if in.Namespace == in.RootNamespace {
		return fmt.Errorf("field Namespace %q: the root namespace cannot move to a waypoint", in.Namespace)
	}
	if errs := validation.IsDNS1123Subdomain(in.Waypoint); len(errs) > 0 {
		return fmt.Errorf("field Waypoint %q: want a Gateway name (%s)", in.Waypoint, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(in.WaypointServiceAccount); len(errs) > 0 {
		return fmt.Errorf("field WaypointServiceAccount %q: want a service account name (%s)", in.WaypointServiceAccount, strings.Join(errs, "; "))
	}
	if in.TrustDomain != strings.TrimSpace(in.TrustDomain) || strings.ContainsAny(in.TrustDomain, "/ ") {
		return fmt.Errorf("field TrustDomain %q: want a trust domain without spaces or slashes", in.TrustDomain)
	}
	if errs := validation.IsValidLabelValue(in.Migration); len(errs) > 0 || in.Migration == "" {
		return fmt.Errorf("field Migration %q: want a MeshMigration name usable as a label value (%s)", in.Migration, strings.Join(errs, "; "))
	}
	for i, w := range in.Workloads {
		if w.Kind == "" || w.Name == "" {
			return fmt.Errorf("field Workloads[%d]: kind and name must be set, got %q/%q", i, w.Kind, w.Name)
		}
	}
	return nil
}

// principal is the waypoint's identity as AuthorizationPolicy principals
// spell it: the SPIFFE ID spiffe://<td>/ns/<ns>/sa/<sa> without its scheme.
func principal(in *Input) string {
	return in.TrustDomain + "/ns/" + in.Namespace + "/sa/" + in.WaypointServiceAccount
}

type blockEntry struct {
	text      string
	workloads []int
}

type planner struct {
	in        *Input
	svcs      []*service
	moving    []bool
	principal string
	blocked   []blockEntry
}

func (pl *planner) block(p *policy, ws []int, reason string) {
	pl.blocked = append(pl.blocked, blockEntry{text: fmt.Sprintf("%s: %s (workloads %s)", p.ref, reason, strings.Join(pl.names(ws), ", ")), workloads: ws})
}

func (pl *planner) names(ws []int) []string {
	out := make([]string, 0, len(ws))
	for _, w := range ws {
		out = append(out, pl.in.Workloads[w].Kind+"/"+pl.in.Workloads[w].Name)
	}
	return out
}

func (pl *planner) run(pols []*policy) (*Plan, error) {
	plan := &Plan{}
	for _, p := range pols {
		if p.ownedBy || p.targeted || p.class == classNone {
			continue
		}
		var ws []int
		for i, w := range pl.in.Workloads {
			if pl.moving[i] && p.selects(w) {
				ws = append(ws, i)
			}
		}
		if len(ws) == 0 {
			continue
		}
		switch {
		case p.class == classMove && p.kind == KindRequestAuthentication && (p.root || !p.hasSelector):
			// Waypoints never read selector-less (namespace- or mesh-wide)
			// policies, and ztunnel ignores JWT rules: the waypoint needs a
			// copy; the original can stay as it is for the sidecars.
			if svcs := pl.services(p, ws); svcs != nil {
				cp, err := pl.copyOf(p, svcs)
				if err != nil {
					return nil, err
				}
				plan.Admit = append(plan.Admit, cp)
			}
		case p.class == classMove:
			m, err := pl.move(p, ws)
			if err != nil {
				return nil, err
			}
			if m != nil {
				plan.Moves = append(plan.Moves, *m)
			}
		case p.class == classAdmit:
			objs, err := pl.admit(p, ws)
			if err != nil {
				return nil, err
			}
			plan.Admit = append(plan.Admit, objs...)
		}
	}
	return plan, nil
}

// services finds the Services that select the workloads, blocking the
// workloads no Service selects and those a Service would widen the policy
// to: a Service that selects pods the policy does not select (its selector
// does not hold all of the policy's matchLabels), or one that already uses
// another waypoint. It returns nil when anything was blocked.
func (pl *planner) services(p *policy, ws []int) []*service {
	var out []*service
	ok := true
	for _, s := range pl.svcs {
		var sel []int
		for _, w := range ws {
			if s.selects(pl.in.Workloads[w]) {
				sel = append(sel, w)
			}
		}
		if len(sel) == 0 {
			continue
		}
		switch {
		case !subset(withoutDataplane(p.matchLabels), s.selector):
			pl.block(p, sel, fmt.Sprintf("Service %s (selector %s) also selects pods the policy does not (selector %s): a copy attached to it would widen the policy",
				s.name, labelsString(s.selector), labelsString(p.matchLabels)))
			ok = false
		case s.waypoint != "" && (s.waypoint != pl.in.Waypoint || (s.wpNS != "" && s.wpNS != pl.in.Namespace)):
			pl.block(p, sel, fmt.Sprintf("Service %s uses waypoint %s, not %s/%s: the copy would be enforced by a waypoint with another identity",
				s.name, s.waypoint, pl.in.Namespace, pl.in.Waypoint))
			ok = false
		case s.remapped != "" && p.usesPorts():
			pl.block(p, sel, fmt.Sprintf("it matches destination ports and Service %s maps port %s: the waypoint sees the Service's port, the sidecar the pod's, so the copy would match other ports",
				s.name, s.remapped))
			ok = false
		default:
			out = append(out, s)
		}
	}
	for _, w := range ws {
		covered := false
		for _, s := range pl.svcs {
			covered = covered || s.selects(pl.in.Workloads[w])
		}
		if !covered {
			pl.block(p, []int{w}, "no Service selects the workload: a copy attached with targetRefs would not cover it")
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return out
}

func (pl *planner) move(p *policy, ws []int) (*Move, error) {
	switch {
	case p.root:
		pl.block(p, ws, fmt.Sprintf("in the root namespace %s, so it applies mesh-wide: narrowing it would change it in every namespace; attach it to the waypoint with targetRefs first", p.namespace))
		return nil, nil
	case !p.hasSelector:
		pl.block(p, ws, "namespace-wide (no selector): narrowing it would change it for every workload of the namespace, and a pod without the meshshift.io/dataplane label would lose it; give it a selector or attach it with targetRefs first")
		return nil, nil
	case p.matchLabels[LabelDataplane] != "" && p.matchLabels[LabelDataplane] != ModeSidecar:
		pl.block(p, ws, fmt.Sprintf("its selector already holds %s=%s: it cannot be narrowed to sidecar pods", LabelDataplane, p.matchLabels[LabelDataplane]))
		return nil, nil
	}
	svcs := pl.services(p, ws)
	if svcs == nil {
		return nil, nil
	}
	cp, err := pl.copyOf(p, svcs)
	if err != nil {
		return nil, err
	}
	nw, err := pl.narrow(p)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(svcs))
	for _, s := range svcs {
		names = append(names, s.name)
	}
	wn := pl.names(ws)
	return &Move{
		Source: p.given, Copy: cp, Narrowed: nw, Workloads: wn, Services: names,
		Why: fmt.Sprintf("%s (%s) moves to waypoint %s on Service %s for %s; the original keeps guarding pods still on a sidecar",
			p.ref, p.what, pl.in.Waypoint, strings.Join(names, ", "), strings.Join(wn, ", ")),
	}, nil
}

// copyOf is the original's spec without its selector, attached with
// targetRefs to the Services, in the wave's namespace.
func (pl *planner) copyOf(p *policy, svcs []*service) (*unstructured.Unstructured, error) {
	spec, err := copyMap(p.spec)
	if err != nil {
		return nil, fmt.Errorf("%s: spec: %w", p.field, err)
	}
	delete(spec, "selector")
	refs := make([]interface{}, 0, len(svcs))
	for _, s := range svcs {
		refs = append(refs, map[string]interface{}{"group": "", "kind": "Service", "name": s.name})
	}
	spec["targetRefs"] = refs
	return newPolicy(p.apiVersion, p.kind, pl.in.Namespace, objectName(p.baseName(), "-meshshift"), pl.in.Migration, p.ref, spec), nil
}

// narrow is the original narrowed to sidecar pods, with the rules that let
// the waypoint through, and AnnotationOriginal holding the original's spec.
func (pl *planner) narrow(p *policy) (*unstructured.Unstructured, error) {
	out, err := copyObject(p.given)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.field, err)
	}
	spec, err := copyMap(p.spec)
	if err != nil {
		return nil, fmt.Errorf("%s: spec: %w", p.field, err)
	}
	sel, _ := spec["selector"].(map[string]interface{})
	if sel == nil {
		sel = map[string]interface{}{}
	}
	ml, _ := sel["matchLabels"].(map[string]interface{})
	if ml == nil {
		ml = map[string]interface{}{}
	}
	ml[LabelDataplane] = ModeSidecar
	sel["matchLabels"] = ml
	spec["selector"] = sel
	switch p.action {
	case "ALLOW":
		if extra := waypointRules(p.rules(), pl.principal); len(extra) > 0 {
			spec["rules"] = append(append([]interface{}(nil), p.rules()...), extra...)
		}
	case "DENY", "AUDIT", "CUSTOM":
		rules := p.rules()
		if len(rules) > 0 {
			nr := make([]interface{}, 0, len(rules))
			for _, r := range rules {
				m, ok := r.(map[string]interface{})
				if ok && (p.action != "DENY" || sourceDependent(m)) {
					r = exemptWaypoint(m, pl.principal)
				}
				nr = append(nr, r)
			}
			spec["rules"] = nr
		}
	}
	out.Object["spec"] = spec
	rec := map[string]interface{}{}
	if p.hasSpec {
		rec["spec"] = p.spec
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("%s: spec: %w", p.field, err)
	}
	ann := out.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationOriginal] = string(b)
	out.SetAnnotations(ann)
	return out, nil
}

// admit is what an L4 ALLOW policy selecting moving workloads needs: an
// ALLOW from the waypoint's principal for what the policy allows, selecting
// only the ambient-waypoint pods it selects; and, where the policy looks at
// the caller, its targetRefs copy, so the waypoint checks the caller that
// ztunnel no longer sees.
func (pl *planner) admit(p *policy, ws []int) ([]*unstructured.Unstructured, error) {
	rules := waypointRules(p.rules(), pl.principal)
	if len(rules) == 0 {
		return nil, nil // it allows nothing, or it allows any caller, the waypoint included
	}
	svcs := pl.services(p, ws)
	if svcs == nil {
		return nil, nil
	}
	ml := stringMapToJSON(p.matchLabels)
	ml[LabelDataplane] = ModeAmbientWaypoint
	spec := map[string]interface{}{
		"selector": map[string]interface{}{"matchLabels": ml},
		"action":   "ALLOW",
		"rules":    rules,
	}
	ad := newPolicy("security.istio.io/v1", KindAuthorizationPolicy, pl.in.Namespace, objectName(p.baseName(), "-meshshift-admit"), pl.in.Migration, p.ref, spec)
	cp, err := pl.copyOf(p, svcs)
	if err != nil {
		return nil, err
	}
	return []*unstructured.Unstructured{ad, cp}, nil
}

// withoutDataplane is a selector without LabelDataplane, which Services do
// not select on: the copy covers the workload's pods on either side of the move.
func withoutDataplane(m map[string]string) map[string]string {
	if _, ok := m[LabelDataplane]; !ok {
		return m
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if k != LabelDataplane {
			out[k] = v
		}
	}
	return out
}
