package webhook

import (
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshshift/meshshift/api/v1alpha1"
)

// want is what a validating response must say.
type want struct {
	allowed bool
	code    int32
	reason  metav1.StatusReason
	// fields each appear as a cause's field; message is in the message.
	fields  []string
	message string
}

func check(t *testing.T, resp admission.Response, w want) {
	t.Helper()
	if resp.Allowed != w.allowed {
		t.Fatalf("Allowed = %v, want %v (result %+v)", resp.Allowed, w.allowed, resp.Result)
	}
	if resp.Result == nil || resp.Result.Code != w.code {
		t.Fatalf("result = %+v, want code %d", resp.Result, w.code)
	}
	if resp.Result.Reason != w.reason {
		t.Errorf("reason = %q, want %q", resp.Result.Reason, w.reason)
	}
	if len(resp.Patches) > 0 || len(resp.Patch) > 0 {
		t.Errorf("a validating webhook returned a patch: %s", resp.Patch)
	}
	for _, f := range w.fields {
		found := false
		if resp.Result.Details != nil {
			for _, c := range resp.Result.Details.Causes {
				found = found || c.Field == f
			}
		}
		if !found {
			t.Errorf("no cause names field %s: %+v", f, resp.Result.Details)
		}
	}
	if w.message != "" && !strings.Contains(resp.Result.Message, w.message) {
		t.Errorf("message %q does not contain %q", resp.Result.Message, w.message)
	}
}

var (
	ok200      = want{allowed: true, code: http.StatusOK}
	invalid422 = func(msg string, fields ...string) want {
		return want{code: http.StatusUnprocessableEntity, reason: metav1.StatusReasonInvalid, fields: fields, message: msg}
	}
	forbidden403 = func(msg string) want {
		return want{code: http.StatusForbidden, reason: metav1.StatusReasonForbidden, message: msg}
	}
)

func TestPodValidator(t *testing.T) {
	strict := &v1alpha1.DataplanePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "strict", Generation: 1},
		Spec: v1alpha1.DataplanePolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}},
			AllowedModes:      []v1alpha1.AllowedModes{{Modes: []v1alpha1.Mode{"sidecar", "ambient-waypoint"}}},
		},
	}
	in := testInputs(t, []*v1alpha1.DataplanePolicy{strict}, ns("prod", map[string]string{"tier": "prod"}, nil), ns("dev", nil, nil))
	modeAnn := func(m string) map[string]string { return map[string]string{v1alpha1.AnnotationMode: m} }
	tests := []struct {
		name     string
		op       admissionv1.Operation
		pod, old *corev1.Pod
		want     want
	}{
		{"plain pod", admissionv1.Create, testPod("p", "prod", map[string]string{"app": "x"}, nil), nil, ok200},
		{"allowed mode", admissionv1.Create, testPod("p", "prod", nil, modeAnn("sidecar")), nil, ok200},
		{"disallowed mode", admissionv1.Create, testPod("p", "prod", nil, modeAnn("ambient")), nil,
			invalid422(`DataplanePolicy strict allows only sidecar, ambient-waypoint in namespace prod`, "metadata.annotations[meshshift.io/mode]")},
		{"any mode where no policy restricts", admissionv1.Create, testPod("p", "dev", nil, modeAnn("ambient")), nil, ok200},
		{"unknown mode", admissionv1.Create, testPod("p", "dev", nil, modeAnn("sidecarless")), nil,
			invalid422(`supported values: "sidecar", "ambient", "ambient-waypoint", "cilium", "none"`, "metadata.annotations[meshshift.io/mode]")},
		{"inject true with ambient", admissionv1.Create,
			testPod("p", "dev", map[string]string{"sidecar.istio.io/inject": "true", "istio.io/dataplane-mode": "ambient"}, nil), nil,
			invalid422("contradicts sidecar.istio.io/inject=true", "metadata.labels[istio.io/dataplane-mode]")},
		{"inject value", admissionv1.Create, testPod("p", "dev", map[string]string{"sidecar.istio.io/inject": "yes"}, nil), nil,
			invalid422(`supported values: "true", "false"`, "metadata.labels[sidecar.istio.io/inject]")},
		{"waypoint with sidecar", admissionv1.Create,
			testPod("p", "dev", map[string]string{"sidecar.istio.io/inject": "true", "istio.io/use-waypoint": "wp"}, nil), nil,
			invalid422("waypoints serve ambient pods", "metadata.labels[istio.io/use-waypoint]")},
		{"update keeps an old problem", admissionv1.Update,
			testPod("p", "prod", map[string]string{"app": "y"}, modeAnn("ambient")), testPod("p", "prod", map[string]string{"app": "x"}, modeAnn("ambient")), ok200},
		{"update adds a problem", admissionv1.Update,
			testPod("p", "dev", map[string]string{"sidecar.istio.io/inject": "maybe"}, nil), testPod("p", "dev", nil, nil),
			invalid422("", "metadata.labels[sidecar.istio.io/inject]")},
		{"delete is not validated", admissionv1.Delete, testPod("p", "dev", map[string]string{"sidecar.istio.io/inject": "maybe"}, nil), nil, ok200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var old []byte
			if tc.old != nil {
				old = mustJSON(t, tc.old)
			}
			check(t, handle(&PodValidator{Inputs: in}, request(tc.op, "Pod", "pods", tc.pod.Namespace, mustJSON(t, tc.pod), old)), tc.want)
		})
	}
	t.Run("undecodable", func(t *testing.T) {
		resp := handle(&PodValidator{Inputs: in}, request(admissionv1.Create, "Pod", "pods", "dev", []byte(`{"metadata":7}`), nil))
		if resp.Allowed || resp.Result.Code != http.StatusBadRequest {
			t.Fatalf("got %+v, want a 400", resp.Result)
		}
	})
}

