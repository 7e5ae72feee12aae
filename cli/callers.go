package cli

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
)

// movableL7 are the features of selector-attached L7 AuthorizationPolicies
// (ALLOW, DENY, CUSTOM, AUDIT) that an L7 policy migration (MeshMigration
// spec.policyMigration: Apply) attaches to the workload's waypoint with
// targetRefs instead of leaving them to ztunnel.
var movableL7 = map[signals.Feature]bool{
	signals.FeatureL7AuthzSelector:  true,
	signals.FeatureL7AllowNarrowed:  true,
	signals.FeatureL7DenyBroadened:  true,
	signals.FeatureL7DenyIgnored:    true,
	signals.FeatureExtAuthzSelector: true,
	signals.FeatureAuditSelector:    true,
}

// policyMove reports whether a workload's L7 policies move to its waypoint
// toward the target: the target is ambient-waypoint, the workload is kept on
// a sidecar only by selector-attached L7 policies (the DENY-all trap and the
// other ztunnel-unsafe AuthorizationPolicies), and with those policies
// attached to the waypoint Decide moves it to ambient-waypoint. It returns
// that decision. Such a workload is protected by its waypoint only, and a
// caller on a sidecar bypasses the waypoint (istio#57213): its callers must
// leave their sidecars first.
func policyMove(e *Evaluated, o *Options) (policies.Decision, bool) {
	if o.Target != meshv1alpha1.ModeAmbientWaypoint ||
		(e.Decision.Rule != policies.RuleDenyAllTrap && e.Decision.Rule != policies.RuleFeatureSidecar) {
		return policies.Decision{}, false
	}
	moved := false
	fs := make(signals.Features, 0, len(e.Input.Features))
	for _, f := range e.Input.Features {
		if movableL7[f.Feature] {
			moved = true
			f.Feature = signals.FeatureWaypointAuthz
		}
		fs = append(fs, f)
	}
	if !moved {
		return policies.Decision{}, false
	}
	in := e.Input
	in.Features = fs
	d := policies.Decide(in)
	if d.Mode != meshv1alpha1.ModeAmbientWaypoint {
		return policies.Decision{}, false
	}
	d.Reason = "its selector-attached L7 policies move to its waypoint (Gateway " + d.Waypoint + ", MeshMigration spec.policyMigration: Apply); " + d.Reason
	d.Warnings = append(slices.Clone(d.Warnings), "moves only when the migration applies the L7 policy move; otherwise "+e.Decision.Reason)
	return d, true
}

// sidecarCaller is a caller on a sidecar that will not leave it before the
// callee flips, and why.
type sidecarCaller struct {
	key signals.WorkloadKey
	why string
}

func (c sidecarCaller) String() string { return c.key.String() + " (" + c.why + ")" }

func joinCallers(cs []sidecarCaller) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.String()
	}
	return strings.Join(s, ", ")
}

// callerFate says what happens to a caller in a plan or precheck.
type callerFate struct {
	// known is false for a caller the inventory does not hold.
	known bool
	// sidecar: the caller runs on a sidecar now (policies.CurrentMode).
	sidecar bool
	// leaves: it leaves its sidecar in the plan or the checked waves; else
	// stays says why not.
	leaves bool
	stays  string
}

// currentModes are every inventoried workload's current modes, in or out
// of the options' scope, by key.
func (inv *Inventory) currentModes() map[signals.WorkloadKey]meshv1alpha1.Mode {
	out := make(map[signals.WorkloadKey]meshv1alpha1.Mode, len(inv.Workloads))
	for _, w := range inv.Workloads {
		in := inv.Input(w, &Options{})
		m, _ := policies.CurrentMode(&in.Workload, &in.Namespace)
		out[signals.WorkloadKey{Namespace: w.Namespace, Name: w.Name}] = m
	}
	return out
}

// callersOf are the callers the traffic snapshot gives a workload.
func (inv *Inventory) callersOf(ns, name string) []signals.WorkloadKey {
	t, ok := inv.Traffic.Lookup(ns, name)
	if !ok {
		return nil
	}
	return t.Callers
}

