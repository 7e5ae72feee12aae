package webhook

import (
	"context"
	"reflect"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/webhook/internal/admjson"
)

// countingFeatures is a FeatureSource with a generation that counts how
// often the mutator looked features up (only a decision does).
type countingFeatures struct {
	gen     uint64
	lookups int
	feats   signals.Features
}

func (c *countingFeatures) AppendFeatures(dst signals.Features, _ string, _ map[string]string) signals.Features {
	c.lookups++
	return append(dst, c.feats...)
}

func (c *countingFeatures) Generation() uint64 { return c.gen }

// TestPodMutatorRemembersAnswers: the next pod of a workload is answered
// from the remembered answer (nothing is looked up or decided), and that
// answer is always the one deciding afresh gives: every input the decision
// reads but traffic (namespace, policy, mesh objects, capabilities, the
// pod's labels, annotations and hostNetwork) makes the mutator decide again.
func TestPodMutatorRemembersAnswers(t *testing.T) {
	feats := &countingFeatures{gen: 1}
	in := testInputs(t, []*v1alpha1.DataplanePolicy{benchPolicy}, ns("shop", nil, nil))
	in.Features = feats
	in.Stabilizer = policies.NewStabilizer(16)
	caps := signals.Capabilities{Ztunnel: true, Cilium: true}
	in.Capabilities = func() signals.Capabilities { return caps }
	// fresh decides every pod: same stores, no Stabilizer (and no memo).
	fresh := &Inputs{Cache: in.Cache, Namespaces: in.Namespaces, Policies: in.Policies, Features: in.Features,
		Capabilities: in.Capabilities}
	m, f := &PodMutator{Inputs: in}, &PodMutator{Inputs: fresh}

	labels := map[string]string{"app": "web", "pod-template-hash": "7d9f"}
	var annotations map[string]string
	hostNetwork := false
	step := func(name string, wantDecided bool) {
		t.Helper()
		pod := testPod("", "shop", labels, annotations)
		pod.GenerateName = "web-7d9f-"
		pod.Spec.HostNetwork = hostNetwork
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f", UID: "u", Controller: ptr.To(true)}}
		review := reviewOf(t, "admission.k8s.io/v1", request(admissionv1.Create, "Pod", "pods", "shop", mustJSON(t, pod), nil).AdmissionRequest)
		before := feats.lookups
		_, got := serve(t, &ReviewHandler{Func: m.Review, Pods: true}, review, "application/json")
		decided := feats.lookups > before
		_, want := serve(t, &ReviewHandler{Func: f.Review, Pods: true}, review, "application/json")
		if !reflect.DeepEqual(got.Response, want.Response) {
			t.Errorf("%s: answer\n%+v\ndeciding afresh\n%+v", name, got.Response, want.Response)
		}
		if decided != wantDecided {
			t.Errorf("%s: decided %v, want %v", name, decided, wantDecided)
		}
		if len(got.Response.Patch) == 0 {
			t.Errorf("%s: no patch", name)
		}
	}
	step("first pod", true)
	step("second pod", false)
	step("third pod", false)

	in.Namespaces.upsert(nsMode("shop", "sidecar"))
	step("namespace annotated", true)
	step("next pod", false)
	in.Namespaces.upsert(nsMode("shop", "sidecar")) // a resync: same labels and annotations
	step("namespace resynced", false)

	dp := benchPolicy.DeepCopy()
	dp.Generation, dp.Spec.DefaultMode = 2, v1alpha1.RuleMode(v1alpha1.ModeCilium)
	in.Namespaces.upsert(ns("shop", nil, nil))
	step("namespace annotation removed", true)
	in.Policies.Upsert(dp)
	step("policy changed", true)
	step("next pod", false)

	feats.feats = signals.Features{{Feature: signals.FeatureEnvoyFilter, Kind: "EnvoyFilter", Namespace: "shop", Name: "lua"}}
	feats.gen++
	step("an EnvoyFilter selects it", true)
	feats.feats = nil
	feats.gen++
	step("EnvoyFilter deleted", true)

	caps = signals.Capabilities{Ztunnel: true}
	step("Cilium gone", true)
	step("next pod", false)

	labels = map[string]string{"app": "web", "pod-template-hash": "7d9f", "tier": "legacy"}
	step("other labels", true)
	annotations = map[string]string{v1alpha1.AnnotationMode: "none"}
	step("other annotations", true)
	step("next pod", false)
	hostNetwork = true
	step("hostNetwork", true)
}