func activeMigration(name string, phase v1alpha1.WavePhase, namespaces ...string) *v1alpha1.MeshMigration {
	return &v1alpha1.MeshMigration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.MeshMigrationSpec{TargetMode: "ambient", Namespaces: &v1alpha1.NamespaceTarget{Names: namespaces}},
		Status:     v1alpha1.MeshMigrationStatus{Waves: []v1alpha1.WaveStatus{{Name: "wave-1", Namespaces: namespaces, Phase: phase}}},
	}
}

func TestNamespaceValidator(t *testing.T) {
	const migrator = "system:serviceaccount:meshshift-system:meshshift-manager"
	in := testInputs(t, nil, activeMigration("to-ambient", v1alpha1.WaveBaking, "shop"), activeMigration("done", v1alpha1.WavePromoted, "blog"))
	tests := []struct {
		name     string
		op       admissionv1.Operation
		user     string
		obj, old *corev1.Namespace
		want     want
	}{
		{"plain", admissionv1.Create, "alice", ns("a", nil, nil), nil, ok200},
		{"known mode", admissionv1.Create, "alice", nsMode("a", "ambient"), nil, ok200},
		{"unknown mode", admissionv1.Create, "alice", nsMode("a", "eBPF"), nil,
			invalid422(`supported values: "sidecar", "ambient"`, "metadata.annotations[meshshift.io/mode]")},
		{"istio-injection with istio.io/rev", admissionv1.Create, "alice",
			ns("a", map[string]string{"istio-injection": "enabled", "istio.io/rev": "canary"}, nil), nil,
			invalid422("cannot be set together with istio-injection=enabled", "metadata.labels[istio.io/rev]")},
		{"owned by an active wave", admissionv1.Update, "alice", nsMode("shop", "sidecar"), nsMode("shop", "ambient"),
			forbidden403("belong to wave wave-1 of MeshMigration to-ambient; only the migrator (" + migrator + ") may change them")},
		{"owned, label added by hand", admissionv1.Update, "alice",
			ns("shop", map[string]string{"istio-injection": "enabled"}, nil), ns("shop", nil, nil), forbidden403("MeshMigration to-ambient")},
		{"owned, changed by the migrator", admissionv1.Update, migrator, nsMode("shop", "sidecar"), nsMode("shop", "ambient"), ok200},
		{"owned, unrelated label", admissionv1.Update, "alice",
			ns("shop", map[string]string{"team": "b"}, map[string]string{v1alpha1.AnnotationMode: "ambient"}), nsMode("shop", "ambient"), ok200},
		{"wave finished", admissionv1.Update, "alice", nsMode("blog", "sidecar"), nsMode("blog", "ambient"), ok200},
		{"update keeps an old conflict", admissionv1.Update, "alice",
			ns("a", map[string]string{"istio-injection": "enabled", "istio.io/rev": "x", "team": "b"}, nil),
			ns("a", map[string]string{"istio-injection": "enabled", "istio.io/rev": "x"}, nil), ok200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var old []byte
			if tc.old != nil {
				old = mustJSON(t, tc.old)
			}
			req := request(tc.op, "Namespace", "namespaces", "", mustJSON(t, tc.obj), old)
			req.UserInfo.Username = tc.user
			check(t, handle(&NamespaceValidator{Inputs: in, MigratorUsername: migrator}, req), tc.want)
		})
	}
}

