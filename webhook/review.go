package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	admissionmetrics "sigs.k8s.io/controller-runtime/pkg/webhook/admission/metrics"

	"github.com/meshshift/meshshift/webhook/internal/admjson"
)

// ReviewRequest is the part of an AdmissionReview's request that a
// ReviewHandler's function reads.
type ReviewRequest = admjson.ReviewRequest

// ReviewFunc answers one AdmissionReview request.
type ReviewFunc func(ctx context.Context, req *ReviewRequest) admission.Response

// ReviewHandler serves AdmissionReviews (admission.k8s.io/v1 and v1beta1)
// like controller-runtime's admission.Webhook, but reads the review in one
// pass that keeps only the fields of ReviewRequest (the object stays raw JSON,
// not copied) and writes the answer without reflection. The pod mutator is
// served by it: the API server waits on it for every pod. Same checks and
// answers as admission.Webhook (TestReviewHandlerAgreesWithWebhook); a panic
// in Func is answered with a 500, as admission.Webhook does.
type ReviewHandler struct {
	Func ReviewFunc
	// Log is put into the request's context (nil: controller-runtime's).
	Log *logr.Logger
	// Pods says the reviews are of pods: request.object is decoded as one
	// (ReviewRequest.Pod) in the same pass as the review.
	Pods bool
}

// reviewLog is ReviewHandler's logger when it has none of its own: derived
// once (controller-runtime's delegating logger takes the real one later).
var reviewLog = logf.Log.WithName("admission")

// maxReviewSize is admission.Webhook's limit on a request body.
const maxReviewSize = 7 << 20

// ServeHTTP implements http.Handler.
func (h *ReviewHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reviewers.run(h, w, r)
}

// serve answers one review.
func (h *ReviewHandler) serve(w http.ResponseWriter, r *http.Request) {
	log := reviewLog
	if h.Log != nil {
		log = *h.Log
	}
	if r.Body == nil || r.Body == http.NoBody {
		writeReviewError(w, log, "v1", http.StatusBadRequest, errors.New("request body is empty"))
		return
	}
	defer func() { _ = r.Body.Close() }()
	lr := &io.LimitedReader{R: r.Body, N: maxReviewSize}
	body, err := readBody(lr, r.ContentLength)
	if err != nil {
		writeReviewError(w, log, "v1", http.StatusBadRequest, fmt.Errorf("read request body: %w", err))
		return
	}
	if lr.N <= 0 {
		writeReviewError(w, log, "v1", http.StatusRequestEntityTooLarge, fmt.Errorf("request entity is too large; limit is %d bytes", maxReviewSize))
		return
	}
	if len(body) == 0 {
		writeReviewError(w, log, "v1", http.StatusBadRequest, errors.New("request body is empty"))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		writeReviewError(w, log, "v1", http.StatusBadRequest, fmt.Errorf("contentType=%s, expected application/json", ct))
		return
	}
	decode := admjson.DecodeReview
	if h.Pods {
		decode = admjson.DecodePodReview
	}
	rev, err := decode(body)
	if err != nil {
		writeReviewError(w, log, "v1", http.StatusBadRequest, err)
		return
	}
	resp := h.call(logf.IntoContext(r.Context(), log), log, &rev.Request)
	resp.UID = types.UID(rev.Request.UID)
	if resp.Result == nil {
		resp.Result = &metav1.Status{}
	}
	if resp.Result.Code == 0 {
		resp.Result.Code = http.StatusOK
	}
	if len(resp.Patches) > 0 {
		if resp.Patch, err = json.Marshal(resp.Patches); err != nil {
			log.Error(err, "unable to encode response")
			resp = admission.Errored(http.StatusInternalServerError, errors.New("unable to encode response"))
			resp.UID = types.UID(rev.Request.UID)
		} else {
			pt := admissionv1.PatchTypeJSONPatch
			resp.PatchType = &pt
		}
	}
	writeReview(w, log, rev.Version, &resp.AdmissionResponse)
}

// readBody reads r whole into a buffer sized from the request's
// Content-Length when it has one (io.ReadAll would grow one from 512 bytes,
// a copy per doubling).
func readBody(r *io.LimitedReader, contentLength int64) ([]byte, error) {
	if contentLength <= 0 || contentLength > maxReviewSize {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, contentLength+1) // +1: the read that sees EOF
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // longer than announced: grow
		}
	}
}

// call runs Func, turning a panic into a 500 answer.
func (h *ReviewHandler) call(ctx context.Context, log logr.Logger, req *ReviewRequest) (resp admission.Response) {
	defer func() {
		if p := recover(); p != nil {
			admissionmetrics.WebhookPanics.WithLabelValues().Inc() // as admission.Webhook counts them
			log.Error(fmt.Errorf("panic: %v", p), "webhook panicked", "uid", req.UID)
			resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("panic: %v [recovered]", p))
		}
	}()
	return h.Func(ctx, req)
}

