package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// ReviewRequest is the part of an AdmissionReview's request that a
// ReviewHandler's function reads.
type ReviewRequest struct {
	UID         string
	Operation   string
	SubResource string
	Namespace   string
	Name        string
	DryRun      bool
	// Object is the raw JSON of request.object; nil when it is absent or null.
	// It shares the request body's memory.
	Object []byte
}

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
}

// maxReviewSize is admission.Webhook's limit on a request body.
const maxReviewSize = 7 << 20

// ServeHTTP implements http.Handler.
func (h *ReviewHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := logf.Log.WithName("admission")
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
	rev, err := decodeReview(body)
	if err != nil {
		writeReviewError(w, log, "v1", http.StatusBadRequest, err)
		return
	}
	resp := h.call(logf.IntoContext(r.Context(), log), log, &rev.req)
	resp.UID = types.UID(rev.req.UID)
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
			resp.UID = types.UID(rev.req.UID)
		} else {
			pt := admissionv1.PatchTypeJSONPatch
			resp.PatchType = &pt
		}
	}
	writeReview(w, log, rev.version, &resp.AdmissionResponse)
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
			log.Error(fmt.Errorf("panic: %v", p), "webhook panicked", "uid", req.UID)
			resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("panic: %v [recovered]", p))
		}
	}()
	return h.Func(ctx, req)
}

// Request turns the review into the admission.Request that the same
// handler gets from admission.Webhook (for the fields ReviewRequest has).
func (r *ReviewRequest) Request() admission.Request {
	var req admission.Request
	req.UID = types.UID(r.UID)
	req.Operation = admissionv1.Operation(r.Operation)
	req.SubResource = r.SubResource
	req.Namespace = r.Namespace
	req.Name = r.Name
	req.DryRun = &r.DryRun
	req.Object.Raw = r.Object
	return req
}

// review is a decoded AdmissionReview: its version (echoed in the answer)
// and request.
type review struct {
	version string // "v1" or "v1beta1"
	req     ReviewRequest
}

// decodeReview reads an AdmissionReview. Like the decoder of
// admission.Webhook it is case-sensitive, skips unknown fields and lets a
// repeated key win; it requires kind AdmissionReview of admission.k8s.io/v1
// or v1beta1 and a request object.
func decodeReview(body []byte) (review, error) {
	var rev review
	var apiVersion, kind string
	hasRequest := false
	s := scanner{b: body}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "apiVersion":
			return s.stringInto(&apiVersion)
		case "kind":
			return s.stringInto(&kind)
		case "request":
			if s.peek() == 'n' {
				return fmt.Errorf("request: want an object, got null: %w", errJSON)
			}
			hasRequest = true
			return s.reviewRequest(&rev.req)
		default:
			return s.skip()
		}
	})
	if err == nil {
		if s.ws(); s.i != len(body) {
			err = errors.New("data after the object")
		}
	}
	if err != nil {
		return review{}, fmt.Errorf("decode AdmissionReview: %w", err)
	}
	switch {
	case kind != "AdmissionReview":
		return review{}, fmt.Errorf("decode AdmissionReview: kind %q: want AdmissionReview", kind)
	case apiVersion == "admission.k8s.io/v1":
		rev.version = "v1"
	case apiVersion == "admission.k8s.io/v1beta1":
		rev.version = "v1beta1"
	default:
		return review{}, fmt.Errorf("decode AdmissionReview: apiVersion %q: want admission.k8s.io/v1 or admission.k8s.io/v1beta1", apiVersion)
	}
	if !hasRequest {
		return review{}, errors.New("decode AdmissionReview: request is missing")
	}
	return rev, nil
}

func (s *scanner) reviewRequest(r *ReviewRequest) error {
	return s.object(func(key []byte) error {
		switch string(key) {
		case "uid":
			return s.stringInto(&r.UID)
		case "operation":
			return s.stringInto(&r.Operation)
		case "subResource":
			return s.stringInto(&r.SubResource)
		case "namespace":
			return s.stringInto(&r.Namespace)
		case "name":
			return s.stringInto(&r.Name)
		case "dryRun":
			switch s.peek() {
			case 't':
				r.DryRun = true
				return s.literal(trueLit)
			case 'f':
				r.DryRun = false
				return s.literal(falseLit)
			case 'n': // null clears it, as for the *bool of AdmissionRequest
				r.DryRun = false
				return s.literal(nullLit)
			}
			return fmt.Errorf("request.dryRun: want a bool at offset %d: %w", s.i, errJSON)
		case "object":
			s.ws()
			start := s.i
			if err := s.skip(); err != nil {
				return err
			}
			if raw := s.b[start:s.i]; string(raw) != "null" { // null leaves it, as for a RawExtension
				r.Object = raw[:len(raw):len(raw)]
			}
			return nil
		default:
			return s.skip()
		}
	})
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
	b = appendJSONString(b, string(resp.UID))
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
		b = appendJSONString(b, string(*resp.PatchType))
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
			b = appendJSONString(b, wn)
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
