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

	nd := collectNeeds(in.Features, in.Capabilities.SpireCA, &spireRef)
	var warnings []string

	// 2. The pod's own annotation, where the policy allows it.
	if v, ok := w.Annotations[v1alpha1.AnnotationMode]; ok {
		m, ferr := ParseMode(podModePath, v)
		switch {
		case ferr != nil:
			warnings = append(warnings, "ignores the pod's "+ferr.Error())
		case !p.Allows(ns.Labels, m):
			warnings = append(warnings, "ignores the pod's "+v1alpha1.AnnotationMode+"="+v+": DataplanePolicy "+
				p.name+" allows only "+modeList(p.AllowedModes(ns.Labels))+" in namespace "+ns.Name)
		default:
			warnings = append(warnings, unmetNeedWarnings(&nd, m)...)
			return p.finish(&in, candidate{mode: m, rule: RulePodAnnotation}, warnings)
		}
	}

	// 3. Features only a sidecar serves decide outright.
	if ref, need := nd.strongest(); need == NeedBlock || need == NeedSidecar {
		rule := RuleFeatureSidecar
		if need == NeedBlock {
			rule = RuleDenyAllTrap
		}
		return p.finish(&in, candidate{mode: v1alpha1.ModeSidecar, rule: rule, reason: "keeps sidecar: " + featureReason(ref)}, warnings)
	}

	// 4, 5, 7: namespace annotation, policy rules, default.
	var c candidate
	var found bool
	if v, ok := ns.Annotations[v1alpha1.AnnotationMode]; ok {
		if m, ferr := ParseMode(nsModePath, v); ferr != nil {
			warnings = append(warnings, "ignores the namespace's "+ferr.Error())
		} else {
			c, found = candidate{mode: m, rule: RuleNamespaceAnnotation}, true
		}
	}
	if !found && len(p.rules) > 0 {
		c, found, warnings = p.evalRules(&in, warnings)
	}
	if !found {
		c = candidate{mode: p.defaultMode, rule: RuleDefault}
	}

	// 3 again: features a waypoint or Cilium's proxy serves adjust that choice.
	c, warnings = applyNeeds(c, &nd, warnings)
	return p.finish(&in, c, warnings)
}

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
	return ref.Object() + " selects this workload for " + row.What + "; " + row.Why
}