func TestDataplanePolicyValidator(t *testing.T) {
	tests := []struct {
		name string
		spec v1alpha1.DataplanePolicySpec
		want want
	}{
		{"valid", v1alpha1.DataplanePolicySpec{DefaultMode: "ambient", Rules: []v1alpha1.Rule{{Name: "r", When: "workload.hostNetwork", Mode: "none"}}}, ok200},
		{"bad CEL", v1alpha1.DataplanePolicySpec{Rules: []v1alpha1.Rule{{Name: "r", When: "workload.nope ==", Mode: "none"}}},
			invalid422("CEL:", "spec.rules[0].when")},
		{"bad mode", v1alpha1.DataplanePolicySpec{DefaultMode: "sidecarless"}, invalid422(`supported values: "sidecar"`, "spec.defaultMode")},
		{"duplicate rule", v1alpha1.DataplanePolicySpec{Rules: []v1alpha1.Rule{{Name: "r", When: "true", Mode: "none"}, {Name: "r", When: "true", Mode: "none"}}},
			invalid422("Duplicate value", "spec.rules[1].name")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dp := &v1alpha1.DataplanePolicy{TypeMeta: metav1.TypeMeta{Kind: "DataplanePolicy", APIVersion: "meshshift.io/v1alpha1"},
				ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: tc.spec}
			check(t, handle(DataplanePolicyValidator{}, request(admissionv1.Create, kindDataplanePolicy, "dataplanepolicies", "", mustJSON(t, dp), nil)), tc.want)
		})
	}
}

