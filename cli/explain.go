package cli

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
)

// FeatureNeed is one mesh object selecting the workload and what its feature
// needs (from policies.FeatureTable).
type FeatureNeed struct {
	Feature string `json:"feature"`
	Object  string `json:"object"`
	Need    string `json:"need"`
	Why     string `json:"why,omitempty"`
}

// ExplainInputs are the inputs Decide was given, as people read them.
type ExplainInputs struct {
	PodLabels            map[string]string `json:"podLabels,omitempty"`
	PodAnnotations       map[string]string `json:"podAnnotations,omitempty"`
	HostNetwork          bool              `json:"hostNetwork"`
	NamespaceLabels      map[string]string `json:"namespaceLabels,omitempty"`
	NamespaceAnnotations map[string]string `json:"namespaceAnnotations,omitempty"`
	// TargetSimulated is true when the namespace annotation comes from --target.
	TargetSimulated bool          `json:"targetSimulated,omitempty"`
	Features        []FeatureNeed `json:"features,omitempty"`
	Traffic         string        `json:"traffic"`
	Capabilities    string        `json:"capabilities"`
	Policy          string        `json:"policy"`
	CurrentMode     string        `json:"currentMode"`
	// CurrentModeSource says what shows the current mode (a label, or none).
	CurrentModeSource string `json:"currentModeSource"`
}

// Step is one precedence step of Decide and what it did for this workload.
type Step struct {
	N      int    `json:"step"`
	Name   string `json:"name"`
	Status string `json:"status"` // passed, decided, adjusted, not reached
	Detail string `json:"detail"`
}

// ExplainDecision is Decide's answer in full.
type ExplainDecision struct {
	Mode                meshv1alpha1.Mode `json:"mode"`
	Rule                string            `json:"rule"`
	Reason              string            `json:"reason"`
	Waypoint            string            `json:"waypoint,omitempty"`
	Policy              string            `json:"policy"`
	Labels              map[string]string `json:"labels,omitempty"`
	LabelsToRemove      []string          `json:"labelsToRemove,omitempty"`
	Annotations         map[string]string `json:"annotations,omitempty"`
	AnnotationsToRemove []string          `json:"annotationsToRemove,omitempty"`
	Warnings            []string          `json:"warnings,omitempty"`
}

// Explanation is the whole decision path of one workload.
type Explanation struct {
	Namespace string `json:"namespace"`
	Workload  string `json:"workload"`
	Kind      string `json:"kind"`
	Source    string `json:"source"`
	// Restart says how a migration restarts this kind of workload, where it
	// differs from a Deployment's rolling restart.
	Restart  string          `json:"restart,omitempty"`
	Inputs   ExplainInputs   `json:"inputs"`
	Steps    []Step          `json:"steps"`
	Decision ExplainDecision `json:"decision"`
	// PolicyMove is the before and after of the policies that move to the
	// workload's waypoint, when it moves to ambient-waypoint.
	PolicyMove *PolicyMove `json:"policyMove,omitempty"`
}

// stepOf maps a Decision.Rule to the precedence step that produced it.
func stepOf(rule string) int {
	switch {
	case strings.HasPrefix(rule, "exclude-"), rule == policies.RuleOptOut:
		return 1
	case rule == policies.RulePodAnnotation:
		return 2
	case rule == policies.RuleDenyAllTrap, rule == policies.RuleFeatureSidecar,
		rule == policies.RuleFeatureWaypoint, rule == policies.RuleFeatureCilium:
		return 3
	case rule == policies.RuleNamespaceAnnotation:
		return 4
	case strings.HasPrefix(rule, policies.RulePolicyPrefix):
		return 5
	case rule == policies.RuleCapabilityFallback, rule == policies.RuleNodeUnserved:
		return 6
	case rule == policies.RuleDefault, rule == policies.RuleKeepCurrent:
		return 7
	}
	return 0
}

// Explain decides one workload with policies.Decide and lays out the
// precedence steps with the inputs each one looked at.
func Explain(inv *Inventory, namespace, name string, o *Options) (*Explanation, error) {
	w, ok := inv.Workload(namespace, name)
	if !ok {
		var known []string
		for _, x := range inv.Workloads {
			if x.Namespace == namespace {
				known = append(known, x.Name)
			}
		}
		if len(known) == 0 {
			return nil, fmt.Errorf("workload %s/%s not found: no workload in namespace %s", namespace, name, namespace)
		}
		return nil, fmt.Errorf("workload %s/%s not found; namespace %s has %s", namespace, name, namespace, strings.Join(known, ", "))
	}
	in := inv.Input(w, o)
	d := policies.Decide(in)
	nsObj := inv.Namespaces[namespace]
	nsNow := &policies.Namespace{Name: namespace, Labels: nsObj.Labels, Annotations: nsObj.Annotations}
	cur, _ := policies.CurrentMode(&in.Workload, nsNow)
	p := in.Policy
	if p == nil {
		p = policies.Builtin()
	}
	e := &Explanation{Namespace: namespace, Workload: name, Kind: w.Kind, Source: w.Source.String(), Restart: restartNote(w)}
	e.Inputs = ExplainInputs{
		PodLabels: in.Workload.Labels, PodAnnotations: in.Workload.Annotations, HostNetwork: in.Workload.HostNetwork,
		NamespaceLabels: in.Namespace.Labels, NamespaceAnnotations: in.Namespace.Annotations,
		TargetSimulated: o.Target != "" && !slices.Contains(policies.SystemNamespaces, namespace),
		Traffic:         trafficText(&in), Capabilities: capabilitiesText(&in),
		Policy:      fmt.Sprintf("%s (default mode %s)", policyName(p), p.DefaultMode()),
		CurrentMode: orUnknown(string(cur)), CurrentModeSource: policies.CurrentModeSource(&in.Workload, nsNow),
	}
	for _, f := range in.Features {
		fn := FeatureNeed{Feature: string(f.Feature), Object: f.Object(), Need: "unknown"}
		if row, ok := policies.Row(f.Feature); ok {
			fn.Need, fn.Why = row.Need.String(), row.Why
		}
		e.Inputs.Features = append(e.Inputs.Features, fn)
	}
	e.Decision = ExplainDecision{Mode: d.Mode, Rule: d.Rule, Reason: d.Reason, Waypoint: d.Waypoint, Policy: d.Policy,
		Labels: d.Labels, LabelsToRemove: d.LabelsToRemove, Annotations: d.Annotations,
		AnnotationsToRemove: d.AnnotationsToRemove, Warnings: d.Warnings}
	e.Steps = steps(&in, &d, p)
	e.PolicyMove = explainPolicyMove(inv, w, o)
	return e, nil
}

