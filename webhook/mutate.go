package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/webhook/internal/admjson"
)

// Inputs are the caches every handler reads. Only Cache and Policies are
// required; a nil source means "no data" and is passed to Decide as such.
type Inputs struct {
	// Cache reads Namespaces and MeshMigrations (the manager's informer cache).
	Cache client.Reader
	// Jobs, when set, reads Jobs as JobMetadata (an informer cache of their
	// metadata): a Job's pod whose Job a CronJob controls is keyed on the
	// CronJob (owner). Nil keys Job pods on their Job.
	Jobs client.Reader
	// Namespaces, when set, answers namespace lookups instead of Cache.
	Namespaces *NamespaceStore
	// Policies are the compiled DataplanePolicies.
	Policies *PolicyStore
	// Features, Traffic and Capabilities feed policies.Decide.
	Features     FeatureSource
	Traffic      TrafficSource
	Capabilities CapabilitySource
	// Clock is read once per decision (traffic staleness); nil means the real clock.
	Clock clock.PassiveClock
	// Stabilizer, when set, keeps every pod of one workload on one answer
	// while its inputs other than traffic are unchanged (DESIGN.md,
	// "Stability"): a rollout does not mix modes because a rate crossed a
	// threshold between two pods. Nil decides every pod afresh.
	Stabilizer *policies.Stabilizer
	// Ready reports whether the caches are synced; nil means always. Before
	// that, pods are admitted without a decision (the detector reports them)
	// rather than waiting on a cache on the admission path.
	Ready func() bool

	memoOnce sync.Once
	memo     *answerMemo // with a Stabilizer: the mutator's answers (answerMemo)
}

func (in *Inputs) answers() *answerMemo {
	in.memoOnce.Do(func() { in.memo = newAnswerMemo(memoOwners) })
	return in.memo
}

func (in *Inputs) namespace(ctx context.Context, name string) policies.Namespace {
	if in.Namespaces != nil {
		if ns, ok := in.Namespaces.Get(name); ok {
			return ns
		}
		return policies.Namespace{Name: name}
	}
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

// metadataPath is a pod's metadata; field.Path values are never changed,
// only extended into new ones.
var metadataPath = field.NewPath("metadata")

// Handle implements admission.Handler.
func (m *PodMutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	return m.mutate(ctx, string(req.Operation), req.SubResource, req.Namespace, req.Object.Raw, nil)
}

// Review is the mutator as a ReviewFunc: what the webhook server runs, under
// a ReviewHandler (with Pods set, the pod comes decoded with the review).
func (m *PodMutator) Review(ctx context.Context, req *ReviewRequest) admission.Response {
	return m.mutate(ctx, req.Operation, req.SubResource, req.Namespace, req.Object, req.Pod)
}

// mutate decides for the pod in raw; pod is raw already decoded (its maps
// perhaps not yet), or nil.
func (m *PodMutator) mutate(ctx context.Context, op, subResource, namespace string, raw []byte, pod *admjson.Pod) admission.Response {
	if op != string(admissionv1.Create) || subResource != "" {
		return admission.Allowed("")
	}
	start := time.Now()
	if pod == nil {
		var err error
		if pod, err = admjson.DecodePod(raw); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
	}
	in := m.Inputs
	if !in.ready() {
		return withWarnings(admission.Allowed("no decision: meshshift's caches are not synced yet"),
			[]string{"meshshift: no dataplane decision, caches not synced yet; the missed-decision detector will report this pod"})
	}
	nsName := namespace
	if nsName == "" {
		nsName = pod.Metadata.Namespace
	}
	// The workload's next pod: its remembered answer, when nothing the
	// Stabilizer would look at has changed (answerMemo).
	var memo *memoEntry
	var owner memoOwner
	var ns policies.Namespace
	kind, name := pod.Controller()
	kind, name = in.owner(ctx, nsName, kind, name)
	if in.Stabilizer != nil {
		if name != "" {
			if labels, annotations, ok := pod.MapsJSON(); ok {
				var v inputVersions
				if v, ns, ok = in.versions(nsName); ok {
					owner = memoOwner{nsName, kind, name}
					if e, hit := in.answers().get(owner, labels, annotations, pod.Spec.HostNetwork, &v); hit {
						e.decisions.Inc()
						rememberedAnswers.Inc()
						decisionSeconds.Observe(time.Since(start).Seconds())
						return e.response()
					}
					memo = &memoEntry{labels: bytes.Clone(labels), annotations: bytes.Clone(annotations),
						hostNetwork: pod.Spec.HostNetwork, inputs: v}
					memo.inputs.caps.MeshNamespaces = slices.Clone(v.caps.MeshNamespaces)
				}
			}
		}
	}
	var err error
	if pod, err = withMaps(pod, raw); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if memo == nil {
		ns = in.namespace(ctx, nsName)
	}
	if errs := policies.ValidatePodMeshMetadata(metadataPath, pod.Metadata.Labels, pod.Metadata.Annotations); len(errs) > 0 {
		// Leave the pod as the user wrote it: the validating webhook rejects it
		// naming the field; deciding would paper over the contradiction.
		return withWarnings(admission.Allowed("no decision: invalid mesh metadata"),
			[]string{"meshshift: no dataplane decision: " + errs.ToAggregate().Error()})
	}
	d := m.decide(pod, ns, kind, name)
	var pw admjson.PatchWriter
	pw.Reserve(1024)
	pw.MapOps("/metadata/labels", pod.Metadata.Labels, d.Labels, d.LabelsToRemove)
	pw.MapOps("/metadata/annotations", pod.Metadata.Annotations, d.Annotations, d.AnnotationsToRemove)
	decisions := decisionsTotal.WithLabelValues(string(d.Mode), d.Rule)
	decisions.Inc()
	decisionSeconds.Observe(time.Since(start).Seconds())
	var resp admission.Response
	if pw.Ops() == 0 {
		resp = withWarnings(admission.Allowed(""), d.Warnings)
	} else {
		// The patch is written here (admjson.PatchWriter) rather than by
		// Response.Complete from Patches, which marshals through reflection.
		pt := admissionv1.PatchTypeJSONPatch
		resp = withWarnings(admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{
			Allowed: true, PatchType: &pt, Patch: pw.Done(), Result: &metav1.Status{Code: http.StatusOK},
		}}, d.Warnings)
	}
	if memo != nil {
		memo.decisions = decisions // mode and rule come from the policy, not from the request
		memo.patch = resp.Patch    // written by pw: not the request's memory
		for _, w := range resp.Warnings {
			memo.warnings = append(memo.warnings, strings.Clone(w))
		}
		in.answers().put(owner, memo)
	}
	return resp
}

