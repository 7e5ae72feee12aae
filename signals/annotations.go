package signals

import (
	"sort"
	"strings"
)

// KindPodAnnotations is FeatureRef.Kind of the features a workload's own
// pod-template annotations give (AppendAnnotationFeatures); the ref's Name
// lists the annotations.
const KindPodAnnotations = "pod-template annotations"

// Istio's pod annotations that configure the sidecar only (istio.io/api
// annotation package). Ambient reads none of them: ztunnel captures all of a
// pod's traffic through the CNI and has no per-pod proxy to configure; its only
// per-pod capture switch is ambient.istio.io/bypass-inbound-capture, which
// skips all inbound capture.
const (
	AnnotationProxyConfig             = "proxy.istio.io/config"
	AnnotationExcludeInboundPorts     = "traffic.sidecar.istio.io/excludeInboundPorts"
	AnnotationExcludeInterfaces       = "traffic.sidecar.istio.io/excludeInterfaces"
	AnnotationExcludeOutboundIPRanges = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
	AnnotationExcludeOutboundPorts    = "traffic.sidecar.istio.io/excludeOutboundPorts"
	AnnotationIncludeInboundPorts     = "traffic.sidecar.istio.io/includeInboundPorts"
	AnnotationIncludeOutboundIPRanges = "traffic.sidecar.istio.io/includeOutboundIPRanges"
	AnnotationIncludeOutboundPorts    = "traffic.sidecar.istio.io/includeOutboundPorts"
	AnnotationKubevirtInterfaces      = "traffic.sidecar.istio.io/kubevirtInterfaces"
)

// captureDefaults are the values of the capture annotations that change
// nothing: Istio's defaults ("*" captures everything; an empty exclusion
// excludes nothing). An empty includeInboundPorts or includeOutboundIPRanges
// is not a default: it turns capture off.
var captureDefaults = map[string]string{
	AnnotationExcludeInboundPorts:     "",
	AnnotationExcludeInterfaces:       "",
	AnnotationExcludeOutboundIPRanges: "",
	AnnotationExcludeOutboundPorts:    "",
	AnnotationIncludeInboundPorts:     "*",
	AnnotationIncludeOutboundIPRanges: "*",
	AnnotationIncludeOutboundPorts:    "",
	AnnotationKubevirtInterfaces:      "",
}

// AppendAnnotationFeatures adds to fs the features a workload's own
// pod-template annotations give, and returns fs sorted and deduplicated
// (Normalize):
//   - FeatureCaptureAnnotations for traffic.sidecar.istio.io/* annotations
//     set to anything but Istio's default: they change which traffic the
//     sidecar captures;
//   - FeatureProxyConfigAnnotation for a non-empty proxy.istio.io/config.
//
// Each ref's Name lists the annotations it stands for, sorted, so a reason
// names what a move would lose. Every caller that feeds policies.Decide
// (webhook, plan/explain/precheck, migrator) adds them to the index's
// features of the workload.
func AppendAnnotationFeatures(fs Features, annotations map[string]string) Features {
	var capture []string
	for k, def := range captureDefaults {
		if v, ok := annotations[k]; ok && strings.TrimSpace(v) != def {
			capture = append(capture, k)
		}
	}
	if len(capture) > 0 {
		sort.Strings(capture)
		fs = append(fs, FeatureRef{Feature: FeatureCaptureAnnotations, Kind: KindPodAnnotations, Name: strings.Join(capture, ", ")})
	}
	if v := strings.TrimSpace(annotations[AnnotationProxyConfig]); v != "" && v != "{}" {
		fs = append(fs, FeatureRef{Feature: FeatureProxyConfigAnnotation, Kind: KindPodAnnotations, Name: AnnotationProxyConfig})
	}
	return fs.Normalize()
}