// orderWaves cuts the candidate namespaces, already sorted by score, into
// at most n waves of near-equal size so that for every edge (caller
// namespace → callee namespace) the caller's wave is not later than the
// callee's; the namespaces of a cycle (a strongly connected component) share
// one wave. Without edges it is the plain cut of the sorted list.
func orderWaves(sorted []string, edges map[string]map[string]bool, n int) [][]string {
	rank := make(map[string]int, len(sorted))
	for i, ns := range sorted {
		rank[ns] = i
	}
	comps := stronglyConnected(sorted, edges)
	compOf := map[string]int{}
	for i, c := range comps {
		sort.Slice(c, func(a, b int) bool { return rank[c[a]] < rank[c[b]] })
		for _, ns := range c {
			compOf[ns] = i
		}
	}
	// The component DAG; Kahn's algorithm picking, among the components
	// whose callers are placed, the one with the best-ranked namespace.
	indeg := make([]int, len(comps))
	succ := make([]map[int]bool, len(comps))
	for from, tos := range edges {
		cf, ok := compOf[from]
		if !ok {
			continue
		}
		for to := range tos {
			ct, ok := compOf[to]
			if !ok || ct == cf {
				continue
			}
			if succ[cf] == nil {
				succ[cf] = map[int]bool{}
			}
			if !succ[cf][ct] {
				succ[cf][ct] = true
				indeg[ct]++
			}
		}
	}
	placed := make([]bool, len(comps))
	var order [][]string
	for len(order) < len(comps) {
		best := -1
		for i := range comps {
			if !placed[i] && indeg[i] == 0 && (best < 0 || rank[comps[i][0]] < rank[comps[best][0]]) {
				best = i
			}
		}
		placed[best] = true
		order = append(order, comps[best])
		for to := range succ[best] {
			indeg[to]--
		}
	}
	var waves [][]string
	left := len(sorted)
	for i := 0; i < n && len(order) > 0; i++ {
		size := (left + (n - i) - 1) / (n - i)
		var wave []string
		for len(order) > 0 && (len(wave) == 0 || len(wave) < size) {
			wave = append(wave, order[0]...)
			order = order[1:]
		}
		left -= len(wave)
		waves = append(waves, wave)
	}
	return waves
}

// stronglyConnected returns the strongly connected components of the graph
// over nodes (Tarjan's algorithm); every node is in exactly one, and edges
// to anything else are ignored.
func stronglyConnected(nodes []string, edges map[string]map[string]bool) [][]string {
	isNode := make(map[string]bool, len(nodes))
	for _, v := range nodes {
		isNode[v] = true
	}
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var comps [][]string
	var visit func(v string)
	visit = func(v string) {
		index[v] = len(index)
		low[v] = index[v]
		stack = append(stack, v)
		onStack[v] = true
		next := make([]string, 0, len(edges[v]))
		for w := range edges[v] {
			if isNode[w] {
				next = append(next, w)
			}
		}
		sort.Strings(next)
		for _, w := range next {
			if _, seen := index[w]; !seen {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			var c []string
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				c = append(c, w)
				if w == v {
					break
				}
			}
			comps = append(comps, c)
		}
	}
	for _, v := range nodes {
		if _, seen := index[v]; !seen {
			visit(v)
		}
	}
	return comps
}

// planMover is a workload whose L7 policies move to its waypoint in a plan.
type planMover struct {
	namespace, name, waypoint string
}

// callerOrder works out, for a plan, what the callers of the workloads whose
// L7 policies move to a waypoint demand: a namespace whose mover has a caller
// on a sidecar that does not leave it in the plan (out of scope, kept on its
// sidecar, or in a blocked namespace) is blocked too (repeated until nothing
// changes, since blocking a namespace keeps its callers on sidecars); every
// other sidecar caller in another namespace gives an edge caller namespace →
// callee namespace. flips says whether an in-scope workload's row leaves its
// sidecar; blocked holds the namespaces already blocked and gains the new
// ones with their reasons.
func callerOrder(inv *Inventory, o *Options, movers []planMover, flips map[signals.WorkloadKey]bool,
	blocked map[string][]string) (edges map[string]map[string]bool, notes []string) {
	var cur map[signals.WorkloadKey]meshv1alpha1.Mode // read on the first caller
	fate := func(c signals.WorkloadKey) callerFate {
		if cur == nil {
			cur = inv.currentModes()
		}
		m, known := cur[c]
		f := callerFate{known: known, sidecar: m == meshv1alpha1.ModeSidecar}
		switch {
		case !o.selected(c.Namespace):
			f.stays = "outside the planned namespaces"
		case len(blocked[c.Namespace]) > 0:
			f.stays = "its namespace " + c.Namespace + " is blocked"
		case !flips[c]:
			f.stays = "keeps its sidecar in this plan"
		default:
			f.leaves = true
		}
		return f
	}
	for changed := true; changed; {
		changed = false
		for _, m := range movers {
			if len(blocked[m.namespace]) > 0 {
				continue
			}
			var stay []sidecarCaller
			for _, c := range inv.callersOf(m.namespace, m.name) {
				if f := fate(c); f.sidecar && !f.leaves {
					stay = append(stay, sidecarCaller{c, f.stays})
				}
			}
			if len(stay) > 0 {
				blocked[m.namespace] = append(blocked[m.namespace], fmt.Sprintf(
					"%s: its L7 policies move to its waypoint (Gateway %s), and callers on sidecars that do not leave them would bypass it (istio#57213): %s",
					m.name, m.waypoint, joinCallers(stay)))
				changed = true
			}
		}
	}
	edges = map[string]map[string]bool{}
	unknown := map[string]bool{}
	for _, m := range movers {
		if len(blocked[m.namespace]) > 0 {
			continue
		}
		for _, c := range inv.callersOf(m.namespace, m.name) {
			f := fate(c)
			if !f.known && !unknown[c.String()] {
				unknown[c.String()] = true
				notes = append(notes, fmt.Sprintf("caller %s of %s/%s is not among the objects read; its mode is unknown, so the waves do not wait for it",
					c, m.namespace, m.name))
			}
			if !f.sidecar || c.Namespace == m.namespace {
				continue
			}
			if edges[c.Namespace] == nil {
				edges[c.Namespace] = map[string]bool{}
			}
			if !edges[c.Namespace][m.namespace] {
				edges[c.Namespace][m.namespace] = true
				notes = append(notes, fmt.Sprintf("wave order: namespace %s flips no later than %s: its sidecar workload %s calls %s/%s, whose L7 policies move to its waypoint (Gateway %s; sidecar callers bypass waypoints, istio#57213)",
					c.Namespace, m.namespace, c, m.namespace, m.name, m.waypoint))
			}
		}
	}
	return edges, notes
}

