package policies

import (
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

const nModes = 5 // len(v1alpha1.Modes)

func modeIndex(m v1alpha1.Mode) int {
	for i, x := range v1alpha1.Modes {
		if x == m {
			return i
		}
	}
	return -1
}

// annKey identifies a precomputed annotation set.
type annKey struct {
	rule string
	mode v1alpha1.Mode
}

// outputs holds a policy's precomputed, shared (read-only) label and annotation
// maps, so most decisions allocate nothing for them.
type outputs struct {
	labels       [nModes]map[string]string // mesh labels with the default waypoint
	excluded     [nModes]map[string]string // meshshift's label only
	annotations  [nModes]map[string]string // provider annotations (linkerd.io/inject)
	static       map[annKey]map[string]string
	staticOwn    map[annKey]map[string]string // static without the provider's annotations
	staticReason map[annKey]string
	// keep and keepReason are the keep-current decision's annotations and
	// reason per mode and per source of the current mode.
	keep       [nModes][nSources]map[string]string
	keepReason [nModes][nSources]string
}

func newOutputs(p *Policy) *outputs {
	o := &outputs{static: map[annKey]map[string]string{}, staticOwn: map[annKey]map[string]string{}, staticReason: map[annKey]string{}}
	for i, m := range v1alpha1.Modes {
		o.labels[i] = modeLabels(p.provider, m, DefaultWaypoint)
		o.excluded[i] = map[string]string{v1alpha1.LabelDataplane: string(m)}
		o.annotations[i] = providerAnnotations(p.provider, m)
	}
	add := func(rule string, m v1alpha1.Mode, reason string) {
		k := annKey{rule, m}
		o.staticReason[k] = reason
		o.static[k] = p.annotationSet(m, rule, reason)
		o.staticOwn[k] = p.ownAnnotations(m, rule, reason)
	}
	for _, m := range v1alpha1.Modes {
		add(RulePodAnnotation, m, "pod annotation "+v1alpha1.AnnotationMode+" asks for "+string(m))
		add(RuleNamespaceAnnotation, m, "namespace annotation "+v1alpha1.AnnotationMode+" asks for "+string(m))
	}
	excl := func(rule string, m v1alpha1.Mode, reason string) {
		k := annKey{rule, m}
		o.staticReason[k] = reason
		o.static[k] = map[string]string{
			v1alpha1.AnnotationDecision: string(m) + "/" + rule,
			v1alpha1.AnnotationReason:   reason,
			v1alpha1.AnnotationPolicy:   p.annotation,
		}
	}
	excl(RuleExcludeHostNetwork, v1alpha1.ModeNone, "hostNetwork pod: no dataplane can intercept its traffic")
	excl(RuleExcludeInjected, v1alpha1.ModeSidecar, "pod already carries an injected sidecar ("+AnnotationIstioStatus+" or "+AnnotationLinkerdProxy+")")
	excl(RuleExcludeWindows, v1alpha1.ModeNone, "the pod runs only on Windows nodes ("+signals.LabelNodeOS+"=windows), which no sidecarless dataplane serves and meshshift does not decide")
	for i, m := range v1alpha1.Modes {
		for src := range nSources {
			reason := "keeps its current mode " + string(m) + " (" + sourceText[src] + "): nothing asks to change it"
			o.keepReason[i][src] = reason
			o.keep[i][src] = p.ownAnnotations(m, RuleKeepCurrent, reason)
		}
	}
	if p.defaultMode != v1alpha1.RuleModeCurrent {
		add(RuleDefault, v1alpha1.Mode(p.defaultMode), "default mode of DataplanePolicy "+p.name)
	}
	for i, r := range p.rules {
		if p.ruleModes[i] == v1alpha1.RuleModeCurrent {
			for _, m := range v1alpha1.Modes {
				add(r.id, m, "rule "+r.name+" of DataplanePolicy "+p.name+" keeps the current mode "+string(m))
			}
			continue
		}
		m := v1alpha1.Mode(p.ruleModes[i])
		add(r.id, m, "rule "+r.name+" of DataplanePolicy "+p.name+" chose "+string(m))
	}
	return o
}

// annotationSet is meshshift's annotations plus the provider's for mode m.
func (p *Policy) annotationSet(m v1alpha1.Mode, rule, reason string) map[string]string {
	a := map[string]string{
		v1alpha1.AnnotationDecision: string(m) + "/" + rule,
		v1alpha1.AnnotationReason:   reason,
		v1alpha1.AnnotationPolicy:   p.annotation,
	}
	for k, v := range providerAnnotations(p.provider, m) {
		a[k] = v
	}
	return a
}

// modeLabels are the pod labels that put a pod in mode m (DESIGN.md, "Labels written").
func modeLabels(provider v1alpha1.MeshProvider, m v1alpha1.Mode, waypoint string) map[string]string {
	l := map[string]string{v1alpha1.LabelDataplane: string(m)}
	switch m {
	case v1alpha1.ModeSidecar:
		if provider == v1alpha1.MeshProviderLinkerd {
			// Linkerd's proxy: keep Istio's injector and ztunnel away from the pod.
			l[LabelIstioInject] = "false"
			l[LabelIstioDataplaneMode] = "none"
		} else {
			l[LabelIstioInject] = "true"
		}
	case v1alpha1.ModeAmbient:
		l[LabelIstioDataplaneMode] = "ambient"
		l[LabelIstioInject] = "false"
	case v1alpha1.ModeAmbientWaypoint:
		l[LabelIstioDataplaneMode] = "ambient"
		l[LabelIstioUseWaypoint] = waypoint
		l[LabelIstioInject] = "false"
	case v1alpha1.ModeCilium, v1alpha1.ModeNone:
		l[LabelIstioInject] = "false"
		l[LabelIstioDataplaneMode] = "none"
	}
	return l
}

// providerAnnotations are the provider's pod annotations for mode m.
func providerAnnotations(provider v1alpha1.MeshProvider, m v1alpha1.Mode) map[string]string {
	if provider != v1alpha1.MeshProviderLinkerd {
		return nil
	}
	if m == v1alpha1.ModeSidecar {
		return map[string]string{AnnotationLinkerdInject: "enabled"}
	}
	return map[string]string{AnnotationLinkerdInject: "disabled"}
}

// labelsToRemove lists the pod's labels that contradict mode m. It allocates
// only when there is something to remove.
func labelsToRemove(podLabels map[string]string, m v1alpha1.Mode) []string {
	if m == v1alpha1.ModeAmbientWaypoint || len(podLabels) == 0 {
		return nil
	}
	var out []string
	if _, ok := podLabels[LabelIstioUseWaypoint]; ok {
		out = append(out, LabelIstioUseWaypoint)
	}
	if m == v1alpha1.ModeSidecar {
		if _, ok := podLabels[LabelIstioDataplaneMode]; ok {
			out = append(out, LabelIstioDataplaneMode)
		}
	}
	return out
}

// waypointFor names the waypoint of an ambient-waypoint pod: the pod's
// istio.io/use-waypoint label, else the namespace's, else DefaultWaypoint.
func waypointFor(w *Workload, ns *Namespace) string {
	if v := w.Labels[LabelIstioUseWaypoint]; v != "" && v != "none" {
		return v
	}
	if v := ns.Labels[LabelIstioUseWaypoint]; v != "" && v != "none" {
		return v
	}
	return DefaultWaypoint
}

func fieldPath(root, child, key string) *field.Path {
	return field.NewPath(root).Child(child).Key(key)
}

// ParseMode reads a meshshift.io/mode value. It must be exactly one of the modes.
func ParseMode(path *field.Path, value string) (v1alpha1.Mode, *field.Error) {
	m := v1alpha1.Mode(value)
	if !m.Valid() {
		return "", field.NotSupported(path, value, modeNames())
	}
	return m, nil
}

// ParseDecision reads a meshshift.io/decision value, "<mode>/<rule>".
func ParseDecision(path *field.Path, value string) (v1alpha1.Mode, string, *field.Error) {
	mode, rule, ok := strings.Cut(value, "/")
	if !ok || rule == "" {
		return "", "", field.Invalid(path, value, "want <mode>/<rule>")
	}
	m, err := ParseMode(path, mode)
	if err != nil {
		return "", "", err
	}
	if len(rule) > 128 || strings.ContainsAny(rule, " \t\r\n/") {
		return "", "", field.Invalid(path, value, "the rule must be one word of at most 128 characters")
	}
	return m, rule, nil
}

// ParsePolicyRef reads a meshshift.io/policy value, "<name>/<generation>".
func ParsePolicyRef(path *field.Path, value string) (string, int64, *field.Error) {
	name, gen, ok := strings.Cut(value, "/")
	if !ok {
		return "", 0, field.Invalid(path, value, "want <policy name>/<generation>")
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return "", 0, field.Invalid(path, value, "policy name: "+strings.Join(msgs, "; "))
	}
	g, err := strconv.ParseInt(gen, 10, 64)
	if err != nil || g < 0 || strconv.FormatInt(g, 10) != gen {
		return "", 0, field.Invalid(path, value, "generation must be a non-negative decimal integer")
	}
	return name, g, nil
}

// ValidatePodMeshMetadata checks a pod's mesh labels and annotations for
// values no mesh accepts and for contradictions (a sidecar asked for together
// with ambient, a waypoint without ambient). path is the pod's metadata.
func ValidatePodMeshMetadata(path *field.Path, labels, annotations map[string]string) field.ErrorList {
	var errs field.ErrorList
	lp := func() *field.Path { return path.Child("labels") }
	ap := func() *field.Path { return path.Child("annotations") }
	if v, ok := annotations[v1alpha1.AnnotationMode]; ok {
		if _, err := ParseMode(ap().Key(v1alpha1.AnnotationMode), v); err != nil {
			errs = append(errs, err)
		}
	}
	if v, ok := labels[v1alpha1.LabelDataplane]; ok {
		if _, err := ParseMode(lp().Key(v1alpha1.LabelDataplane), v); err != nil {
			errs = append(errs, err)
		}
	}
	inject, hasInject := labels[LabelIstioInject]
	if hasInject && inject != "true" && inject != "false" {
		errs = append(errs, field.NotSupported(lp().Key(LabelIstioInject), inject, []string{"true", "false"}))
	}
	dm, hasDM := labels[LabelIstioDataplaneMode]
	if hasDM && dm != "ambient" && dm != "none" {
		errs = append(errs, field.NotSupported(lp().Key(LabelIstioDataplaneMode), dm, []string{"ambient", "none"}))
	}
	if hasInject && inject == "true" && dm == "ambient" {
		errs = append(errs, field.Invalid(lp().Key(LabelIstioDataplaneMode), dm,
			"contradicts "+LabelIstioInject+"=true: a pod is either sidecar or ambient"))
	}
	if wp, ok := labels[LabelIstioUseWaypoint]; ok {
		if wp != "none" {
			for _, msg := range validation.IsDNS1123Subdomain(wp) {
				errs = append(errs, field.Invalid(lp().Key(LabelIstioUseWaypoint), wp, msg))
			}
		}
		if inject == "true" {
			errs = append(errs, field.Invalid(lp().Key(LabelIstioUseWaypoint), wp,
				"contradicts "+LabelIstioInject+"=true: waypoints serve ambient pods"))
		}
	}
	if v, ok := annotations[AnnotationLinkerdInject]; ok && v != "enabled" && v != "disabled" && v != "ingress" {
		errs = append(errs, field.NotSupported(ap().Key(AnnotationLinkerdInject), v, []string{"enabled", "disabled", "ingress"}))
	}
	if v, ok := annotations[v1alpha1.AnnotationDecision]; ok {
		if _, _, err := ParseDecision(ap().Key(v1alpha1.AnnotationDecision), v); err != nil {
			errs = append(errs, err)
		}
	}
	if v, ok := annotations[v1alpha1.AnnotationPolicy]; ok {
		if _, _, err := ParsePolicyRef(ap().Key(v1alpha1.AnnotationPolicy), v); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
