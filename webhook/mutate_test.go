package webhook

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
)

func testPod(name, namespace string, labels, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
}

func add(path string, v any) jsonpatch.JsonPatchOperation {
	return jsonpatch.JsonPatchOperation{Operation: "add", Path: path, Value: v}
}

func replace(path string, v any) jsonpatch.JsonPatchOperation {
	return jsonpatch.JsonPatchOperation{Operation: "replace", Path: path, Value: v}
}

func remove(path string) jsonpatch.JsonPatchOperation {
	return jsonpatch.JsonPatchOperation{Operation: "remove", Path: path}
}

func decisionAnnotations(mode, rule, reason, policy string) map[string]string {
	return map[string]string{
		v1alpha1.AnnotationDecision: mode + "/" + rule,
		v1alpha1.AnnotationReason:   reason,
		v1alpha1.AnnotationPolicy:   policy,
	}
}

func TestPodMutator(t *testing.T) {
	linkerd := &v1alpha1.DataplanePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "linkerd-apps", Generation: 3},
		Spec: v1alpha1.DataplanePolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"mesh": "linkerd"}},
			MeshProvider:      v1alpha1.MeshProviderLinkerd,
			DefaultMode:       v1alpha1.RuleMode(v1alpha1.ModeSidecar),
		},
	}
	objs := []metav1.Object{
		nsMode("sc", "sidecar"), nsMode("amb", "ambient"), nsMode("wp", "ambient-waypoint"),
		nsMode("cil", "cilium"), nsMode("off", "none"),
		ns("plain", nil, nil),
		ns("ld", map[string]string{"mesh": "linkerd"}, nil),
		ns("inj", map[string]string{"istio-injection": "enabled"}, nil),
		ns("ambns", map[string]string{"istio.io/dataplane-mode": "ambient"}, nil),
	}
	annAdd := func(mode, rule, reason, policy string) jsonpatch.JsonPatchOperation {
		return add("/metadata/annotations", decisionAnnotations(mode, rule, reason, policy))
	}
	nsReason := func(m string) string { return "namespace annotation meshshift.io/mode asks for " + m }
	tests := []struct {
		name      string
		op        admissionv1.Operation
		pod       *corev1.Pod
		raw       []byte
		noZtunnel bool
		notReady  bool
		code      int32
		allowed   bool
		patches   []jsonpatch.JsonPatchOperation
		warning   string
	}{{
		name: "sidecar: existing labels get the istio inject label",
		op:   admissionv1.Create,
		pod:  testPod("p", "sc", map[string]string{"app": "web"}, nil),
		code: http.StatusOK, allowed: true,
		patches: []jsonpatch.JsonPatchOperation{
			add("/metadata/labels/meshshift.io~1dataplane", "sidecar"),
			add("/metadata/labels/sidecar.istio.io~1inject", "true"),
			annAdd("sidecar", "namespace-annotation", nsReason("sidecar"), "builtin/0"),
		},
	}, {
		name: "ambient: no labels at all, one add of the whole map",
		op:   admissionv1.Create,
		pod:  testPod("p", "amb", nil, nil),
		code: http.StatusOK, allowed: true,
		patches: []jsonpatch.JsonPatchOperation{
			add("/metadata/labels", map[string]string{"istio.io/dataplane-mode": "ambient", "meshshift.io/dataplane": "ambient", "sidecar.istio.io/inject": "false"}),
			annAdd("ambient", "namespace-annotation", nsReason("ambient"), "builtin/0"),
		},
	}, {
		name: "ambient-waypoint: use-waypoint with the default waypoint",
		op:   admissionv1.Create,
		pod:  testPod("p", "wp", map[string]string{"app": "web"}, map[string]string{"team": "a"}),
		code: http.StatusOK, allowed: true,
		patches: []jsonpatch.JsonPatchOperation{
			add("/metadata/labels/istio.io~1dataplane-mode", "ambient"),
			add("/metadata/labels/istio.io~1use-waypoint", "waypoint"),
			add("/metadata/labels/meshshift.io~1dataplane", "ambient-waypoint"),
			add("/metadata/labels/sidecar.istio.io~1inject", "false"),
			add("/metadata/annotations/meshshift.io~1decision", "ambient-waypoint/namespace-annotation"),
			add("/metadata/annotations/meshshift.io~1policy", "builtin/0"),
			add("/metadata/annotations/meshshift.io~1reason", nsReason("ambient-waypoint")),
		},
	}, {
		name: "cilium: istio kept away",
		op:   admissionv1.Create,
		pod:  testPod("p", "cil", map[string]string{"app": "web"}, nil),
		code: http.StatusOK, allowed: true,
		patches: []jsonpatch.JsonPatchOperation{
			add("/metadata/labels/istio.io~1dataplane-mode", "none"),
			add("/metadata/labels/meshshift.io~1dataplane", "cilium"),
			add("/metadata/labels/sidecar.istio.io~1inject", "false"),
			annAdd("cilium", "namespace-annotation", nsReason("cilium"), "builtin/0"),
		},
	}, {
		name: "none: a user's inject=true is replaced",
		op:   admissionv1.Create,
		pod:  testPod("p", "off", map[string]string{"sidecar.istio.io/inject": "true"}, nil),
		code: http.StatusOK, allowed: true,
		patches: []jsonpatch.JsonPatchOperation{
			add("/metadata/labels/istio.io~1dataplane-mode", "none"),
			add("/metadata/labels/meshshift.io~1dataplane", "none"),
			replace("/metadata/labels/sidecar.istio.io~1inject", "false"),
			annAdd("none", "namespace-annotation", nsReason("none"), "builtin/0"),
		},
	}, {
		name: "sidecar: a contradicting ambient label is removed",
		op:   admissionv1.Create,
		pod:  testPod("p", "sc", map[string]string{"istio.io/dataplane-mode": "ambient"}, nil),
		code: http.StatusOK, allowed: true,
		patches: []jsonpatch.JsonPatchOperation{
			add("/metadata/labels/meshshift.io~1dataplane", "sidecar"),
			add("/metadata/labels/sidecar.istio.io~1inject", "true"),
			remove("/metadata/labels/istio.io~1dataplane-mode"),
			annAdd("sidecar", "namespace-annotation", nsReason("sidecar"), "builtin/0"),
		},
	}, {
		name: "no policy, no mesh label: kept out of the mesh, nothing of the mesh written",
		op:   admissionv1.Create,
		pod:  testPod("p", "plain", map[string]string{"app": "web"}, nil),
		code: http.StatusOK, allowed: true,
		patches: []jsonpatch.JsonPatchOperation{
			add("/metadata/labels/meshshift.io~1dataplane", "none"),
			annAdd("none", "keep-current", "keeps its current mode none (neither the pod nor its namespace carries a mesh label): nothing asks to change it", "builtin/0"),
		},
	}, {
		name: "no policy, injection namespace: the sidecar comes from the namespace label, not from meshshift",
		op:   admissionv1.Create,
		pod:  testPod("p", "inj", map[string]string{"app": "web"}, nil),
		code: http.StatusOK, allowed: true,
		patches: []jsonpatch.JsonPatchOperation{
			add("/metadata/labels/meshshift.io~1dataplane", "sidecar"),
			annAdd("sidecar", "keep-current", "keeps its current mode sidecar (namespace label istio-injection=enabled): nothing asks to change it", "builtin/0"),
		},
	}, {
		name: "no policy, ambient namespace: stays ambient",
		op:   admissionv1.Create,
		pod:  testPod("p", "ambns", map[string]string{"app": "web"}, nil),
		code: http.StatusOK, allowed: true,
		patches: []jsonpatch.JsonPatchOperation{
			add("/metadata/labels/meshshift.io~1dataplane", "ambient"),
			annAdd("ambient", "keep-current", "keeps its current mode ambient (namespace label istio.io/dataplane-mode=ambient): nothing asks to change it", "builtin/0"),
		},
	}, {
		name: "pod annotation wins over the namespace",
		op:   admissionv1.Create,
		pod:  testPod("p", "sc", map[string]string{"app": "web"}, map[string]string{v1alpha1.AnnotationMode: "none"}),
		code: http.StatusOK, allowed: true,
		patches: []jsonpatch.JsonPatchOperation{
			add("/metadata/labels/istio.io~1dataplane-mode", "none"),
			add("/metadata/labels/meshshift.io~1dataplane", "none"),
			add("/metadata/labels/sidecar.istio.io~1inject", "false"),
			add("/metadata/annotations/meshshift.io~1decision", "none/pod-annotation"),
			add("/metadata/annotations/meshshift.io~1policy", "builtin/0"),
			add("/metadata/annotations/meshshift.io~1reason", "pod annotation meshshift.io/mode asks for none"),
		},
	}, {
		name: "linkerd provider: inject annotation",
		op:   admissionv1.Create,
		pod:  testPod("p", "ld", map[string]string{"app": "web"}, nil),
		code: http.StatusOK, allowed: true,
		patches: []jsonpatch.JsonPatchOperation{
			add("/metadata/labels/istio.io~1dataplane-mode", "none"),
			add("/metadata/labels/meshshift.io~1dataplane", "sidecar"),
			add("/metadata/labels/sidecar.istio.io~1inject", "false"),
			add("/metadata/annotations", map[string]string{
				v1alpha1.AnnotationDecision: "sidecar/policy-default",
				v1alpha1.AnnotationReason:   "default mode of DataplanePolicy linkerd-apps",
				v1alpha1.AnnotationPolicy:   "linkerd-apps/3",
				"linkerd.io/inject":         "enabled",
			}),
		},
	}, {
		name:      "ambient without ztunnel keeps the current mode: no sidecar added",
		op:        admissionv1.Create,
		pod:       testPod("p", "amb", map[string]string{"app": "web"}, nil),
		noZtunnel: true,
		code:      http.StatusOK, allowed: true,
		patches: []jsonpatch.JsonPatchOperation{
			add("/metadata/labels/meshshift.io~1dataplane", "none"),
			annAdd("none", "capability-fallback", "keeps its current mode none: namespace-annotation chose ambient, but the cluster has no ztunnel", "builtin/0"),
		},
	}, {
		name: "Windows-only pod: excluded, only meshshift's own label",
		op:   admissionv1.Create,
		pod: func() *corev1.Pod {
			p := testPod("p", "amb", map[string]string{"app": "iis"}, nil)
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/os", Operator: corev1.NodeSelectorOpIn, Values: []string{"windows"}}}}}}}}
			return p
		}(),
		code: http.StatusOK, allowed: true,
		patches: []jsonpatch.JsonPatchOperation{
			add("/metadata/labels/meshshift.io~1dataplane", "none"),
			annAdd("none", "exclude-windows", "the pod runs only on Windows nodes (kubernetes.io/os=windows), which no sidecarless dataplane serves and meshshift does not decide", "builtin/0"),
		},
	}, {
		name: "hostNetwork pod: only meshshift's own label",
		op:   admissionv1.Create,
		pod: func() *corev1.Pod {
			p := testPod("p", "amb", map[string]string{"app": "agent"}, nil)
			p.Spec.HostNetwork = true
			return p
		}(),
		code: http.StatusOK, allowed: true,
		patches: []jsonpatch.JsonPatchOperation{
			add("/metadata/labels/meshshift.io~1dataplane", "none"),
			annAdd("none", "exclude-host-network", "hostNetwork pod: no dataplane can intercept its traffic", "builtin/0"),
		},
	}, {
		name: "already decided: no patch",
		op:   admissionv1.Create,
		pod: testPod("p", "amb",
			map[string]string{"istio.io/dataplane-mode": "ambient", "meshshift.io/dataplane": "ambient", "sidecar.istio.io/inject": "false"},
			decisionAnnotations("ambient", "namespace-annotation", nsReason("ambient"), "builtin/0")),
		code: http.StatusOK, allowed: true,
	}, {
		name: "UPDATE is not decided",
		op:   admissionv1.Update,
		pod:  testPod("p", "amb", nil, nil),
		code: http.StatusOK, allowed: true,
	}, {
		name: "contradicting user labels: left for the validating webhook",
		op:   admissionv1.Create,
		pod:  testPod("p", "amb", map[string]string{"sidecar.istio.io/inject": "true", "istio.io/dataplane-mode": "ambient"}, nil),
		code: http.StatusOK, allowed: true,
		warning: "meshshift: no dataplane decision: metadata.labels[istio.io/dataplane-mode]",
	}, {
		name:     "caches not synced: admitted without a decision",
		op:       admissionv1.Create,
		pod:      testPod("p", "amb", nil, nil),
		notReady: true,
		code:     http.StatusOK, allowed: true,
		warning: "caches not synced",
	}, {
		name: "undecodable object",
		op:   admissionv1.Create,
		raw:  []byte(`{"metadata":{"labels":["not","a","map"]}}`),
		code: http.StatusBadRequest,
	}, {
		name: "empty object",
		op:   admissionv1.Create,
		raw:  []byte{},
		code: http.StatusBadRequest,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := testInputs(t, []*v1alpha1.DataplanePolicy{linkerd}, toClientObjects(objs)...)
			if tc.noZtunnel {
				in.Capabilities = StaticCapabilities(signals.Capabilities{Cilium: true})
			}
			if tc.notReady {
				in.Ready = func() bool { return false }
			}
			raw := tc.raw
			nsName := "amb"
			if tc.pod != nil {
				raw = mustJSON(t, tc.pod)
				nsName = tc.pod.Namespace
			}
			resp := handle(&PodMutator{Inputs: in}, request(tc.op, "Pod", "pods", nsName, raw, nil))
			if resp.Allowed != tc.allowed {
				t.Fatalf("Allowed = %v, want %v (result %+v)", resp.Allowed, tc.allowed, resp.Result)
			}
			if resp.Result == nil || resp.Result.Code != tc.code {
				t.Fatalf("result = %+v, want code %d", resp.Result, tc.code)
			}
			if diff := cmp.Diff(wireOps(t, tc.patches), patchOps(t, resp.Patch)); diff != "" {
				t.Errorf("patches (-want +got):\n%s", diff)
			}
			if len(tc.patches) == 0 && (resp.PatchType != nil || len(resp.Patch) > 0) {
				t.Errorf("got a patch %s, want none", resp.Patch)
			}
			if len(tc.patches) > 0 {
				if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
					t.Errorf("patch type = %v, want JSONPatch", resp.PatchType)
				}
				checkPatchApplies(t, raw, resp.Patch)
			}
			if tc.warning != "" && !strings.Contains(strings.Join(resp.Warnings, "\n"), tc.warning) {
				t.Errorf("warnings %q do not mention %q", resp.Warnings, tc.warning)
			}
		})
	}
}

