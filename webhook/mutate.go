package webhook

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
)

// podView is the part of a Pod the webhooks read. Decoding only this (instead
// of a full corev1.Pod) keeps the admission path cheap; every field it writes is
// under metadata.labels and metadata.annotations.
type podView struct {
	Metadata *podMeta `json:"metadata"`
	Spec     struct {
		HostNetwork bool `json:"hostNetwork,omitempty"`
	} `json:"spec"`
}

type podMeta struct {
	Name            string                  `json:"name,omitempty"`
	GenerateName    string                  `json:"generateName,omitempty"`
	Namespace       string                  `json:"namespace,omitempty"`
	Labels          map[string]string       `json:"labels,omitempty"`
	Annotations     map[string]string       `json:"annotations,omitempty"`
	OwnerReferences []metav1.OwnerReference `json:"ownerReferences,omitempty"`
}

func decodePod(raw []byte) (*podView, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("decode pod: empty object")
	}
	var p podView
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &p); err != nil {
		return nil, fmt.Errorf("decode pod: %w", err)
	}
	if p.Metadata == nil {
		return nil, fmt.Errorf("decode pod: metadata is missing")
	}
	return &p, nil
}

func (p *podView) displayName() string {
	if p.Metadata.Name != "" {
		return p.Metadata.Name
	}
	return p.Metadata.GenerateName
}

func (p *podView) controller() (kind, name string) {
	for i := range p.Metadata.OwnerReferences {
		o := &p.Metadata.OwnerReferences[i]
		if o.Controller != nil && *o.Controller {
			return o.Kind, o.Name
		}
	}
	return "", ""
}

// Inputs are the caches every handler reads. Only Cache and Policies are
// required; a nil source means "no data" and is passed to Decide as such.
type Inputs struct {
	// Cache reads Namespaces and MeshMigrations (the manager's informer cache).
	Cache client.Reader
	// Policies are the compiled DataplanePolicies.
	Policies *PolicyStore
	// Features, Traffic and Capabilities feed policies.Decide.
	Features     FeatureSource
	Traffic      TrafficSource
	Capabilities CapabilitySource
	// Clock is read once per decision (traffic staleness); nil means the real clock.
	Clock clock.PassiveClock
	// Ready reports whether the caches are synced; nil means always. Before
	// that, pods are admitted without a decision (the detector reports them)
	// rather than waiting on a cache on the admission path.
	Ready func() bool
}

func (in *Inputs) namespace(ctx context.Context, name string) policies.Namespace {
	out := policies.Namespace{Name: name}
	if in.Cache == nil || name == "" {
		return out
	}
	var ns corev1.Namespace
	if err := in.Cache.Get(ctx, client.ObjectKey{Name: name}, &ns); err != nil {
		if !apierrors.IsNotFound(err) {
			logf.FromContext(ctx).V(1).Info("namespace not read from cache", "namespace", name, "error", err.Error())
		}
		return out
	}
	out.Labels, out.Annotations = ns.Labels, ns.Annotations
	return out
}

func (in *Inputs) policy(nsLabels map[string]string) *policies.Policy {
	if in.Policies == nil {
		return policies.Builtin()
	}
	return policies.Select(in.Policies.Policies(), nsLabels)
}

func (in *Inputs) ready() bool { return in.Ready == nil || in.Ready() }

// PodMutator is the mutating Pod webhook: on CREATE it decides the pod's
// dataplane with policies.Decide and writes the decision's labels and
// annotations. It follows controller-runtime's defaulter flow: skip what is not
// CREATE, decode, copy, change, no patch when nothing changed, else the JSON
// patch of the difference (built from the metadata maps, the only part changed).
type PodMutator struct {
	Inputs *Inputs
}

var _ admission.Handler = (*PodMutator)(nil)