// applyNeeds adjusts a candidate to the waypoint and Cilium needs.
func applyNeeds(c candidate, nd *needs, warnings []string) (candidate, []string) {
	switch {
	case nd.waypoint != nil && nd.cilium != nil:
		if c.mode == v1alpha1.ModeSidecar {
			return c, append(warnings, "unmet: "+featureReason(nd.cilium))
		}
		return candidate{mode: v1alpha1.ModeSidecar, rule: RuleFeatureWaypoint,
				reason: "keeps sidecar: " + nd.waypoint.Object() + " needs L7 processing and " + nd.cilium.Object() +
					" needs Cilium's proxy; no sidecarless mode serves both (" + c.rule + " chose " + string(c.mode) + ")"},
			append(warnings, "unmet: "+featureReason(nd.cilium))
	case nd.cilium != nil:
		switch c.mode {
		case v1alpha1.ModeSidecar, v1alpha1.ModeAmbient, v1alpha1.ModeAmbientWaypoint:
			return candidate{mode: v1alpha1.ModeCilium, rule: RuleFeatureCilium,
				reason: "needs cilium: " + featureReason(nd.cilium) + " (" + c.rule + " chose " + string(c.mode) + ")"}, warnings
		}
	case nd.waypoint != nil:
		switch c.mode {
		case v1alpha1.ModeAmbient:
			return candidate{mode: v1alpha1.ModeAmbientWaypoint, rule: RuleFeatureWaypoint,
				reason: "needs a waypoint: " + featureReason(nd.waypoint) + " (" + c.rule + " chose ambient)"}, warnings
		case v1alpha1.ModeCilium, v1alpha1.ModeNone:
			return candidate{mode: v1alpha1.ModeSidecar, rule: RuleFeatureWaypoint,
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
func (p *Policy) evalRules(in *Input, warnings []string) (candidate, bool, []string) {
	act := activations.Get().(*activation)
	defer act.release()
	cur, curOK := CurrentMode(&in.Workload, &in.Namespace)
	act.fill(in, p.trafficMaxAge, cur)
	fast := withinEstimate(in)
	for ci := range p.chains {
		ch := &p.chains[ci]
		prg := ch.limited
		if fast {
			prg = ch.fast
		}
		out, _, err := prg.Eval(act)
		if i, ok := out.(types.Int); err == nil && ok {
			if i >= 0 {
				return p.ruleCandidate(ch.start+int(i), cur, curOK), true, warnings
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
				warnings = append(warnings, "rule "+r.name+" of DataplanePolicy "+p.name+" did not evaluate: "+err.Error())
				continue
			}
			if out != types.True || (p.ruleModes[ri] == v1alpha1.RuleModeCurrent && !curOK) {
				continue
			}
			return p.ruleCandidate(ri, cur, curOK), true, warnings
		}
	}
	return candidate{}, false, warnings
}

func (p *Policy) ruleCandidate(i int, cur v1alpha1.Mode, curOK bool) candidate {
	rm := p.ruleModes[i]
	if rm == v1alpha1.RuleModeCurrent && curOK {
		return candidate{mode: cur, rule: p.rules[i].id}
	}
	return candidate{mode: v1alpha1.Mode(rm), rule: p.rules[i].id}
}

// finish applies the capability fallback (step 6) and writes the Decision.
func (p *Policy) finish(in *Input, c candidate, warnings []string) Decision {
	if why := unservable(c.mode, &in.Capabilities); why != "" {
		c = candidate{mode: v1alpha1.ModeSidecar, rule: RuleCapabilityFallback,
			reason: "falls back to sidecar from " + string(c.mode) + " (" + c.rule + "): " + why}
	}
	idx := modeIndex(c.mode)
	d := Decision{Mode: c.mode, Rule: c.rule, Policy: p.annotation, Warnings: warnings}
	d.Labels = p.out.labels[idx]
	if c.mode == v1alpha1.ModeAmbientWaypoint {
		d.Waypoint = waypointFor(&in.Workload, &in.Namespace)
		if d.Waypoint != DefaultWaypoint {
			d.Labels = modeLabels(p.provider, c.mode, d.Waypoint)
		}
	}
	d.LabelsToRemove = labelsToRemove(in.Workload.Labels, c.mode)
	if c.reason == "" {
		k := annKey{c.rule, c.mode}
		d.Reason, d.Annotations = p.out.staticReason[k], p.out.static[k]
	} else {
		d.Reason = c.reason
		d.Annotations = p.annotationSet(c.mode, c.rule, c.reason)
	}
	if p.provider == v1alpha1.MeshProviderIstio && c.mode != v1alpha1.ModeSidecar {
		if _, ok := in.Workload.Annotations[AnnotationLinkerdInject]; ok && in.Workload.Annotations[AnnotationLinkerdInject] == "enabled" {
			d.AnnotationsToRemove = []string{AnnotationLinkerdInject}
		}
	}
	if c.mode.Sidecarless() {
		for i := range in.Features {
			if in.Features[i].Feature == signals.FeatureSidecarResource {
				d.Warnings = append(d.Warnings, featureReason(&in.Features[i]))
				break
			}
		}
	}
	return d
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

// excluded is a hard exclusion: meshshift's own label and annotations only.
func (p *Policy) excluded(m v1alpha1.Mode, rule, reason string) Decision {
	d := Decision{Mode: m, Rule: rule, Policy: p.annotation, Excluded: true, Labels: p.out.excluded[modeIndex(m)]}
	if reason == "" {
		k := annKey{rule, m}
		d.Reason, d.Annotations = p.out.staticReason[k], p.out.static[k]
		return d
	}
	d.Reason = reason
	d.Annotations = map[string]string{
		v1alpha1.AnnotationDecision: string(m) + "/" + rule,
		v1alpha1.AnnotationReason:   reason,
		v1alpha1.AnnotationPolicy:   p.annotation,
	}
	return d
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
