package admjson

import (
	"errors"
	"fmt"
)

// ReviewRequest is the part of an AdmissionReview's request that the
// webhook's ReviewHandler hands to its function.
type ReviewRequest struct {
	UID         string
	Operation   string
	SubResource string
	Namespace   string
	Name        string
	DryRun      bool
	// Object and OldObject are the raw JSON of request.object and
	// request.oldObject; nil when absent or null. They share the request
	// body's memory.
	Object, OldObject []byte
	// Pod is Object read by DecodePod's view, when DecodePodReview read it
	// in the same pass; nil otherwise (and when Object is not a pod's JSON,
	// which DecodePod(Object) then names). Its labels and annotations are
	// read by Pod.DecodeMaps.
	Pod *Pod
}

// Review is a decoded AdmissionReview: its version (echoed in the answer)
// and request.
type Review struct {
	Version string // "v1" or "v1beta1"
	Request ReviewRequest
}

// DecodeReview reads an AdmissionReview. Like the decoder of
// admission.Webhook it is case-sensitive, skips unknown fields and lets a
// repeated key win; it requires kind AdmissionReview of admission.k8s.io/v1
// or v1beta1 and a request object.
func DecodeReview(body []byte) (Review, error) {
	return decodeReview(body, false)
}

// DecodePodReview is DecodeReview for a review of a Pod: request.object is
// read by DecodePod's view in the same pass (into Request.Pod) instead of
// being skipped here and scanned again by DecodePod. The labels and
// annotations maps are left to Pod.DecodeMaps (Pod.MapsJSON has them raw).
func DecodePodReview(body []byte) (Review, error) {
	return decodeReview(body, true)
}

func decodeReview(body []byte, pods bool) (Review, error) {
	var rev Review
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
			return s.reviewRequest(&rev.Request, pods)
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
		return Review{}, fmt.Errorf("decode AdmissionReview: %w", err)
	}
	switch {
	case kind != "AdmissionReview":
		return Review{}, fmt.Errorf("decode AdmissionReview: kind %q: want AdmissionReview", kind)
	case apiVersion == "admission.k8s.io/v1":
		rev.Version = "v1"
	case apiVersion == "admission.k8s.io/v1beta1":
		rev.Version = "v1beta1"
	default:
		return Review{}, fmt.Errorf("decode AdmissionReview: apiVersion %q: want admission.k8s.io/v1 or admission.k8s.io/v1beta1", apiVersion)
	}
	if !hasRequest {
		return Review{}, errors.New("decode AdmissionReview: request is missing")
	}
	return rev, nil
}

func (s *scanner) reviewRequest(r *ReviewRequest, pods bool) error {
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
			v, _, err := s.boolValue("request.dryRun") // null clears it, as for the *bool of AdmissionRequest
			if err == nil {
				r.DryRun = v
			}
			return err
		case "object":
			if pods {
				return s.podInto(r)
			}
			return s.rawInto(&r.Object)
		case "oldObject":
			return s.rawInto(&r.OldObject)
		default:
			return s.skip()
		}
	})
}

// rawInto keeps the next value as raw JSON in dst; null leaves dst as it is,
// as for a runtime.RawExtension.
func (s *scanner) rawInto(dst *[]byte) error {
	s.ws()
	start := s.i
	if err := s.skip(); err != nil {
		return err
	}
	if raw := s.b[start:s.i]; string(raw) != "null" {
		*dst = raw[:len(raw):len(raw)]
	}
	return nil
}

// podInto is rawInto for request.object that also reads it as a pod: Pod
// is set with Object, and nil when the object does not decode as one (null
// leaves both as they are).
func (s *scanner) podInto(r *ReviewRequest) error {
	s.ws()
	start := s.i
	if s.peek() == '{' {
		if p, err := s.pod(true); err == nil {
			r.Object, r.Pod = s.b[start:s.i:s.i], p
			return nil
		}
		s.i = start
	}
	if err := s.rawInto(&r.Object); err != nil {
		return err
	}
	if string(s.b[start:s.i]) != "null" {
		r.Pod = nil
	}
	return nil
}
