package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	jsonpatchv5 "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
)

// fuzzHandlers are every handler, over a cache with policies, namespaces and
// a migration in progress.
func fuzzHandlers(t testing.TB) map[string]http.Handler {
	strict := &v1alpha1.DataplanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "strict", Generation: 1},
		Spec: v1alpha1.DataplanePolicySpec{AllowedModes: []v1alpha1.AllowedModes{{Modes: []v1alpha1.Mode{"sidecar"}}},
			Rules: []v1alpha1.Rule{{Name: "web", When: `workload.labels["app"] == "web"`, Mode: "ambient"}}}}
	in := testInputs(t, []*v1alpha1.DataplanePolicy{strict}, nsMode("shop", "ambient"), ns("dev", nil, nil),
		activeMigration("m", v1alpha1.WaveBaking, "shop"))
	in.Stabilizer = policies.NewStabilizer(64) // as the server runs: owned pods go through the answer memo
	// mutate-pod-fresh decides every pod afresh (no Stabilizer, no memo): with
	// no traffic source the answers must be the same as mutate-pod's.
	fresh := &Inputs{Cache: in.Cache, Namespaces: in.Namespaces, Policies: in.Policies, Features: in.Features,
		Traffic: in.Traffic, Capabilities: in.Capabilities, Clock: in.Clock, Ready: in.Ready}
	return map[string]http.Handler{
		"mutate-pod-fresh": &ReviewHandler{Func: (&PodMutator{Inputs: fresh}).Review, Pods: true},
		"mutate-pod":       &ReviewHandler{Func: (&PodMutator{Inputs: in}).Review, Pods: true},
		"validate-pod":     &ReviewHandler{Func: (&PodValidator{Inputs: in}).Review, Pods: true},
		"validate-ns":      &admission.Webhook{Handler: &NamespaceValidator{Inputs: in, MigratorUsername: "system:serviceaccount:x:y"}},
		"validate-dpp":     &admission.Webhook{Handler: DataplanePolicyValidator{}},
		"validate-mm":      &admission.Webhook{Handler: &MeshMigrationValidator{Inputs: in}},
	}
}

// FuzzAdmissionReview sends arbitrary bytes as an AdmissionReview to every
// handler the way the API server does. No panic; a decodable review always
// gets a v1 AdmissionReview back with its UID; a patch applies to the object.
func FuzzAdmissionReview(f *testing.F) {
	handlers := fuzzHandlers(f)
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","operation":"CREATE","namespace":"shop","object":{"metadata":{"name":"p","labels":{"app":"web"}}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"2","operation":"CREATE","namespace":"shop","object":{"metadata":{"generateName":"web-7d-","labels":{"app":"web"},"annotations":{"meshshift.io/mode":"sidecar"},"ownerReferences":[{"kind":"ReplicaSet","name":"web-7d","controller":true}]},"spec":{"hostNetwork":false}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		answers := map[string]*admissionv1.AdmissionResponse{}
		defer func() {
			if a, b := answers["mutate-pod"], answers["mutate-pod-fresh"]; a != nil && !reflect.DeepEqual(a, b) {
				t.Fatalf("mutate-pod (answer memo) answered\n%+v\ndeciding afresh\n%+v", a, b)
			}
		}()
		var in admissionv1.AdmissionReview
		decodable := json.Unmarshal(data, &in) == nil && in.Request != nil
		for name, h := range handlers {
			req := httptest.NewRequest(http.MethodPost, "/"+name, bytes.NewReader(data))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("%s: response is no AdmissionReview (%v): %s", name, err, rec.Body.Bytes())
			}
			answers[name] = out.Response
			if !decodable || in.Request.UID == "" {
				continue
			}
			if out.Response.UID != in.Request.UID && out.Response.Result != nil && out.Response.Result.Code < 400 {
				t.Fatalf("%s: response UID %q, request UID %q", name, out.Response.UID, in.Request.UID)
			}
			if len(out.Response.Patch) > 0 {
				p, err := jsonpatchv5.DecodePatch(out.Response.Patch)
				if err != nil {
					t.Fatalf("%s: patch does not decode: %v", name, err)
				}
				if _, err := p.Apply(in.Request.Object.Raw); err != nil {
					t.Fatalf("%s: patch %s does not apply to %s: %v", name, out.Response.Patch, in.Request.Object.Raw, err)
				}
			}
		}
	})
}

// FuzzPodMetadata fuzzes one pod label and one annotation through the mutator
// and the validator: no panic, and whatever the mutator writes, the validator
// accepts (a decided pod is never rejected for meshshift's own labels).
func FuzzPodMetadata(f *testing.F) {
	in := testInputs(f, nil, nsMode("shop", "ambient-waypoint"), ns("dev", nil, nil))
	mut, val := &PodMutator{Inputs: in}, &PodValidator{Inputs: in}
	f.Add("shop", "istio.io/use-waypoint", "wp", "meshshift.io/mode", "sidecar", false)
	f.Fuzz(func(t *testing.T, namespace, lk, lv, ak, av string, hostNetwork bool) {
		pod := testPod("p", namespace, map[string]string{lk: lv}, map[string]string{ak: av})
		pod.Spec.HostNetwork = hostNetwork
		raw, err := json.Marshal(pod)
		if err != nil {
			return
		}
		resp := handle(mut, request(admissionv1.Create, "Pod", "pods", namespace, raw, nil))
		if !resp.Allowed {
			t.Fatalf("mutator denied a pod: %+v", resp.Result)
		}
		if len(resp.Patch) == 0 {
			return
		}
		p, err := jsonpatchv5.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatal(err)
		}
		patched, err := p.Apply(raw)
		if err != nil {
			t.Fatalf("patch %s does not apply: %v", resp.Patch, err)
		}
		if r := handle(val, request(admissionv1.Create, "Pod", "pods", namespace, patched, nil)); !r.Allowed {
			t.Fatalf("validator rejects what the mutator wrote: %s\n%+v", patched, r.Result)
		}
	})
}
