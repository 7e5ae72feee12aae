package policies

import (
	"cel.dev/cel-go/common/types"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// SystemNamespaces are never decided: Kubernetes' own and the meshes' usual ones.
// Capabilities.MeshNamespaces adds where the installed meshes actually run.
var SystemNamespaces = []string{
	"kube-system", "kube-public", "kube-node-lease",
	"istio-system", "istio-cni", "ztunnel",
	"linkerd", "linkerd-cni", "linkerd-viz",
	"cilium", "cilium-secrets",
	"meshshift-system",
}

// Minimum node support for the cilium mode (Cilium's documented kernel minimum).
var (
	CiliumMinKernel = signals.KernelVersion{Major: 5, Minor: 10}
	CiliumMinEBPF   = signals.EBPFBasic
)

var spireRef = signals.FeatureRef{Feature: signals.FeatureSpireCA, Kind: "mesh CA", Name: "SPIRE"}

// candidate is a mode with the rule that chose it; reason "" means the static
// reason of (rule, mode) precomputed in the policy's outputs.
type candidate struct {
	mode   v1alpha1.Mode
	rule   string
	reason string
	// asked is true when an annotation, a rule or the default asked for mode
	// (false when it keeps the current mode).
	asked bool
}

// Decide chooses the dataplane mode of one workload. It is pure and
// deterministic; see the package documentation for the precedence.
func Decide(in Input) Decision {
	p := in.Policy
	if p == nil {
		p = builtin
	}
	w, ns := &in.Workload, &in.Namespace

	// 1. Hard exclusions.
	if w.HostNetwork {
		return p.excluded(v1alpha1.ModeNone, RuleExcludeHostNetwork, "")
	}
	if isSystemNamespace(ns.Name, in.Capabilities.MeshNamespaces) {
		return p.excluded(v1alpha1.ModeNone, RuleExcludeNamespace,
			"namespace "+ns.Name+" belongs to Kubernetes or a mesh; its pods are never decided")
	}
	if _, ok := w.Annotations[AnnotationIstioStatus]; ok {
		return p.excluded(v1alpha1.ModeSidecar, RuleExcludeInjected, "")
	}
	if _, ok := w.Annotations[AnnotationLinkerdProxy]; ok {
		return p.excluded(v1alpha1.ModeSidecar, RuleExcludeInjected, "")
	}
	if w.Nodes.WindowsOnly() {
		return p.excluded(v1alpha1.ModeNone, RuleExcludeWindows, "")
	}

	cur, src := currentMode(w, ns)
	st := decideState{in: &in, cur: cur, src: src}
	nd := collectNeeds(in.Features, in.Capabilities.SpireCA, &spireRef)

	// 2. The pod's own annotation, where the policy allows it.
	if v, ok := w.Annotations[v1alpha1.AnnotationMode]; ok {
		m, ferr := ParseMode(podModePath, v)
		switch {
		case ferr != nil:
			st.warn("ignores the pod's " + ferr.Error())
		case !p.Allows(ns.Labels, m):
			st.warn("ignores the pod's " + v1alpha1.AnnotationMode + "=" + v + ": DataplanePolicy " +
				p.name + " allows only " + modeList(p.AllowedModes(ns.Labels)) + " in namespace " + ns.Name)
		default:
			st.warnings = append(st.warnings, unmetNeedWarnings(&nd, m)...)
			return p.finish(&st, candidate{mode: m, rule: RulePodAnnotation, asked: true})
		}
	}

	// 4, 5, 7: namespace annotation, policy rules, default. Whether they ask
	// for a mode or keep the current one decides how much step 3 may do.
	var c candidate
	var found bool
	if v, ok := ns.Annotations[v1alpha1.AnnotationMode]; ok {
		if m, ferr := ParseMode(nsModePath, v); ferr != nil {
			st.warn("ignores the namespace's " + ferr.Error())
		} else {
			c, found = candidate{mode: m, rule: RuleNamespaceAnnotation, asked: true}, true
		}
	}
	if !found && len(p.rules) > 0 {
		c, found = p.evalRules(&st)
	}
	if !found {
		if p.defaultMode == v1alpha1.RuleModeCurrent {
			c = candidate{mode: cur, rule: RuleKeepCurrent}
		} else {
			c = candidate{mode: v1alpha1.Mode(p.defaultMode), rule: RuleDefault, asked: true}
		}
	}

	// 3. Features only a sidecar serves decide outright — for a workload asked
	// to move, or one on a sidecar now. They never mesh a workload by themselves.
	ref, need := nd.strongest()
	if need == NeedBlock || need == NeedSidecar {
		if c.asked || cur == v1alpha1.ModeSidecar {
			rule := RuleFeatureSidecar
			if need == NeedBlock {
				rule = RuleDenyAllTrap
			}
			verb := "keeps sidecar: "
			if cur != v1alpha1.ModeSidecar {
				verb = "needs a sidecar: "
			}
			return p.finish(&st, candidate{mode: v1alpha1.ModeSidecar, rule: rule, reason: verb + featureReason(ref), asked: c.asked})
		}
		st.warn(featureReason(ref) + "; it has no effect while the workload runs " + string(cur))
		return p.finish(&st, c)
	}

	// 3 again: features a waypoint or Cilium's proxy serves adjust a mode that
	// was asked for; a kept mode is only warned about.
	if c.asked {
		c, st.warnings = applyNeeds(c, &nd, st.warnings)
	} else if need != NeedNothing && !need.Serves(cur) && cur != v1alpha1.ModeNone {
		st.warn(featureReason(ref) + "; it is not served while the workload runs " + string(cur))
	}
	return p.finish(&st, c)
}

// decideState is what one Decide call carries between its steps.
type decideState struct {
	in       *Input
	cur      v1alpha1.Mode
	src      currentSource
	warnings []string
}

func (st *decideState) warn(w string) { st.warnings = append(st.warnings, w) }

var (
	podModePath = fieldPath("metadata", "annotations", v1alpha1.AnnotationMode)
	nsModePath  = fieldPath("namespace", "annotations", v1alpha1.AnnotationMode)
)

func isSystemNamespace(name string, extra []string) bool {
	for _, n := range SystemNamespaces {
		if n == name {
			return true
		}
	}
	for _, n := range extra {
		if n == name {
			return true
		}
	}
	return false
}

func featureReason(ref *signals.FeatureRef) string {
	row, ok := featureRows[ref.Feature]
	if !ok {
		return ref.Object() + " selects this workload"
	}
	if ref.Feature == signals.FeatureSpireCA {
		return "the mesh uses SPIRE as its CA; " + row.Why
	}
	if ref.Kind == signals.KindPodAnnotations {
		return "the pod template's annotations " + ref.Name + " set " + row.What + "; " + row.Why
	}
	return ref.Object() + " selects this workload for " + row.What + "; " + row.Why
}

// applyNeeds adjusts a candidate to the waypoint and Cilium needs.
func applyNeeds(c candidate, nd *needs, warnings []string) (candidate, []string) {
	switch {
	case nd.waypoint != nil && nd.cilium != nil:
		if c.mode == v1alpha1.ModeSidecar {
			return c, append(warnings, "unmet: "+featureReason(nd.cilium))
		}
		return candidate{mode: v1alpha1.ModeSidecar, rule: RuleFeatureWaypoint, asked: true,
				reason: "keeps sidecar: " + nd.waypoint.Object() + " needs L7 processing and " + nd.cilium.Object() +
					" needs Cilium's proxy; no sidecarless mode serves both (" + c.rule + " chose " + string(c.mode) + ")"},
			append(warnings, "unmet: "+featureReason(nd.cilium))
	case nd.cilium != nil:
		switch c.mode {
		case v1alpha1.ModeSidecar, v1alpha1.ModeAmbient, v1alpha1.ModeAmbientWaypoint:
			return candidate{mode: v1alpha1.ModeCilium, rule: RuleFeatureCilium, asked: true,
				reason: "needs cilium: " + featureReason(nd.cilium) + " (" + c.rule + " chose " + string(c.mode) + ")"}, warnings
		}
	case nd.waypoint != nil:
		switch c.mode {
		case v1alpha1.ModeAmbient:
			return candidate{mode: v1alpha1.ModeAmbientWaypoint, rule: RuleFeatureWaypoint, asked: true,
				reason: "needs a waypoint: " + featureReason(nd.waypoint) + " (" + c.rule + " chose ambient)"}, warnings
		case v1alpha1.ModeCilium, v1alpha1.ModeNone:
			return candidate{mode: v1alpha1.ModeSidecar, rule: RuleFeatureWaypoint, asked: true,
				reason: "needs a sidecar: " + featureReason(nd.waypoint) + " (" + c.rule + " chose " + string(c.mode) + ")"}, warnings
		}
	}
	return c, warnings
}

// unmetNeedWarnings says which features a mode asked for by the pod leaves unmet.
func unmetNeedWarnings(nd *needs, m v1alpha1.Mode) []string {
	var out []string
	for _, x := range []struct {
		ref  *signals.FeatureRef
		need Need
	}{{nd.block, NeedBlock}, {nd.sidecar, NeedSidecar}, {nd.cilium, NeedCilium}, {nd.waypoint, NeedWaypoint}} {
		if x.ref != nil && !x.need.Serves(m) && m != v1alpha1.ModeNone {
			out = append(out, "pod asks for "+string(m)+" but "+featureReason(x.ref))
		}
	}
	return out
}

// evalRules runs the policy's rules in order; the first true one decides.
// Each chain of rules is one evaluation; when a chain fails (a rule's error,
// the cost limit) its rules are evaluated one by one to find the first match
// and report the failing rule.
func (p *Policy) evalRules(st *decideState) (candidate, bool) {
	act := activations.Get().(*activation)
	defer act.release()
	act.fill(st.in, p.trafficMaxAge, st.cur)
	fast := withinEstimate(st.in)
	for ci := range p.chains {
		ch := &p.chains[ci]
		prg := ch.limited
		if fast {
			prg = ch.fast
		}
		out, _, err := prg.Eval(act)
		if i, ok := out.(types.Int); err == nil && ok {
			if i >= 0 {
				return p.ruleCandidate(ch.start+int(i), st.cur), true
			}
			continue
		}
		// Slow path, when the chain failed (over its cost limit) or did not
		// return an index: one rule at a time, with the cost limit.
		end := min(ch.start+chainLength, len(p.rules))
		for ri := ch.start; ri < end; ri++ {
			r := &p.rules[ri]
			out, _, err := r.prg.Eval(act)
			if err != nil {
				st.warn("rule " + r.name + " of DataplanePolicy " + p.name + " did not evaluate: " + err.Error())
				continue
			}
			if out != types.True {
				continue
			}
			return p.ruleCandidate(ri, st.cur), true
		}
	}
	return candidate{}, false
}

func (p *Policy) ruleCandidate(i int, cur v1alpha1.Mode) candidate {
	if rm := p.ruleModes[i]; rm != v1alpha1.RuleModeCurrent {
		return candidate{mode: v1alpha1.Mode(rm), rule: p.rules[i].id, asked: true}
	}
	return candidate{mode: cur, rule: p.rules[i].id}
}

// finish applies the team's opt-outs (step 1's kept opt-outs), the capability
// fallback (step 6) and writes the Decision. Neither an opt-out nor a fallback
// ever adds or removes a proxy: both keep the workload's current mode.
func (p *Policy) finish(st *decideState, c candidate) Decision {
	in, cur := st.in, st.cur
	w := &in.Workload
	if p.provider == v1alpha1.MeshProviderIstio && c.mode == v1alpha1.ModeSidecar && w.Labels[LabelIstioInject] == "false" && cur != v1alpha1.ModeSidecar {
		c = keep(cur, RuleOptOut, "keeps its current mode "+string(cur)+": the pod template opts out of the sidecar with "+
			LabelIstioInject+"=false ("+c.rule+" chose sidecar)")
	}
	if c.mode.Sidecarless() && c.mode != v1alpha1.ModeCilium && w.Labels[LabelIstioDataplaneMode] == "none" && c.mode != cur {
		c = keep(cur, RuleOptOut, "keeps its current mode "+string(cur)+": the pod template opts out of ambient with "+
			LabelIstioDataplaneMode+"=none ("+c.rule+" chose "+string(c.mode)+")")
	}
	if !c.asked && c.rule == RuleKeepCurrent && cur == v1alpha1.ModeNone && st.src == srcPodNone {
		c = keep(cur, RuleOptOut, "the pod template opts out of ambient with "+LabelIstioDataplaneMode+"=none")
	}
	if c.rule == RuleOptOut && c.mode == v1alpha1.ModeNone && !p.Allows(in.Namespace.Labels, v1alpha1.ModeNone) {
		st.warn(OptOutForbidden(p, in.Namespace.Name, in.Namespace.Labels))
	}
	if c.mode != cur {
		if why := unservable(c.mode, &in.Capabilities); why != "" {
			c = keep(cur, RuleCapabilityFallback, "keeps its current mode "+string(cur)+": "+c.rule+" chose "+string(c.mode)+", but "+why)
		} else if why := nodesUnserved(c.mode, &in.Capabilities, &w.Nodes); why != "" {
			c = keep(cur, RuleNodeUnserved, "keeps its current mode "+string(cur)+": "+c.rule+" chose "+string(c.mode)+", but "+why)
		}
	}
	observed := !c.asked && c.mode == cur
	idx := modeIndex(c.mode)
	d := Decision{Mode: c.mode, Rule: c.rule, Policy: p.annotation, Warnings: st.warnings, Observed: observed}
	if c.mode == v1alpha1.ModeAmbientWaypoint {
		d.Waypoint = waypointFor(w, &in.Namespace)
	}
	switch {
	case observed:
		// The mesh's own labels already give this mode: write only meshshift's.
		d.Labels = p.out.excluded[idx]
	default:
		d.Labels = p.out.labels[idx]
		if d.Waypoint != "" && d.Waypoint != DefaultWaypoint {
			d.Labels = modeLabels(p.provider, c.mode, d.Waypoint)
		}
		d.LabelsToRemove = labelsToRemove(w.Labels, c.mode)
		if p.provider == v1alpha1.MeshProviderIstio && c.mode != v1alpha1.ModeSidecar && w.Annotations[AnnotationLinkerdInject] == "enabled" {
			d.AnnotationsToRemove = []string{AnnotationLinkerdInject}
		}
	}
	switch {
	case c.reason != "" && observed:
		d.Reason = c.reason
		d.Annotations = p.ownAnnotations(c.mode, c.rule, c.reason)
	case c.reason != "":
		d.Reason = c.reason
		d.Annotations = p.annotationSet(c.mode, c.rule, c.reason)
	case c.rule == RuleKeepCurrent:
		d.Reason, d.Annotations = p.out.keepReason[idx][st.src], p.out.keep[idx][st.src]
	default:
		k := annKey{c.rule, c.mode}
		d.Reason, d.Annotations = p.out.staticReason[k], p.out.static[k]
		if observed {
			d.Annotations = p.out.staticOwn[k]
		}
	}
	d.Warnings = append(d.Warnings, sidecarlessWarnings(in.Features, c.mode)...)
	return d
}

// OptOutForbidden is the warning for a pod template that opts out of the mesh
// (istio.io/dataplane-mode=none, or sidecar.istio.io/inject=false where that
// leaves it none) in a namespace whose policy does not allow none.
func OptOutForbidden(p *Policy, namespace string, nsLabels map[string]string) string {
	return "the pod template opts out of the mesh, but DataplanePolicy " + p.name + " allows only " +
		modeList(p.AllowedModes(nsLabels)) + " in namespace " + namespace
}

// keep is a candidate keeping the current mode cur.
func keep(cur v1alpha1.Mode, rule, reason string) candidate {
	return candidate{mode: cur, rule: rule, reason: reason}
}

// unservable says why the cluster cannot serve mode m, or "" when it can.
func unservable(m v1alpha1.Mode, caps *signals.Capabilities) string {
	switch m {
	case v1alpha1.ModeAmbient, v1alpha1.ModeAmbientWaypoint:
		if !caps.Ztunnel {
			return "the cluster has no ztunnel"
		}
		if caps.SpireCA {
			return "the mesh uses SPIRE as its CA, which ambient does not support"
		}
	case v1alpha1.ModeCilium:
		if !caps.Cilium {
			return "the cluster has no Cilium agent"
		}
		n := &caps.Nodes
		if n.Known && n.EBPF.Rank() < CiliumMinEBPF.Rank() {
			return "the nodes' eBPF level " + string(n.EBPF) + " is below " + string(CiliumMinEBPF)
		}
		if n.Known && !n.Kernel.IsZero() && !n.Kernel.AtLeast(CiliumMinKernel) {
			return "the nodes' kernel " + n.Kernel.String() + " is older than " + CiliumMinKernel.String()
		}
	}
	return ""
}

// nodesUnserved says why no node the workload may run on serves mode m (its
// node selector or required affinity excludes every node where ztunnel or
// Cilium's agent runs), or "" when some node does or the nodes are unknown.
func nodesUnserved(m v1alpha1.Mode, caps *signals.Capabilities, req *signals.NodeRequirement) string {
	if !caps.NodesKnown || req.IsZero() {
		return ""
	}
	switch m {
	case v1alpha1.ModeAmbient, v1alpha1.ModeAmbientWaypoint:
		if !req.AnyMatches(caps.ZtunnelNodes) {
			return "its node selector or required node affinity excludes every node where ztunnel runs"
		}
	case v1alpha1.ModeCilium:
		if !req.AnyMatches(caps.CiliumNodes) {
			return "its node selector or required node affinity excludes every node where the Cilium agent runs"
		}
	}
	return ""
}

// excluded is a hard exclusion: meshshift's own label and annotations only.
func (p *Policy) excluded(m v1alpha1.Mode, rule, reason string) Decision {
	d := Decision{Mode: m, Rule: rule, Policy: p.annotation, Excluded: true, Labels: p.out.excluded[modeIndex(m)]}
	if reason == "" {
		k := annKey{rule, m}
		d.Reason, d.Annotations = p.out.staticReason[k], p.out.static[k]
		return d
	}
	d.Reason = reason
	d.Annotations = p.ownAnnotations(m, rule, reason)
	return d
}

// ownAnnotations are meshshift's own annotations only (no provider's).
func (p *Policy) ownAnnotations(m v1alpha1.Mode, rule, reason string) map[string]string {
	return map[string]string{
		v1alpha1.AnnotationDecision: string(m) + "/" + rule,
		v1alpha1.AnnotationReason:   reason,
		v1alpha1.AnnotationPolicy:   p.annotation,
	}
}

func modeList(ms []v1alpha1.Mode) string {
	s := ""
	for i, m := range ms {
		if i > 0 {
			s += ", "
		}
		s += string(m)
	}
	return s
}