// writeReviewError answers a request that could not be read.
func writeReviewError(w http.ResponseWriter, log logr.Logger, version string, code int32, err error) {
	log.Error(err, "bad admission request")
	resp := admission.Errored(code, err)
	writeReview(w, log, version, &resp.AdmissionResponse)
}

// writeReview writes the AdmissionReview holding resp; the common answers
// (a status with only a code, a patch, warnings) without reflection.
func writeReview(w http.ResponseWriter, log logr.Logger, version string, resp *admissionv1.AdmissionResponse) {
	b := make([]byte, 0, 256+base64.StdEncoding.EncodedLen(len(resp.Patch)))
	b = append(b, `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/`...)
	b = append(b, version...)
	b = append(b, `","response":{"uid":`...)
	b = admjson.AppendJSONString(b, string(resp.UID))
	b = append(b, `,"allowed":`...)
	b = strconv.AppendBool(b, resp.Allowed)
	if st := resp.Result; st != nil {
		b = append(b, `,"status":`...)
		if onlyCode(st) {
			b = append(b, `{"metadata":{},"code":`...)
			b = strconv.AppendInt(b, int64(st.Code), 10)
			b = append(b, '}')
		} else {
			enc, err := json.Marshal(st)
			if err != nil {
				log.Error(err, "unable to encode the response status")
				enc = []byte(`{"metadata":{},"code":500}`)
			}
			b = append(b, enc...)
		}
	}
	if len(resp.Patch) > 0 {
		b = append(b, `,"patch":"`...)
		b = base64.StdEncoding.AppendEncode(b, resp.Patch)
		b = append(b, '"')
	}
	if resp.PatchType != nil {
		b = append(b, `,"patchType":`...)
		b = admjson.AppendJSONString(b, string(*resp.PatchType))
	}
	if len(resp.AuditAnnotations) > 0 {
		enc, err := json.Marshal(resp.AuditAnnotations)
		if err == nil {
			b = append(b, `,"auditAnnotations":`...)
			b = append(b, enc...)
		}
	}
	if len(resp.Warnings) > 0 {
		b = append(b, `,"warnings":[`...)
		for i, wn := range resp.Warnings {
			if i > 0 {
				b = append(b, ',')
			}
			b = admjson.AppendJSONString(b, wn)
		}
		b = append(b, ']')
	}
	b = append(b, "}}\n"...)
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(b); err != nil {
		log.Error(err, "unable to write the response")
	}
}

// onlyCode reports a status that has nothing but its code set.
func onlyCode(st *metav1.Status) bool {
	return st.Status == "" && st.Message == "" && st.Reason == "" && st.Details == nil &&
		st.ListMeta == (metav1.ListMeta{}) && st.TypeMeta == (metav1.TypeMeta{})
}

// reviewers answer reviews on long-lived goroutines. The HTTP server runs
// each request on a new goroutine whose stack starts at 2 KiB; answering a
// pod's review needs about 12, and growing there copies the stack twice,
// deep (runtime.copystack was a tenth of the server's CPU under load). A
// reviewer's stack has grown once and stays grown.
var reviewers = newReviewerPool(4 * runtime.GOMAXPROCS(0))

type reviewJob struct {
	h     *ReviewHandler
	w     http.ResponseWriter
	r     *http.Request
	panic any
	done  chan struct{}
}

type reviewerPool struct {
	once sync.Once
	n    int
	jobs chan *reviewJob
	free sync.Pool
}

func newReviewerPool(n int) *reviewerPool {
	p := &reviewerPool{n: n, jobs: make(chan *reviewJob)}
	p.free.New = func() any { return &reviewJob{done: make(chan struct{}, 1)} }
	return p
}

// run answers on an idle reviewer, or here when none is idle. A panic is
// raised again on the caller's goroutine (net/http's handling of it).
func (p *reviewerPool) run(h *ReviewHandler, w http.ResponseWriter, r *http.Request) {
	p.once.Do(func() {
		for range p.n {
			go p.work()
		}
	})
	j := p.free.Get().(*reviewJob)
	j.h, j.w, j.r = h, w, r
	select {
	case p.jobs <- j:
		<-j.done
	default:
		h.serve(w, r)
	}
	pv := j.panic
	*j = reviewJob{done: j.done}
	p.free.Put(j)
	if pv != nil {
		panic(pv)
	}
}

func (p *reviewerPool) work() {
	for j := range p.jobs {
		func() {
			defer func() {
				j.panic = recover()
				j.done <- struct{}{}
			}()
			j.h.serve(j.w, j.r)
		}()
	}
}
