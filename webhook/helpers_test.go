package webhook

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-logr/logr"

	jsonpatchv5 "github.com/evanphx/json-patch/v5"
	clocktesting "k8s.io/utils/clock/testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

func testScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// testInputs is a fake cache holding objs, the given policies, and every
// sidecarless mode servable.
func testInputs(t testing.TB, dps []*v1alpha1.DataplanePolicy, objs ...client.Object) *Inputs {
	t.Helper()
	store := NewPolicyStore(logr.Discard())
	for _, dp := range dps {
		store.Upsert(dp)
		if len(store.Policies()) == 0 {
			t.Fatalf("policy %s does not compile", dp.Name)
		}
	}
	nss := NewNamespaceStore()
	for _, o := range objs {
		if n, ok := o.(*corev1.Namespace); ok {
			nss.upsert(n)
		}
	}
	return &Inputs{
		Cache:        fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(objs...).Build(),
		Namespaces:   nss,
		Policies:     store,
		Capabilities: StaticCapabilities(signals.Capabilities{Ztunnel: true, Cilium: true}),
	}
}

func ns(name string, labels, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
}

func nsMode(name, mode string) *corev1.Namespace {
	return ns(name, map[string]string{"kubernetes.io/metadata.name": name}, map[string]string{v1alpha1.AnnotationMode: mode})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// request builds a raw AdmissionRequest as the API server sends it.
func request(op admissionv1.Operation, kind, resource, namespace string, obj, old []byte) admission.Request {
	r := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "0a1b2c",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: kind},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: resource},
		Namespace: namespace,
		Operation: op,
		UserInfo:  authenticationv1.UserInfo{Username: "alice"},
		Object:    runtime.RawExtension{Raw: obj},
		OldObject: runtime.RawExtension{Raw: old},
	}}
	if kind == kindDataplanePolicy || kind == kindMeshMigration {
		r.Kind.Group, r.Kind.Version = groupMesh, "v1alpha1"
		r.Resource.Group, r.Resource.Version = groupMesh, "v1alpha1"
	}
	return r
}

// handle runs h the way the server does (admission.Webhook: Handle, then Complete).
func handle(h admission.Handler, req admission.Request) admission.Response {
	wh := &admission.Webhook{Handler: h}
	return wh.Handle(context.Background(), req)
}

var fixedNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func fixedClock() *clocktesting.FakeClock { return clocktesting.NewFakeClock(fixedNow) }

func toClientObjects(objs []metav1.Object) []client.Object {
	out := make([]client.Object, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(client.Object))
	}
	return out
}

func jsonpatchDecode(b []byte) (jsonpatchv5.Patch, error) { return jsonpatchv5.DecodePatch(b) }