// Handle implements admission.Handler.
func (m *PodMutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create || req.SubResource != "" {
		return admission.Allowed("")
	}
	start := time.Now()
	pod, err := decodePod(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	in := m.Inputs
	if !in.ready() {
		return withWarnings(admission.Allowed("no decision: meshshift's caches are not synced yet"),
			[]string{"meshshift: no dataplane decision, caches not synced yet; the missed-decision detector will report this pod"})
	}
	nsName := req.Namespace
	if nsName == "" {
		nsName = pod.Metadata.Namespace
	}
	ns := in.namespace(ctx, nsName)
	if errs := policies.ValidatePodMeshMetadata(field.NewPath("metadata"), pod.Metadata.Labels, pod.Metadata.Annotations); len(errs) > 0 {
		// Leave the pod as the user wrote it: the validating webhook rejects it
		// naming the field; deciding would paper over the contradiction.
		return withWarnings(admission.Allowed("no decision: invalid mesh metadata"),
			[]string{"meshshift: no dataplane decision: " + errs.ToAggregate().Error()})
	}
	d := m.decide(pod, ns)
	labels := applyMap(pod.Metadata.Labels, d.Labels, d.LabelsToRemove)
	annotations := applyMap(pod.Metadata.Annotations, d.Annotations, d.AnnotationsToRemove)
	ops := mapPatch("/metadata/labels", pod.Metadata.Labels, labels)
	ops = append(ops, mapPatch("/metadata/annotations", pod.Metadata.Annotations, annotations)...)
	decisionsTotal.WithLabelValues(string(d.Mode), d.Rule).Inc()
	decisionSeconds.Observe(time.Since(start).Seconds())
	var resp admission.Response
	if len(ops) == 0 {
		resp = admission.Allowed("")
	} else {
		resp = admission.Patched("", ops...)
	}
	return withWarnings(resp, d.Warnings)
}

// decide gathers the pod's inputs from the caches and calls policies.Decide.
func (m *PodMutator) decide(pod *podView, ns policies.Namespace) policies.Decision {
	in := m.Inputs
	kind, owner := pod.controller()
	w := policies.Workload{
		Name:        pod.displayName(),
		Namespace:   ns.Name,
		Labels:      pod.Metadata.Labels,
		Annotations: pod.Metadata.Annotations,
		HostNetwork: pod.Spec.HostNetwork,
		OwnerKind:   kind,
		OwnerName:   owner,
	}
	w.Workload = signals.WorkloadName(kind, owner, w.Name, w.Labels)
	input := policies.Input{Workload: w, Namespace: ns, Policy: in.policy(ns.Labels)}
	if in.Features != nil {
		input.Features = in.Features.AppendFeatures(nil, ns.Name, w.Labels)
	}
	if in.Traffic != nil {
		input.Traffic, input.HasTraffic = in.Traffic().Lookup(ns.Name, w.Workload)
	}
	if in.Capabilities != nil {
		input.Capabilities = in.Capabilities()
	}
	if in.Clock != nil {
		input.Now = in.Clock.Now()
	} else {
		input.Now = time.Now()
	}
	return policies.Decide(input)
}

// applyMap returns orig with set applied and remove deleted; orig is not changed.
func applyMap(orig, set map[string]string, remove []string) map[string]string {
	out := make(map[string]string, len(orig)+len(set))
	for k, v := range orig {
		out[k] = v
	}
	for k, v := range set {
		out[k] = v
	}
	for _, k := range remove {
		delete(out, k)
	}
	return out
}

// mapPatch is the JSON patch turning the map at path from orig into cur, one
// operation per key in key order (a whole-map add when orig is absent).
func mapPatch(path string, orig, cur map[string]string) []jsonpatch.JsonPatchOperation {
	if len(orig) == 0 {
		if len(cur) == 0 {
			return nil
		}
		return []jsonpatch.JsonPatchOperation{{Operation: "add", Path: path, Value: cur}}
	}
	var ops []jsonpatch.JsonPatchOperation
	for _, k := range sortedKeys(cur) {
		v := cur[k]
		old, ok := orig[k]
		switch {
		case !ok:
			ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "add", Path: path + "/" + escapePointer(k), Value: v})
		case old != v:
			ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "replace", Path: path + "/" + escapePointer(k), Value: v})
		}
	}
	for _, k := range sortedKeys(orig) {
		if _, ok := cur[k]; !ok {
			ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "remove", Path: path + "/" + escapePointer(k)})
		}
	}
	return ops
}

// maxWarnings and maxWarningLen keep admission warnings readable.
const (
	maxWarnings   = 8
	maxWarningLen = 512
)

func withWarnings(r admission.Response, warnings []string) admission.Response {
	if len(warnings) == 0 {
		return r
	}
	if len(warnings) > maxWarnings {
		warnings = warnings[:maxWarnings]
	}
	out := make([]string, len(warnings))
	for i, w := range warnings {
		if len(w) > maxWarningLen {
			w = w[:maxWarningLen-3] + "..."
		}
		out[i] = w
	}
	r.Warnings = out
	return r
}