// checkPatchApplies applies the patch to the raw pod and checks the result is
// a pod whose decision labels are consistent (what the API server would store).
func checkPatchApplies(t *testing.T, raw, patch []byte) {
	t.Helper()
	p, err := jsonpatchDecode(patch)
	if err != nil {
		t.Fatalf("decode patch %s: %v", patch, err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("apply patch %s: %v", patch, err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(out, &pod); err != nil {
		t.Fatalf("patched pod does not decode: %v", err)
	}
	if _, ok := pod.Annotations[v1alpha1.AnnotationDecision]; !ok {
		t.Errorf("patched pod has no %s annotation", v1alpha1.AnnotationDecision)
	}
	if pod.Labels[v1alpha1.LabelDataplane] == "" {
		t.Errorf("patched pod has no %s label", v1alpha1.LabelDataplane)
	}
}

func TestPodMutatorUsesOwnerForTraffic(t *testing.T) {
	// A rule on traffic: the workload name must be the Deployment's.
	dp := &v1alpha1.DataplanePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "busy", Generation: 1},
		Spec: v1alpha1.DataplanePolicySpec{Rules: []v1alpha1.Rule{{
			Name: "quiet", When: "traffic.available && !traffic.stale && traffic.requestRate < 10.0", Mode: "ambient",
		}}},
	}
	in := testInputs(t, []*v1alpha1.DataplanePolicy{dp}, ns("shop", nil, nil))
	in.Traffic = func() *signals.TrafficSnapshot {
		return &signals.TrafficSnapshot{Workloads: map[signals.WorkloadKey]signals.WorkloadTraffic{
			{Namespace: "shop", Name: "cart"}: {RequestRate: 1, Window: 60e9, SampleTime: fixedNow},
		}}
	}
	in.Clock = fixedClock()
	pod := testPod("", "shop", map[string]string{"pod-template-hash": "7d9f"}, nil)
	pod.GenerateName = "cart-7d9f-"
	pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "cart-7d9f", UID: "u", Controller: ptr.To(true)}}
	resp := handle(&PodMutator{Inputs: in}, request(admissionv1.Create, "Pod", "pods", "shop", mustJSON(t, pod), nil))
	if !resp.Allowed {
		t.Fatalf("not allowed: %+v", resp.Result)
	}
	var got any
	for _, p := range patchOps(t, resp.Patch) {
		if p.Path == "/metadata/annotations" {
			got = p.Value.(map[string]any)[v1alpha1.AnnotationDecision]
		}
	}
	if got != "ambient/rule:quiet" {
		t.Fatalf("decision = %v, want ambient/rule:quiet (patch %s)", got, resp.Patch)
	}
}