func policyName(p *policies.Policy) string {
	if p == policies.Builtin() {
		return "builtin policy"
	}
	return fmt.Sprintf("DataplanePolicy %s (generation %d)", p.Name(), p.Generation())
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func trafficText(in *policies.Input) string {
	if !in.HasTraffic {
		return "no traffic data"
	}
	t := &in.Traffic
	s := fmt.Sprintf("%.1f req/s, %.2f%% errors, p99 %s, %.1f conn/s, %.1f retransmits/s, protocols %v",
		t.RequestRate, t.ErrorRate*100, t.P99Latency, t.ConnectionRate, t.RetransmitRate, t.Protocols)
	if !in.Now.IsZero() && !t.SampleTime.IsZero() {
		s += fmt.Sprintf(", sampled %s before now", t.Age(in.Now).Round(1e9))
	}
	return s
}

func capabilitiesText(in *policies.Input) string {
	c := &in.Capabilities
	s := fmt.Sprintf("ztunnel %s, Cilium %s", yesNo(c.Ztunnel), yesNo(c.Cilium))
	if c.Nodes.Known {
		s += fmt.Sprintf(", nodes: kernel %s, eBPF %s", c.Nodes.Kernel, c.Nodes.EBPF)
	} else {
		s += ", nodes: no agent labels"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "present"
	}
	return "absent"
}

func mapText(m map[string]string, keys ...string) string {
	var parts []string
	for _, k := range keys {
		if v, ok := m[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// steps lays out the seven precedence steps of DESIGN.md around the step
// that decided (Decision.Rule).
func steps(in *policies.Input, d *policies.Decision, p *policies.Policy) []Step {
	at := stepOf(d.Rule)
	adjusted := d.Rule == policies.RuleFeatureWaypoint || d.Rule == policies.RuleFeatureCilium
	var fs []string
	for _, f := range in.Features {
		need := "unknown"
		if row, ok := policies.Row(f.Feature); ok {
			need = row.Need.String()
		}
		fs = append(fs, fmt.Sprintf("%s (%s, needs %s)", f.Object(), f.Feature, need))
	}
	featureText := "no mesh object selects the workload"
	if len(fs) > 0 {
		sort.Strings(fs)
		featureText = strings.Join(fs, "; ")
	}
	detail := []string{
		fmt.Sprintf("hostNetwork %t; namespace %s; sidecar status annotation %s; Windows-only %t; pod mesh labels %s", in.Workload.HostNetwork, in.Namespace.Name,
			presence(in.Workload.Annotations, policies.AnnotationIstioStatus), in.Workload.Nodes.WindowsOnly(),
			mapText(in.Workload.Labels, policies.LabelIstioInject, policies.LabelIstioDataplaneMode)),
		"pod annotation " + mapText(in.Workload.Annotations, meshv1alpha1.AnnotationMode),
		featureText,
		"namespace annotation " + mapText(in.Namespace.Annotations, meshv1alpha1.AnnotationMode),
		policyName(p) + " rules",
		capabilitiesText(in),
		"default mode " + string(p.DefaultMode()),
	}
	names := []string{"exclusions, opt-outs", "pod annotation", "mesh features", "namespace annotation",
		"DataplanePolicy rules", "capability fallback", "policy default"}
	out := make([]Step, len(names))
	for i := range names {
		n := i + 1
		s := Step{N: n, Name: names[i], Detail: detail[i]}
		switch {
		case n == at && adjusted:
			s.Status = "adjusted"
			s.Detail += " → " + d.Reason
		case n == at:
			s.Status = "decided"
			s.Detail += " → " + d.Reason
		case adjusted && n > at && n != 6:
			s.Status = "considered"
		case n == 6 && at < 6 && !d.Excluded:
			s.Status = "passed"
			s.Detail += " → the cluster can serve " + string(d.Mode)
		case n < at || (adjusted && n == 6):
			s.Status = "passed"
		default:
			s.Status = "not reached"
		}
		out[i] = s
	}
	return out
}

func presence(m map[string]string, k string) string {
	if _, ok := m[k]; ok {
		return "present"
	}
	return "absent"
}
