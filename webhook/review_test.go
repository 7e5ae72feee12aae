package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	admissionmetrics "sigs.k8s.io/controller-runtime/pkg/webhook/admission/metrics"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
)

// serve posts body to h as the API server does and decodes the answer.
func serve(t testing.TB, h http.Handler, body []byte, contentType string) (int, admissionv1.AdmissionReview) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("answer is no AdmissionReview (%v): %s", err, rec.Body.Bytes())
	}
	return rec.Code, out
}

func reviewOf(t testing.TB, apiVersion string, r admissionv1.AdmissionRequest) []byte {
	return mustJSON(t, &admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: apiVersion, Kind: "AdmissionReview"}, Request: &r})
}

// TestReviewHandlerAgreesWithWebhook serves the pod mutator and validator
// both ways — as the server does (ReviewHandler) and through
// controller-runtime's admission.Webhook — and expects the same answer for
// every kind of review.
func TestReviewHandlerAgreesWithWebhook(t *testing.T) {
	in := testInputs(t, []*v1alpha1.DataplanePolicy{benchPolicy}, nsMode("shop", "ambient"), ns("bench", nil, nil))
	m, v := &PodMutator{Inputs: in}, &PodValidator{Inputs: in}
	handlers := []struct {
		name          string
		fast, generic http.Handler
	}{
		{"mutator", &ReviewHandler{Func: m.Review, Pods: true}, &admission.Webhook{Handler: m}},
		{"validator", &ReviewHandler{Func: v.Review, Pods: true}, &admission.Webhook{Handler: v}},
		// Without Pods, the functions decode the object themselves.
		{"mutator decoding the pod", &ReviewHandler{Func: m.Review}, &admission.Webhook{Handler: m}},
		{"validator decoding the pod", &ReviewHandler{Func: v.Review}, &admission.Webhook{Handler: v}},
	}

	pod := testPod("web-1", "shop", map[string]string{"app": "web"}, nil)
	pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d", UID: "u", Controller: ptr.To(true)}}
	contradiction := testPod("web-2", "shop", map[string]string{"sidecar.istio.io/inject": "true", "istio.io/dataplane-mode": "ambient"}, nil)
	create := func(obj []byte) admissionv1.AdmissionRequest {
		return request(admissionv1.Create, "Pod", "pods", "shop", obj, nil).AdmissionRequest
	}
	dry := create(mustJSON(t, pod))
	dry.DryRun = ptr.To(true)
	update := request(admissionv1.Update, "Pod", "pods", "shop", mustJSON(t, pod), mustJSON(t, pod)).AdmissionRequest
	sub := create(mustJSON(t, pod))
	sub.SubResource = "status"
	// An update that makes a valid pod contradict itself (the validator
	// reads the old object: only new errors are rejected).
	spoiled := request(admissionv1.Update, "Pod", "pods", "shop", mustJSON(t, contradiction), mustJSON(t, pod)).AdmissionRequest
	// An update of a pod that was already contradictory: allowed.
	unchanged := request(admissionv1.Update, "Pod", "pods", "shop", mustJSON(t, contradiction), mustJSON(t, contradiction)).AdmissionRequest
	cases := map[string][]byte{
		"decided":              reviewOf(t, "admission.k8s.io/v1", create(mustJSON(t, pod))),
		"v1beta1":              reviewOf(t, "admission.k8s.io/v1beta1", create(mustJSON(t, pod))),
		"dry run":              reviewOf(t, "admission.k8s.io/v1", dry),
		"update":               reviewOf(t, "admission.k8s.io/v1", update),
		"update spoiling":      reviewOf(t, "admission.k8s.io/v1", spoiled),
		"update unchanged":     reviewOf(t, "admission.k8s.io/v1", unchanged),
		"subresource":          reviewOf(t, "admission.k8s.io/v1", sub),
		"contradicting labels": reviewOf(t, "admission.k8s.io/v1", create(mustJSON(t, contradiction))),
		"object not a pod":     reviewOf(t, "admission.k8s.io/v1", create([]byte(`{"metadata":"x"}`))),
		"api server review":    benchReview(t),
	}
	for _, h := range handlers {
		for name, body := range cases {
			t.Run(h.name+"/"+name, func(t *testing.T) {
				codeF, f := serve(t, h.fast, body, "application/json")
				codeG, g := serve(t, h.generic, body, "application/json")
				if codeF != codeG {
					t.Errorf("HTTP status %d, admission.Webhook %d", codeF, codeG)
				}
				if f.APIVersion != g.APIVersion || f.Kind != g.Kind {
					t.Errorf("answer is %s %s, admission.Webhook's %s %s", f.APIVersion, f.Kind, g.APIVersion, g.Kind)
				}
				if !reflect.DeepEqual(f.Response, g.Response) {
					t.Errorf("answer\n%+v\nadmission.Webhook's\n%+v", f.Response, g.Response)
				}
				if f.Response.UID == "" {
					t.Errorf("answer without the request's UID")
				}
			})
		}
	}
	// The cases above must show both outcomes of the validator.
	for name, want := range map[string]bool{"contradicting labels": false, "update spoiling": false, "update unchanged": true, "decided": true} {
		if _, out := serve(t, handlers[1].fast, cases[name], "application/json"); out.Response.Allowed != want {
			t.Errorf("validator on %q: allowed %v, want %v (%+v)", name, out.Response.Allowed, want, out.Response.Result)
		}
	}
}

