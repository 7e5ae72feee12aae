package signals

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// FuzzIndexUpsert feeds the index one mesh object decoded from JSON, as a
// manifest or the API server would give it: whatever its spec, Upsert returns
// an error or indexes it; every feature it gives has a row (AllFeatures), the
// features come sorted without duplicates, and Delete leaves the index empty.
func FuzzIndexUpsert(f *testing.F) {
	for _, s := range []string{
		`{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy","metadata":{"namespace":"shop","name":"p"},"spec":{"selector":{"matchLabels":{"app":"web"}},"action":"DENY","rules":[{"from":[{"source":{"notRequestPrincipals":["*"]}}]}]}}`,
		`{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy","metadata":{"namespace":"shop","name":"p"},"spec":{"action":"DENY","rules":[{"to":[{"operation":{"ports":["8080"],"paths":["/admin"]}}],"when":[{"key":"request.headers[x]","values":["1"]}]}]}}`,
		`{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy","metadata":{"namespace":"istio-system","name":"p"},"spec":{"action":"CUSTOM","provider":{"name":"opa"}}}`,
		`{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy","metadata":{"namespace":"shop","name":"p"},"spec":{"targetRefs":[{"kind":"Service","name":"web"}],"action":"AUDIT"}}`,
		`{"apiVersion":"networking.istio.io/v1","kind":"Sidecar","metadata":{"namespace":"shop","name":"default"},"spec":{"egress":[{"hosts":["./*"]}],"outboundTrafficPolicy":{"mode":"REGISTRY_ONLY"}}}`,
		`{"apiVersion":"networking.istio.io/v1","kind":"Sidecar","metadata":{"namespace":"istio-system","name":"default"},"spec":{"ingress":[{"port":{"number":80,"protocol":"HTTP","name":"http"},"defaultEndpoint":"127.0.0.1:8080"}]}}`,
		`{"apiVersion":"security.istio.io/v1","kind":"PeerAuthentication","metadata":{"namespace":"shop","name":"p"},"spec":{"selector":{"matchLabels":{"app":"web"}},"portLevelMtls":{"9000":{"mode":"DISABLE"}}}}`,
		`{"apiVersion":"telemetry.istio.io/v1","kind":"Telemetry","metadata":{"namespace":"istio-system","name":"t"},"spec":{"accessLogging":[{"disabled":true}],"metrics":[{"overrides":[{"match":{"metric":"TCP_OPENED_CONNECTIONS"}}]}]}}`,
		`{"apiVersion":"extensions.istio.io/v1alpha1","kind":"TrafficExtension","metadata":{"namespace":"shop","name":"x"},"spec":{"selector":{"matchLabels":{"app":"web"}},"lua":{"inlineCode":"function envoy_on_request(h) end"}}}`,
		`{"apiVersion":"extensions.istio.io/v1alpha1","kind":"TrafficExtension","metadata":{"namespace":"shop","name":"x"},"spec":{"targetRefs":[{"kind":"Service","name":"web","namespace":"other"}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var obj map[string]any
		if err := json.Unmarshal(data, &obj); err != nil {
			return
		}
		u := &unstructured.Unstructured{Object: obj}
		if _, ok := indexedVersion[u.GroupVersionKind().GroupKind()]; !ok {
			return // Cilium and unknown kinds have their own paths
		}
		ix := NewIndex("")
		ix.UpsertService("shop", "web", map[string]string{"app": "web"})
		if err := ix.Upsert(u); err != nil {
			return
		}
		for _, ns := range []string{"shop", "istio-system", u.GetNamespace()} {
			fs := ix.FeaturesFor(ns, map[string]string{"app": "web"})
			if !sort.SliceIsSorted(fs, func(i, j int) bool { return fs[i].Less(fs[j]) }) {
				t.Fatalf("features not sorted: %v", fs)
			}
			for i, r := range fs {
				if !slices.Contains(AllFeatures, r.Feature) {
					t.Fatalf("feature %q is not one of AllFeatures", r.Feature)
				}
				if i > 0 && r == fs[i-1] {
					t.Fatalf("duplicate %v", r)
				}
				if strings.Contains(string(r.Feature), " ") {
					t.Fatalf("feature name %q", r.Feature)
				}
			}
		}
		if err := ix.Delete(u); err != nil {
			t.Fatalf("delete after upsert: %v", err)
		}
		if ix.Len() != 0 {
			t.Fatalf("after delete the index holds %d objects", ix.Len())
		}
	})
}

// FuzzAppendAnnotationFeatures: any annotations give sorted features, each
// naming only annotations that are present and not at Istio's default.
func FuzzAppendAnnotationFeatures(f *testing.F) {
	f.Add(AnnotationExcludeOutboundPorts, "3306", AnnotationIncludeInboundPorts, "*", AnnotationProxyConfig, "concurrency: 2")
	f.Add(AnnotationIncludeOutboundIPRanges, "", AnnotationExcludeInterfaces, "net1", "other", "x")
	f.Add(AnnotationProxyConfig, "{}", AnnotationKubevirtInterfaces, " ", AnnotationIncludeOutboundPorts, "443")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		ann := map[string]string{k1: v1, k2: v2, k3: v3}
		fs := AppendAnnotationFeatures(nil, ann)
		if !sort.SliceIsSorted(fs, func(i, j int) bool { return fs[i].Less(fs[j]) }) {
			t.Fatalf("not sorted: %v", fs)
		}
		for _, r := range fs {
			if r.Kind != KindPodAnnotations {
				t.Fatalf("kind %q", r.Kind)
			}
			for _, name := range strings.Split(r.Name, ", ") {
				v, ok := ann[name]
				if !ok {
					t.Fatalf("%v names %q, which is not among the annotations", r, name)
				}
				if def, capture := captureDefaults[name]; capture && strings.TrimSpace(v) == def {
					t.Fatalf("%v names %q at its default %q", r, name, v)
				}
			}
		}
	})
}
