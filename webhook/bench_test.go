package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/meshshift/meshshift/api/v1alpha1"
)

// benchPolicy has five rules that do not match, so every decision evaluates
// them all and ends at the default (ambient).
var benchPolicy = &v1alpha1.DataplanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "bench", Generation: 1}, Spec: v1alpha1.DataplanePolicySpec{
	DefaultMode: v1alpha1.ModeAmbient,
	Rules: []v1alpha1.Rule{
		{Name: "legacy", When: `workload.labels["tier"] == "legacy"`, Mode: "sidecar"},
		{Name: "batch", When: `workload.ownerKind == "Job"`, Mode: "none"},
		{Name: "busy", When: `traffic.available && !traffic.stale && traffic.requestRate > 1000.0`, Mode: "sidecar"},
		{Name: "grpc", When: `"grpc" in traffic.protocols`, Mode: "ambient-waypoint"},
		{Name: "envoyfilter", When: `"EnvoyFilter" in features`, Mode: "sidecar"},
	},
}}

func benchReview(b testing.TB) []byte {
	pod := testPod("checkout-7d9f8c6b5-x2x9q", "shop", map[string]string{"app": "checkout", "app.kubernetes.io/name": "checkout",
		"app.kubernetes.io/part-of": "shop", "app.kubernetes.io/version": "1.42.0", "pod-template-hash": "7d9f8c6b5", "team": "payments",
		"tier": "backend", "version": "v1", "env": "prod", "region": "eu-west-1"}, map[string]string{"prometheus.io/scrape": "true"})
	pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "checkout-7d9f8c6b5", UID: "u", Controller: ptr.To(true)}}
	return mustJSON(b, &admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "shop",
			Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: mustJSON(b, pod)}},
	})
}

func benchServe(b *testing.B, h http.Handler, body []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkServeMutatePod is one AdmissionReview through meshshift's pod
// mutator as the server runs it (decode review, decide, patch, encode).
func BenchmarkServeMutatePod(b *testing.B) {
	in := testInputs(b, []*v1alpha1.DataplanePolicy{benchPolicy}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	benchServe(b, &admission.Webhook{Handler: &PodMutator{Inputs: in}}, benchReview(b))
}

// BenchmarkServeNoop is the same review through a handler that allows
// everything: the baseline of BenchmarkServeMutatePod.
func BenchmarkServeNoop(b *testing.B) {
	noop := admission.HandlerFunc(func(context.Context, admission.Request) admission.Response { return admission.Allowed("") })
	benchServe(b, &admission.Webhook{Handler: noop}, benchReview(b))
}

// BenchmarkServeValidatePod is the validating pod webhook on the same review.
func BenchmarkServeValidatePod(b *testing.B) {
	in := testInputs(b, []*v1alpha1.DataplanePolicy{benchPolicy}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	benchServe(b, &admission.Webhook{Handler: &PodValidator{Inputs: in}}, benchReview(b))
}

// BenchmarkDecodePod is decodePod alone on the review's pod.
func BenchmarkDecodePod(b *testing.B) {
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(benchReview(b), &r); err != nil {
		b.Fatal(err)
	}
	raw := r.Request.Object.Raw
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for i := 0; i < b.N; i++ {
		if _, err := decodePod(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandleMutatePod is the mutator's Handle alone (no HTTP, no review
// decoding): what meshshift adds to the server's work per pod.
func BenchmarkHandleMutatePod(b *testing.B) {
	in := testInputs(b, []*v1alpha1.DataplanePolicy{benchPolicy}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(benchReview(b), &r); err != nil {
		b.Fatal(err)
	}
	req := admission.Request{AdmissionRequest: *r.Request}
	m := &PodMutator{Inputs: in}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if resp := m.Handle(ctx, req); len(resp.Patch) == 0 {
			b.Fatal("no patch")
		}
	}
}

// BenchmarkDecodePodFull is the full decode decodePod replaces (its baseline).
func BenchmarkDecodePodFull(b *testing.B) {
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(benchReview(b), &r); err != nil {
		b.Fatal(err)
	}
	raw := r.Request.Object.Raw
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for i := 0; i < b.N; i++ {
		var p podView
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &p); err != nil {
			b.Fatal(err)
		}
	}
}
