package policies

import (
	"github.com/meshshift/meshshift/api/v1alpha1"
)

// currentSource says which label or setting shows a workload's current mode.
// Reasons and explain name it, so a user sees why meshshift thinks a workload
// runs where it does.
type currentSource uint8

const (
	srcNoMeshLabel currentSource = iota
	srcCaller
	srcPodDataplane
	srcPodInject
	srcPodInjectFalse
	srcPodRev
	srcPodAmbient
	srcPodNone
	srcPodLinkerd
	srcNsInjection
	srcNsInjectionDisabled
	srcNsRev
	srcNsAmbient
	srcNsLinkerd
	nSources
)

var sourceText = [nSources]string{
	srcNoMeshLabel:         "neither the pod nor its namespace carries a mesh label",
	srcCaller:              "as its running pods show",
	srcPodDataplane:        "pod label " + v1alpha1.LabelDataplane,
	srcPodInject:           "pod label " + LabelIstioInject + "=true",
	srcPodInjectFalse:      "pod label " + LabelIstioInject + "=false",
	srcPodRev:              "pod label " + LabelIstioRev,
	srcPodAmbient:          "pod label " + LabelIstioDataplaneMode + "=ambient",
	srcPodNone:             "pod label " + LabelIstioDataplaneMode + "=none",
	srcPodLinkerd:          "pod annotation " + AnnotationLinkerdInject + "=enabled",
	srcNsInjection:         "namespace label " + LabelIstioInjection + "=enabled",
	srcNsInjectionDisabled: "namespace label " + LabelIstioInjection + "=disabled",
	srcNsRev:               "namespace label " + LabelIstioRev,
	srcNsAmbient:           "namespace label " + LabelIstioDataplaneMode + "=ambient",
	srcNsLinkerd:           "namespace annotation " + AnnotationLinkerdInject + "=enabled",
}

// CurrentMode is the mode a workload runs in now: Workload.CurrentMode when the
// caller set it (from the workload's running pods), else meshshift's own
// meshshift.io/dataplane pod label, else what the meshes themselves read from
// the pod and its namespace:
//
//   - Istio's injector (its webhook's selectors in the istiod chart): the
//     namespace's istio-injection=enabled or istio.io/rev, unless the pod says
//     sidecar.istio.io/inject=false; with neither namespace label, the pod's
//     sidecar.istio.io/inject=true or istio.io/rev; istio-injection=disabled
//     turns injection off whatever the pod says.
//   - Istio ambient (not on a pod that gets a sidecar: injection wins): the
//     pod's istio.io/dataplane-mode, else the namespace's; istio.io/use-waypoint
//     on the pod or namespace makes it ambient-waypoint.
//   - Linkerd: linkerd.io/inject=enabled on the pod, or on the namespace unless
//     the pod says disabled.
//
// A workload none of these put in a mesh is currently none: known, not
// unknown. ok is false only when the caller set an invalid CurrentMode.
func CurrentMode(w *Workload, ns *Namespace) (v1alpha1.Mode, bool) {
	m, _ := currentMode(w, ns)
	return m, m.Valid()
}

// CurrentModeSource says, in words, what shows the workload's current mode
// ("namespace label istio-injection=enabled").
func CurrentModeSource(w *Workload, ns *Namespace) string {
	_, src := currentMode(w, ns)
	return sourceText[src]
}

func currentMode(w *Workload, ns *Namespace) (v1alpha1.Mode, currentSource) {
	if w.CurrentMode != "" {
		return w.CurrentMode, srcCaller
	}
	if m := v1alpha1.Mode(w.Labels[v1alpha1.LabelDataplane]); m.Valid() {
		return m, srcPodDataplane
	}
	if src, ok := istioSidecar(w, ns); ok {
		return v1alpha1.ModeSidecar, src
	}
	switch w.Labels[LabelIstioDataplaneMode] {
	case "ambient":
		return ambientMode(w.Labels[LabelIstioUseWaypoint], ns.Labels[LabelIstioUseWaypoint]), srcPodAmbient
	case "none":
		return v1alpha1.ModeNone, srcPodNone
	}
	if w.Annotations[AnnotationLinkerdInject] == "enabled" {
		return v1alpha1.ModeSidecar, srcPodLinkerd
	}
	if ns.Labels[LabelIstioDataplaneMode] == "ambient" {
		return ambientMode(w.Labels[LabelIstioUseWaypoint], ns.Labels[LabelIstioUseWaypoint]), srcNsAmbient
	}
	if ns.Annotations[AnnotationLinkerdInject] == "enabled" && w.Annotations[AnnotationLinkerdInject] != "disabled" {
		return v1alpha1.ModeSidecar, srcNsLinkerd
	}
	switch {
	case w.Labels[LabelIstioInject] == "false":
		return v1alpha1.ModeNone, srcPodInjectFalse
	case ns.Labels[LabelIstioInjection] == "disabled":
		return v1alpha1.ModeNone, srcNsInjectionDisabled
	}
	return v1alpha1.ModeNone, srcNoMeshLabel
}

// istioSidecar reports whether Istio's injector gives the pod a sidecar, and
// which label makes it.
func istioSidecar(w *Workload, ns *Namespace) (currentSource, bool) {
	if w.Labels[LabelIstioInject] == "false" || w.Annotations[LabelIstioInject] == "false" {
		return 0, false
	}
	switch ns.Labels[LabelIstioInjection] {
	case "enabled":
		return srcNsInjection, true
	case "":
	default: // disabled, or a value the injector's selectors do not match
		return 0, false
	}
	if ns.Labels[LabelIstioRev] != "" {
		return srcNsRev, true
	}
	switch {
	case w.Labels[LabelIstioInject] == "true":
		return srcPodInject, true
	case w.Labels[LabelIstioRev] != "":
		return srcPodRev, true
	}
	return 0, false
}

func ambientMode(podWaypoint, nsWaypoint string) v1alpha1.Mode {
	w := podWaypoint
	if w == "" {
		w = nsWaypoint
	}
	if w != "" && w != "none" {
		return v1alpha1.ModeAmbientWaypoint
	}
	return v1alpha1.ModeAmbient
}