// TestReviewHandlerRejectsBadRequests: what cannot be read is answered with
// an error naming what is wrong, never a panic or a half answer.
func TestReviewHandlerRejectsBadRequests(t *testing.T) {
	called := false
	h := &ReviewHandler{Func: func(context.Context, *ReviewRequest) admission.Response {
		called = true
		return admission.Allowed("")
	}}
	good := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","operation":"CREATE","object":{}}}`
	cases := []struct {
		name, body, contentType string
		code                    int32
		want                    string
	}{
		{"empty body", "", "application/json", http.StatusBadRequest, "request body is empty"},
		{"content type", good, "text/plain", http.StatusBadRequest, "contentType=text/plain, expected application/json"},
		{"not JSON", `{"apiVersion":`, "application/json", http.StatusBadRequest, "decode AdmissionReview"},
		{"data after", good + "x", "application/json", http.StatusBadRequest, "data after the object"},
		{"kind", strings.Replace(good, `"AdmissionReview"`, `"Pod"`, 1), "application/json", http.StatusBadRequest, `kind "Pod": want AdmissionReview`},
		{"apiVersion", strings.Replace(good, "admission.k8s.io/v1", "admission.k8s.io/v2", 1), "application/json", http.StatusBadRequest,
			`apiVersion "admission.k8s.io/v2": want admission.k8s.io/v1 or admission.k8s.io/v1beta1`},
		{"no request", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, "application/json", http.StatusBadRequest, "request is missing"},
		{"null request", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`, "application/json", http.StatusBadRequest, "request: want an object"},
		{"uid type", strings.Replace(good, `"uid":"1"`, `"uid":1`, 1), "application/json", http.StatusBadRequest, "want a string"},
		{"dryRun type", strings.Replace(good, `"uid":"1"`, `"dryRun":"yes"`, 1), "application/json", http.StatusBadRequest, "request.dryRun: want a bool"},
		{"too large", `{"x":"` + strings.Repeat("a", maxReviewSize) + `"}`, "application/json", http.StatusRequestEntityTooLarge, "request entity is too large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			called = false
			_, out := serve(t, h, []byte(c.body), c.contentType)
			r := out.Response
			if r.Allowed || r.Result == nil || r.Result.Code != c.code || !strings.Contains(r.Result.Message, c.want) {
				t.Fatalf("answer %+v, want code %d and a message with %q", r, c.code, c.want)
			}
			if called {
				t.Fatal("the handler ran on an unreadable review")
			}
		})
	}
	if _, out := serve(t, h, []byte(good), "application/json"); !out.Response.Allowed || out.Response.UID != "1" || !called {
		t.Fatalf("good review answered %+v", out.Response)
	}
}

func TestReviewHandlerRecoversPanic(t *testing.T) {
	h := &ReviewHandler{Func: func(context.Context, *ReviewRequest) admission.Response { panic("boom") }}
	body := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"7"}}`
	before := testutil.ToFloat64(admissionmetrics.WebhookPanics)
	_, out := serve(t, h, []byte(body), "application/json")
	if r := out.Response; r.Allowed || r.UID != "7" || r.Result.Code != http.StatusInternalServerError || !strings.Contains(r.Result.Message, "panic: boom") {
		t.Fatalf("answer %+v", r)
	}
	if n := testutil.ToFloat64(admissionmetrics.WebhookPanics) - before; n != 1 {
		t.Errorf("controller_runtime_webhook_panics_total grew by %v, want 1", n)
	}
}

// panicWriter panics on the first write, as net/http's does with
// http.ErrAbortHandler when the client has gone.
type panicWriter struct{ *httptest.ResponseRecorder }

func (panicWriter) Write([]byte) (int, error) { panic(http.ErrAbortHandler) }

// TestReviewHandlerPanicReachesServer: a panic outside Func (here the
// ResponseWriter's) is raised again on ServeHTTP's goroutine, where net/http
// handles it, even though the review was answered on a reviewer goroutine.
func TestReviewHandlerPanicReachesServer(t *testing.T) {
	h := &ReviewHandler{Func: func(context.Context, *ReviewRequest) admission.Response { return admission.Allowed("") }}
	body := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"7"}}`
	for i := 0; i < 3; i++ { // the reviewer that recovered it serves again
		func() {
			defer func() {
				p := recover()
				if err, ok := p.(error); !ok || !errors.Is(err, http.ErrAbortHandler) {
					t.Fatalf("ServeHTTP panicked with %v, want http.ErrAbortHandler", p)
				}
			}()
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			h.ServeHTTP(panicWriter{httptest.NewRecorder()}, req)
		}()
	}
	if _, out := serve(t, h, []byte(body), "application/json"); !out.Response.Allowed || out.Response.UID != "7" {
		t.Fatalf("after the panics: answer %+v", out.Response)
	}
}

// TestReviewHandlerConcurrent sends more reviews at once than there are
// reviewer goroutines: every one is answered with its own UID (the ones no
// reviewer is free for are answered on the caller's goroutine).
func TestReviewHandlerConcurrent(t *testing.T) {
	in := testInputs(t, []*v1alpha1.DataplanePolicy{benchPolicy}, ns("shop", nil, nil))
	in.Stabilizer = policies.NewStabilizer(4) // and the answer memo, shared by the owned pods
	h := &ReviewHandler{Func: (&PodMutator{Inputs: in}).Review, Pods: true}
	n := 8 * reviewers.n
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			uid := "u-" + strconv.Itoa(i)
			pod := testPod("p-"+strconv.Itoa(i), "shop", map[string]string{"app": "web"}, nil)
			if i%2 == 0 { // one of eight ReplicaSets
				pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-" + strconv.Itoa(i%16), UID: "u", Controller: ptr.To(true)}}
			}
			body := reviewOf(t, "admission.k8s.io/v1", admissionv1.AdmissionRequest{UID: types.UID(uid), Operation: admissionv1.Create,
				Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Namespace: "shop", Object: runtime.RawExtension{Raw: mustJSON(t, pod)}})
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				errs <- fmt.Errorf("review %d: answer %s: %w", i, rec.Body.Bytes(), err)
				return
			}
			if string(out.Response.UID) != uid || !out.Response.Allowed || len(out.Response.Patch) == 0 {
				errs <- fmt.Errorf("review %d: answer uid %q allowed %v patch %q", i, out.Response.UID, out.Response.Allowed, out.Response.Patch)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// BenchmarkServeNoopReview is a no-op handler under ReviewHandler: the
// baseline of BenchmarkServeMutatePod (same stack).
func BenchmarkServeNoopReview(b *testing.B) {
	benchServe(b, &ReviewHandler{Func: func(context.Context, *ReviewRequest) admission.Response { return admission.Allowed("") }}, benchReview(b))
}

// TestReadBody: a Content-Length that is wrong either way still reads the
// whole body.
func TestReadBody(t *testing.T) {
	for _, n := range []int64{-1, 0, 3, 6, 7, 100} {
		got, err := readBody(&io.LimitedReader{R: strings.NewReader("abcdef"), N: maxReviewSize}, n)
		if err != nil || string(got) != "abcdef" {
			t.Errorf("content length %d: read %q, %v", n, got, err)
		}
	}
}