// wireOp is a JSON patch operation as it is on the wire.
type wireOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// patchOps decodes a patch as the API server reads it; nil for no patch.
func patchOps(t *testing.T, patch []byte) []wireOp {
	t.Helper()
	if len(patch) == 0 {
		return nil
	}
	var ops []wireOp
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatalf("patch %s is not a JSON patch: %v", patch, err)
	}
	return ops
}

// wireOps is what ops look like once encoded by encoding/json and read back.
func wireOps(t *testing.T, ops []jsonpatch.JsonPatchOperation) []wireOp {
	t.Helper()
	if len(ops) == 0 {
		return nil
	}
	return patchOps(t, mustJSON(t, ops))
}

// TestPodMutatorKeepsWorkloadOnOneAnswer: pods of one ReplicaSet get the same
// answer while only their traffic changes (a rollout does not mix modes); a
// new ReplicaSet, or a pod whose labels differ, is decided afresh.
func TestPodMutatorKeepsWorkloadOnOneAnswer(t *testing.T) {
	dp := &v1alpha1.DataplanePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "busy", Generation: 1},
		Spec: v1alpha1.DataplanePolicySpec{DefaultMode: "sidecar", Rules: []v1alpha1.Rule{{
			Name: "quiet", When: "traffic.available && !traffic.stale && traffic.requestRate < 10.0", Mode: "ambient",
		}}},
	}
	rate := 1.0
	in := testInputs(t, []*v1alpha1.DataplanePolicy{dp}, ns("shop", nil, nil))
	in.Traffic = func() *signals.TrafficSnapshot {
		return &signals.TrafficSnapshot{Workloads: map[signals.WorkloadKey]signals.WorkloadTraffic{
			{Namespace: "shop", Name: "cart"}: {RequestRate: rate, Window: 60e9, SampleTime: fixedNow},
		}}
	}
	in.Clock = fixedClock()
	in.Stabilizer = policies.NewStabilizer(16)
	m := &PodMutator{Inputs: in}
	decide := func(rs string, labels map[string]string) any {
		t.Helper()
		pod := testPod("", "shop", labels, nil)
		pod.GenerateName = rs + "-"
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs, UID: "u", Controller: ptr.To(true)}}
		resp := handle(m, request(admissionv1.Create, "Pod", "pods", "shop", mustJSON(t, pod), nil))
		if !resp.Allowed {
			t.Fatalf("not allowed: %+v", resp.Result)
		}
		for _, p := range patchOps(t, resp.Patch) {
			if p.Path == "/metadata/annotations" {
				return p.Value.(map[string]any)[v1alpha1.AnnotationDecision]
			}
		}
		t.Fatalf("no annotations in patch %s", resp.Patch)
		return nil
	}
	hash := map[string]string{"pod-template-hash": "7d9f"}
	if got := decide("cart-7d9f", hash); got != "ambient/rule:quiet" {
		t.Fatalf("first pod: decision %v, want ambient/rule:quiet", got)
	}
	rate = 50 // busy now: the rule no longer matches
	if got := decide("cart-7d9f", hash); got != "ambient/rule:quiet" {
		t.Errorf("second pod of the same ReplicaSet: decision %v, want the first pod's ambient/rule:quiet", got)
	}
	if got := decide("cart-8e0a", map[string]string{"pod-template-hash": "8e0a"}); got != "sidecar/policy-default" {
		t.Errorf("pod of a new ReplicaSet: decision %v, want sidecar/policy-default (traffic is busy now)", got)
	}
	if got := decide("cart-7d9f", map[string]string{"pod-template-hash": "7d9f", "tier": "gold"}); got != "sidecar/policy-default" {
		t.Errorf("pod of the same ReplicaSet with other labels: decision %v, want sidecar/policy-default", got)
	}
	in.Stabilizer = nil
	if got := decide("cart-7d9f", hash); got != "sidecar/policy-default" {
		t.Errorf("without a Stabilizer: decision %v, want sidecar/policy-default", got)
	}
}