// Checks of the precheck findings about moving L7 policies.
const (
	checkL7PolicyMove  = "l7-policy-move"
	checkSidecarCaller = "sidecar-callers"
	checkUnknownCaller = "unknown-caller"
)

// callerCheck finds, for precheck, the callers on sidecars of a workload
// whose L7 policies move to its waypoint that do not leave their sidecars
// in the namespaces checked.
type callerCheck struct {
	inv   *Inventory
	o     *Options
	cur   map[signals.WorkloadKey]meshv1alpha1.Mode
	evals map[signals.WorkloadKey]*Evaluated
}

func newCallerCheck(inv *Inventory, o *Options, evals []Evaluated) *callerCheck {
	c := &callerCheck{inv: inv, o: o, evals: make(map[signals.WorkloadKey]*Evaluated, len(evals))}
	for i := range evals {
		e := &evals[i]
		c.evals[signals.WorkloadKey{Namespace: e.W.Namespace, Name: e.W.Name}] = e
	}
	return c
}

// fate says whether caller k runs on a sidecar now and, if it does, why it
// would not leave it in the namespaces checked ("" when it does).
func (c *callerCheck) fate(k signals.WorkloadKey) callerFate {
	if c.cur == nil {
		c.cur = c.inv.currentModes()
	}
	m, known := c.cur[k]
	f := callerFate{known: known, sidecar: m == meshv1alpha1.ModeSidecar}
	e, ok := c.evals[k]
	switch {
	case !c.o.selected(k.Namespace) || !ok:
		f.stays = "outside the namespaces checked"
	case e.Decision.Mode != meshv1alpha1.ModeSidecar:
		f.leaves = true
	default:
		if _, moves := policyMove(e, c.o); moves {
			f.leaves = true
		} else {
			f.stays = e.Decision.Reason
		}
	}
	return f
}

// check adds a blocker naming e's callers on sidecars that stay there, and
// a warning for each caller the inventory does not hold.
func (c *callerCheck) check(e *Evaluated, waypoint string, add func(Finding)) {
	var stay []sidecarCaller
	for _, k := range c.inv.callersOf(e.W.Namespace, e.W.Name) {
		f := c.fate(k)
		if !f.known {
			add(Finding{Severity: SeverityWarning, Check: checkUnknownCaller, Namespace: e.W.Namespace, Workload: e.W.Name, Object: k.String(),
				Message: "caller " + k.String() + " is not among the objects read: cannot tell whether it runs on a sidecar, which would bypass the waypoint"})
			continue
		}
		if f.sidecar && !f.leaves {
			stay = append(stay, sidecarCaller{k, f.stays})
		}
	}
	if len(stay) == 0 {
		return
	}
	add(Finding{Severity: SeverityBlocker, Check: checkSidecarCaller, Namespace: e.W.Namespace, Workload: e.W.Name,
		Message: fmt.Sprintf("its L7 policies move to its waypoint (Gateway %s), and these callers stay on sidecars, which bypass waypoints (istio#57213), "+
			"so the policies would not be enforced on their requests: %s; flip them first or in the same wave", waypoint, joinCallers(stay))})
}