// withMaps is pod with its labels and annotations decoded (Pod.DecodeMaps),
// or raw decoded again when they do not decode: DecodePod's error names the
// offset in the pod.
func withMaps(pod *admjson.Pod, raw []byte) (*admjson.Pod, error) {
	if pod != nil && pod.DecodeMaps() == nil {
		return pod, nil
	}
	return admjson.DecodePod(raw)
}

// response is the remembered answer as a new Response (its patch and
// warnings shared, read-only).
func (e *memoEntry) response() admission.Response {
	r := admission.Allowed("")
	if len(e.patch) > 0 {
		pt := admissionv1.PatchTypeJSONPatch
		r.PatchType, r.Patch = &pt, e.patch
	}
	r.Warnings = e.warnings
	return r
}

// decide gathers the pod's inputs from the caches and calls policies.Decide
// for the workload the pod is keyed on (owner: its controller, or its Job's
// CronJob).
func (m *PodMutator) decide(pod *admjson.Pod, ns policies.Namespace, kind, owner string) policies.Decision {
	in := m.Inputs
	w := policies.Workload{
		Name:        pod.DisplayName(),
		Namespace:   ns.Name,
		Labels:      pod.Metadata.Labels,
		Annotations: pod.Metadata.Annotations,
		HostNetwork: pod.Spec.HostNetwork,
		OwnerKind:   kind,
		OwnerName:   owner,
	}
	if kind == "CronJob" {
		// Decided as the CronJob's template: what differs between its runs is
		// left out, so one answer serves them all.
		w.Labels = withoutKeys(w.Labels, perRunLabels)
		w.Annotations = withoutKeys(w.Annotations, perRunAnnotations)
	}
	w.Workload = signals.WorkloadName(kind, owner, w.Name, w.Labels)
	w.Nodes = nodeRequirement(pod)
	input := policies.Input{Workload: w, Namespace: ns, Policy: in.policy(ns.Labels)}
	if in.Features != nil {
		input.Features = in.Features.AppendFeatures(nil, ns.Name, w.Labels)
	}
	input.Features = signals.AppendAnnotationFeatures(input.Features, w.Annotations)
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
	if in.Stabilizer != nil {
		return in.Stabilizer.Decide(input)
	}
	return policies.Decide(input)
}

// nodeRequirement decodes the pod's node selector and required node affinity,
// kept raw by the scan (most pods have neither). A value that does not decode
// constrains nothing: the API server validates the pod after admission and
// rejects it anyway.
func nodeRequirement(pod *admjson.Pod) signals.NodeRequirement {
	selRaw, affRaw := pod.NodeConstraintsJSON()
	if selRaw == nil && affRaw == nil {
		return signals.NodeRequirement{}
	}
	var spec corev1.PodSpec
	if selRaw != nil && json.Unmarshal(selRaw, &spec.NodeSelector) != nil {
		spec.NodeSelector = nil
	}
	if affRaw != nil && json.Unmarshal(affRaw, &spec.Affinity) != nil {
		spec.Affinity = nil
	}
	return signals.NodeRequirementOf(&spec)
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
