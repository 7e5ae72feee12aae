package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
)

// benchPolicy has five rules that do not match, so every decision evaluates
// them all and ends at the default (ambient).
var benchPolicy = &v1alpha1.DataplanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "bench", Generation: 1}, Spec: v1alpha1.DataplanePolicySpec{
	DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeAmbient),
	Rules: []v1alpha1.Rule{
		{Name: "legacy", When: `workload.labels["tier"] == "legacy"`, Mode: "sidecar"},
		{Name: "batch", When: `workload.ownerKind == "Job"`, Mode: "none"},
		{Name: "busy", When: `traffic.available && !traffic.stale && traffic.requestRate > 1000.0`, Mode: "sidecar"},
		{Name: "grpc", When: `"grpc" in traffic.protocols`, Mode: "ambient-waypoint"},
		{Name: "envoyfilter", When: `"EnvoyFilter" in features`, Mode: "sidecar"},
	},
}}

// benchReview is the AdmissionReview the API server sent for a
// Deployment-shaped pod (two containers, a dozen labels, an owner), captured
// by make bench-webhook (webhookbench -dump-review): the pod as the API server
// has it at admission, with defaults, the service account token volume and
// managedFields, in namespace "bench".
func benchReview(b testing.TB) []byte {
	raw, err := os.ReadFile(filepath.Join("testdata", "apiserver-pod-review.json"))
	if err != nil {
		b.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		b.Fatal(err)
	}
	return compact.Bytes()
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
// mutator under ReviewHandler (decode review, decide, patch, encode);
// BenchmarkServeNoopReview is its baseline. "fresh" decides every pod;
// "stable" is the server's way: the pods of one ReplicaSet after the first
// are answered from the remembered answer (answerMemo).
func BenchmarkServeMutatePod(b *testing.B) {
	b.Run("fresh", func(b *testing.B) { benchServeMutatePod(b, nil) })
	b.Run("stable", func(b *testing.B) { benchServeMutatePod(b, policies.NewStabilizer(1024)) })
}

func benchServeMutatePod(b *testing.B, st *policies.Stabilizer) {
	in := testInputs(b, []*v1alpha1.DataplanePolicy{benchPolicy}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}})
	in.Stabilizer = st
	benchServe(b, &ReviewHandler{Func: (&PodMutator{Inputs: in}).Review, Pods: true}, benchReview(b))
}

// BenchmarkServeNoop is the same review through controller-runtime's
// admission.Webhook with a handler that allows everything (the stack the
// validators use).
func BenchmarkServeNoop(b *testing.B) {
	noop := admission.HandlerFunc(func(context.Context, admission.Request) admission.Response { return admission.Allowed("") })
	benchServe(b, &admission.Webhook{Handler: noop}, benchReview(b))
}

// BenchmarkServeValidatePod is the validating pod webhook on the same review.
func BenchmarkServeValidatePod(b *testing.B) {
	in := testInputs(b, []*v1alpha1.DataplanePolicy{benchPolicy}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}})
	benchServe(b, &ReviewHandler{Func: (&PodValidator{Inputs: in}).Review, Pods: true}, benchReview(b))
}

// BenchmarkHandleMutatePod is the mutator's Handle alone (no HTTP, no review
// decoding): what meshshift adds to the server's work per pod.
// Sub-benchmarks: "fresh" decides every pod (policies.Decide), "stable" is
// the server's way (a Stabilizer and the answer memo: the pods of one
// ReplicaSet after the first reuse its answer while the inputs but traffic
// are unchanged).
func BenchmarkHandleMutatePod(b *testing.B) {
	b.Run("fresh", func(b *testing.B) { benchHandleMutatePod(b, nil) })
	b.Run("stable", func(b *testing.B) { benchHandleMutatePod(b, policies.NewStabilizer(1024)) })
}

func benchHandleMutatePod(b *testing.B, st *policies.Stabilizer) {
	in := testInputs(b, []*v1alpha1.DataplanePolicy{benchPolicy}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}})
	in.Stabilizer = st
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