// TestPodMutatorMemoKeepsNoRequestMemory: what is remembered does not point
// into the request it came from: once those bytes are overwritten, the
// workload's next pod is still answered from the memo.
func TestPodMutatorMemoKeepsNoRequestMemory(t *testing.T) {
	feats := &countingFeatures{gen: 1}
	in := testInputs(t, []*v1alpha1.DataplanePolicy{benchPolicy}, ns("shop", nil, nil))
	in.Features = feats
	in.Stabilizer = policies.NewStabilizer(16)
	m := &PodMutator{Inputs: in}
	pod := testPod("", "shop", map[string]string{"app": "web"}, map[string]string{"team": "a"})
	pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f", UID: "u", Controller: ptr.To(true)}}
	review := reviewOf(t, "admission.k8s.io/v1", request(admissionv1.Create, "Pod", "pods", "shop", mustJSON(t, pod), nil).AdmissionRequest)
	answer := func(body []byte) admission.Response {
		t.Helper()
		rev, err := admjson.DecodePodReview(body) // strings and raw values point into body
		if err != nil {
			t.Fatal(err)
		}
		return m.Review(context.Background(), &rev.Request)
	}
	counted := decisionsTotal.WithLabelValues("ambient", "policy-default")
	before, rememberedBefore := testutil.ToFloat64(counted), testutil.ToFloat64(rememberedAnswers)
	first := answer(review)
	want := string(first.Patch)
	clear(review)
	if feats.lookups != 1 {
		t.Fatalf("%d feature lookups for the first pod, want 1", feats.lookups)
	}
	review = reviewOf(t, "admission.k8s.io/v1", request(admissionv1.Create, "Pod", "pods", "shop", mustJSON(t, pod), nil).AdmissionRequest)
	second := answer(review)
	if feats.lookups != 1 {
		t.Errorf("the second pod was decided again: the memo lost its key with the first request's bytes")
	}
	if string(second.Patch) != want || string(first.Patch) != want {
		t.Errorf("answers %s and %s, want %s", first.Patch, second.Patch, want)
	}
	if n := testutil.ToFloat64(counted) - before; n != 2 {
		t.Errorf("meshshift_webhook_decisions_total{mode=ambient,rule=policy-default} grew by %v, want 2 (a remembered answer counts too)", n)
	}
	if n := testutil.ToFloat64(rememberedAnswers) - rememberedBefore; n != 1 {
		t.Errorf("meshshift_webhook_remembered_answers_total grew by %v, want 1", n)
	}
}

// TestAnswerMemoIsBounded: beyond its bound the memo forgets an answer for
// each new workload, and a workload's newer answer replaces its older one.
func TestAnswerMemoIsBounded(t *testing.T) {
	m := newAnswerMemo(2)
	v := inputVersions{namespace: 1}
	for _, name := range []string{"a", "b", "c", "c"} {
		m.put(memoOwner{"shop", "ReplicaSet", name}, &memoEntry{labels: []byte(`{"app":"` + name + `"}`), inputs: v})
	}
	if n := len(m.entries); n != 2 {
		t.Fatalf("memo holds %d answers, want its bound 2", n)
	}
	if _, ok := m.get(memoOwner{"shop", "ReplicaSet", "c"}, []byte(`{"app":"c"}`), nil, false, &v); !ok {
		t.Errorf("the newest answer was forgotten")
	}
	v2 := inputVersions{namespace: 2}
	if _, ok := m.get(memoOwner{"shop", "ReplicaSet", "c"}, []byte(`{"app":"c"}`), nil, false, &v2); ok {
		t.Errorf("an answer from other inputs was given")
	}
}
