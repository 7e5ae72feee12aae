package webhook

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/webhook/internal/admjson"
)

// Kinds as meshshift_webhook_rejections_total's kind label reports them.
const (
	kindPod             = "Pod"
	kindNamespace       = "Namespace"
	kindDataplanePolicy = "DataplanePolicy"
	kindMeshMigration   = "MeshMigration"
)

var (
	groupCore = ""
	groupMesh = v1alpha1.GroupVersion.Group
)

// invalid is the 422 response of a validation failure, counted under reason.
func invalid(group, kind, name, reason string, errs field.ErrorList) admission.Response {
	rejectionsTotal.WithLabelValues(kind, reason).Inc()
	st := apierrors.NewInvalid(schema.GroupKind{Group: group, Kind: kind}, name, errs).Status()
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &st}}
}

// forbidden is the 403 response of a request the object's state forbids.
func forbidden(group, kind, resource, name, reason string, err error) admission.Response {
	rejectionsTotal.WithLabelValues(kind, reason).Inc()
	st := apierrors.NewForbidden(schema.GroupResource{Group: group, Resource: resource}, name, err).Status()
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &st}}
}

func undecodable(kind string, err error) admission.Response {
	rejectionsTotal.WithLabelValues(kind, ReasonUndecodable).Inc()
	return admission.Errored(http.StatusBadRequest, err)
}

// newErrors drops from errs those old already had, so an UPDATE is rejected
// only for what it breaks, never for what was already there.
func newErrors(errs, old field.ErrorList) field.ErrorList {
	if len(old) == 0 {
		return errs
	}
	seen := make(map[string]bool, len(old))
	for _, e := range old {
		seen[e.Error()] = true
	}
	var out field.ErrorList
	for _, e := range errs {
		if !seen[e.Error()] {
			out = append(out, e)
		}
	}
	return out
}

// PodValidator rejects pods whose mesh labels and annotations no mesh accepts,
// contradict each other, or ask for a mode the namespace's policy does not allow.
type PodValidator struct {
	Inputs *Inputs
}

// Handle implements admission.Handler.
func (v *PodValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	return v.check(ctx, string(req.Operation), req.SubResource, req.Namespace, req.Object.Raw, req.OldObject.Raw, nil)
}

// Review is the validator as a ReviewFunc: what the webhook server runs, under
// a ReviewHandler (the API server waits on it for every pod too).
func (v *PodValidator) Review(ctx context.Context, req *ReviewRequest) admission.Response {
	return v.check(ctx, req.Operation, req.SubResource, req.Namespace, req.Object, req.OldObject, req.Pod)
}

// check validates the pod in raw (pod: raw already decoded, or nil).
func (v *PodValidator) check(ctx context.Context, op, subResource, namespace string, raw, oldRaw []byte, pod *admjson.Pod) admission.Response {
	if (op != string(admissionv1.Create) && op != string(admissionv1.Update)) || subResource != "" {
		return admission.Allowed("")
	}
	pod, err := withMaps(pod, raw)
	if err != nil {
		return undecodable(kindPod, err)
	}
	nsName := namespace
	if nsName == "" {
		nsName = pod.Metadata.Namespace
	}
	errs, reason := v.validate(ctx, pod, nsName)
	if len(errs) > 0 && op == string(admissionv1.Update) {
		old, err := admjson.DecodePod(oldRaw)
		if err != nil {
			return undecodable(kindPod, err)
		}
		oldErrs, _ := v.validate(ctx, old, nsName)
		errs = newErrors(errs, oldErrs)
	}
	if len(errs) == 0 {
		return admission.Allowed("")
	}
	return invalid(groupCore, kindPod, pod.DisplayName(), reason, errs)
}

func (v *PodValidator) validate(ctx context.Context, pod *admjson.Pod, nsName string) (field.ErrorList, string) {
	mp := field.NewPath("metadata")
	errs := policies.ValidatePodMeshMetadata(mp, pod.Metadata.Labels, pod.Metadata.Annotations)
	reason := ReasonInvalidMeshMetadata
	for _, e := range errs {
		if strings.Contains(e.Detail, "contradicts") {
			reason = ReasonConflictingInjection
		}
	}
	mode, ok := pod.Metadata.Annotations[v1alpha1.AnnotationMode]
	if !ok || !v1alpha1.Mode(mode).Valid() || v.Inputs == nil {
		return errs, reason
	}
	ns := v.Inputs.namespace(ctx, nsName)
	p := v.Inputs.policy(ns.Labels)
	if !p.Allows(ns.Labels, v1alpha1.Mode(mode)) {
		errs = append(errs, field.Invalid(mp.Child("annotations").Key(v1alpha1.AnnotationMode), mode,
			fmt.Sprintf("DataplanePolicy %s allows only %s in namespace %s", p.Name(), modeList(p.AllowedModes(ns.Labels)), nsName)))
		reason = ReasonModeNotAllowed
	}
	return errs, reason
}

func modeList(ms []v1alpha1.Mode) string {
	if len(ms) == 0 {
		return "no mode"
	}
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

// DataplanePolicyValidator rejects DataplanePolicies that do not compile
// (policies.ValidateDataplanePolicy).
type DataplanePolicyValidator struct{}

// Handle implements admission.Handler.
func (DataplanePolicyValidator) Handle(_ context.Context, req admission.Request) admission.Response {
	if (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) || req.SubResource != "" {
		return admission.Allowed("")
	}
	var dp v1alpha1.DataplanePolicy
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, &dp); err != nil {
		return undecodable(kindDataplanePolicy, fmt.Errorf("decode DataplanePolicy: %w", err))
	}
	if errs := policies.ValidateDataplanePolicy(&dp); len(errs) > 0 {
		return invalid(groupMesh, kindDataplanePolicy, dp.Name, ReasonInvalidSpec, errs)
	}
	return admission.Allowed("")
}

// namespaceOf decodes a Namespace from raw admission bytes.
func namespaceOf(raw []byte) (*corev1.Namespace, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("decode namespace: empty object")
	}
	var ns corev1.Namespace
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &ns); err != nil {
		return nil, fmt.Errorf("decode namespace: %w", err)
	}
	return &ns, nil
}
