package signals

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAppendAnnotationFeatures(t *testing.T) {
	capture := func(names string) FeatureRef {
		return FeatureRef{Feature: FeatureCaptureAnnotations, Kind: KindPodAnnotations, Name: names}
	}
	proxy := FeatureRef{Feature: FeatureProxyConfigAnnotation, Kind: KindPodAnnotations, Name: AnnotationProxyConfig}
	indexed := FeatureRef{Feature: FeatureMTLS, Kind: KindPeerAuthentication, Namespace: "istio-system", Name: "default"}
	cases := []struct {
		name string
		in   Features
		ann  map[string]string
		want Features
	}{
		{"no annotations", nil, nil, nil},
		{"unrelated annotations", nil, map[string]string{"prometheus.io/scrape": "true", "sidecar.istio.io/inject": "true"}, nil},
		{"Istio's defaults change nothing", nil, map[string]string{
			AnnotationIncludeInboundPorts: "*", AnnotationIncludeOutboundIPRanges: " * ", AnnotationExcludeOutboundPorts: ""}, nil},
		{"excluded ports and ranges are named", nil, map[string]string{
			AnnotationExcludeOutboundPorts: "3306", AnnotationExcludeInboundPorts: "9090", AnnotationExcludeOutboundIPRanges: "169.254.169.254/32"},
			Features{capture(AnnotationExcludeInboundPorts + ", " + AnnotationExcludeOutboundIPRanges + ", " + AnnotationExcludeOutboundPorts)}},
		{"an empty include list turns capture off", nil, map[string]string{AnnotationIncludeInboundPorts: ""},
			Features{capture(AnnotationIncludeInboundPorts)}},
		{"a narrowed outbound capture", nil, map[string]string{AnnotationIncludeOutboundIPRanges: "10.0.0.0/8", AnnotationIncludeOutboundPorts: "443"},
			Features{capture(AnnotationIncludeOutboundIPRanges + ", " + AnnotationIncludeOutboundPorts)}},
		{"interfaces", nil, map[string]string{AnnotationExcludeInterfaces: "net1", AnnotationKubevirtInterfaces: "vnet0"},
			Features{capture(AnnotationExcludeInterfaces + ", " + AnnotationKubevirtInterfaces)}},
		{"proxy config", nil, map[string]string{AnnotationProxyConfig: "holdApplicationUntilProxyStarts: true"}, Features{proxy}},
		{"an empty proxy config", nil, map[string]string{AnnotationProxyConfig: " {} "}, nil},
		{"added to the index's features, sorted", Features{indexed},
			map[string]string{AnnotationProxyConfig: "concurrency: 2", AnnotationExcludeOutboundPorts: "5432"},
			Features{indexed, proxy, capture(AnnotationExcludeOutboundPorts)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, AppendAnnotationFeatures(tc.in, tc.ann)); diff != "" {
				t.Errorf("features (-want +got):\n%s", diff)
			}
		})
	}
}