func TestMeshMigrationValidator(t *testing.T) {
	finished := activeMigration("old", v1alpha1.WavePromoted, "blog")
	finished.Status.Conditions = []metav1.Condition{{Type: "Succeeded", Status: metav1.ConditionTrue, Reason: "AllWavesPromoted", LastTransitionTime: metav1.Now()}}
	bySelector := &v1alpha1.MeshMigration{ObjectMeta: metav1.ObjectMeta{Name: "teams"}, Spec: v1alpha1.MeshMigrationSpec{TargetMode: "ambient",
		Namespaces: &v1alpha1.NamespaceTarget{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "pay"}}}}}
	objs := []client.Object{activeMigration("running", v1alpha1.WaveBaking, "shop", "cart"), finished, bySelector,
		ns("shop", nil, nil), ns("cart", nil, nil), ns("blog", nil, nil), ns("billing", map[string]string{"team": "pay"}, nil), ns("free", nil, nil)}
	in := testInputs(t, nil, objs...)
	names := func(n ...string) *v1alpha1.NamespaceTarget { return &v1alpha1.NamespaceTarget{Names: n} }
	tests := []struct {
		name string
		spec v1alpha1.MeshMigrationSpec
		want want
	}{
		{"valid", v1alpha1.MeshMigrationSpec{TargetMode: "ambient", Namespaces: names("free"), BatchSize: ptr.To(intstr.FromString("50%"))}, ok200},
		{"namespace of a finished migration", v1alpha1.MeshMigrationSpec{TargetMode: "ambient", Namespaces: names("blog")}, ok200},
		{"bad target", v1alpha1.MeshMigrationSpec{TargetMode: "istio", Namespaces: names("free")}, invalid422(`supported values: "sidecar"`, "spec.targetMode")},
		{"no namespaces", v1alpha1.MeshMigrationSpec{TargetMode: "ambient"}, invalid422("give namespaces", "spec.namespaces")},
		{"waves and batchSize", v1alpha1.MeshMigrationSpec{TargetMode: "ambient", BatchSize: ptr.To(intstr.FromInt32(2)),
			Waves: []v1alpha1.WaveSpec{{Name: "w1", Namespaces: []string{"free"}}}}, invalid422("exclusive", "spec.batchSize")},
		{"remove originals without apply", v1alpha1.MeshMigrationSpec{TargetMode: "ambient-waypoint", Namespaces: names("free"),
			OriginalPolicies: v1alpha1.OriginalPoliciesRemove}, invalid422("needs spec.policyMigration Apply", "spec.originalPolicies")},
		{"unknown policy migration", v1alpha1.MeshMigrationSpec{TargetMode: "ambient-waypoint", Namespaces: names("free"),
			PolicyMigration: "Rewrite"}, invalid422(`supported values: "Propose", "Apply"`, "spec.policyMigration")},
		{"apply and remove", v1alpha1.MeshMigrationSpec{TargetMode: "ambient-waypoint", Namespaces: names("free"),
			PolicyMigration: v1alpha1.PolicyMigrationApply, OriginalPolicies: v1alpha1.OriginalPoliciesRemove}, ok200},
		{"bad batch", v1alpha1.MeshMigrationSpec{TargetMode: "ambient", Namespaces: names("free"), BatchSize: ptr.To(intstr.FromString("150%"))},
			invalid422("percentage from 1% to 100%", "spec.batchSize")},
		{"namespace in two waves", v1alpha1.MeshMigrationSpec{TargetMode: "ambient",
			Waves: []v1alpha1.WaveSpec{{Name: "w1", Namespaces: []string{"free"}}, {Name: "w2", Namespaces: []string{"free"}}}},
			invalid422("already in wave w1", "spec.waves[1].namespaces[0]")},
		{"bad SLI", v1alpha1.MeshMigrationSpec{TargetMode: "ambient", Namespaces: names("free"), Gate: &v1alpha1.GateSpec{
			PrometheusURL: "prom:9090", SLIs: []v1alpha1.SLI{{Name: "queueDepth", Max: "NaN"}}}},
			invalid422("", "spec.gate.prometheusURL", "spec.gate.slis[0].query", "spec.gate.slis[0].max")},
		{"shares a namespace by name", v1alpha1.MeshMigrationSpec{TargetMode: "sidecar", Namespaces: names("free", "cart")},
			invalid422("namespaces cart are owned by MeshMigration running", "spec.namespaces")},
		{"shares a namespace by selector", v1alpha1.MeshMigrationSpec{TargetMode: "sidecar", Waves: []v1alpha1.WaveSpec{{Name: "w", Namespaces: []string{"billing"}}}},
			invalid422("owned by MeshMigration teams", "spec.namespaces")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mm := &v1alpha1.MeshMigration{TypeMeta: metav1.TypeMeta{Kind: "MeshMigration", APIVersion: "meshshift.io/v1alpha1"},
				ObjectMeta: metav1.ObjectMeta{Name: "new"}, Spec: tc.spec}
			check(t, handle(&MeshMigrationValidator{Inputs: in}, request(admissionv1.Create, kindMeshMigration, "meshmigrations", "", mustJSON(t, mm), nil)), tc.want)
		})
	}
	t.Run("updating itself is no conflict", func(t *testing.T) {
		mm := activeMigration("running", v1alpha1.WaveBaking, "shop", "cart")
		check(t, handle(&MeshMigrationValidator{Inputs: in}, request(admissionv1.Update, kindMeshMigration, "meshmigrations", "", mustJSON(t, mm), mustJSON(t, mm))), ok200)
	})
}
