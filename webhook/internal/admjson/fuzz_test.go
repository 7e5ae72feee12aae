package admjson

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	sigsjson "sigs.k8s.io/json"
)

// apiServerReview is the AdmissionReview the API server sent for
// webhookbench's pod (webhook/testdata, captured by webhookbench
// -dump-review), compacted.
func apiServerReview(t testing.TB) []byte {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "apiserver-pod-review.json"))
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		t.Fatal(err)
	}
	return compact.Bytes()
}

// fullReview mirrors the fields of admissionv1.AdmissionReview that
// DecodeReview reads, with the same JSON names and null handling (object is a
// runtime.RawExtension there: null leaves it as it is).
type fullReview struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Request    *struct {
		UID         string `json:"uid"`
		Operation   string `json:"operation"`
		SubResource string `json:"subResource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		DryRun      *bool  `json:"dryRun"`
		Object      rawExt `json:"object"`
		OldObject   rawExt `json:"oldObject"`
	} `json:"request"`
}

type rawExt struct{ Raw []byte }

func (r *rawExt) UnmarshalJSON(in []byte) error {
	if !bytes.Equal(in, []byte("null")) {
		r.Raw = append(r.Raw[0:0], in...)
	}
	return nil
}

// FuzzDecodePod checks the one-pass DecodePod against a full decode of the
// same document: on valid JSON both succeed with equal results or both fail.
func FuzzDecodePod(f *testing.F) {
	f.Add([]byte(`{"kind":"Pod","metadata":{"name":"p","labels":{"a":"b"},"ownerReferences":[{"kind":"ReplicaSet","name":"r","controller":true}]},"spec":{"hostNetwork":true,"containers":[{"name":"c","ports":[{"containerPort":80}]}]},"status":{}}`))
	f.Add([]byte(`{"meta\u0064ata":{"name":"x"},"spec":null}`))
	f.Add([]byte(`{"metadata":{"name":"w"},"spec":{"nodeSelector":{"kubernetes.io/os":"windows"},"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"pool","operator":"In","values":["gpu"]}]}]}}}}}`))
	f.Add([]byte(`{"metadata":{},"spec":{"nodeSelector":{"a":"b"},"nodeSelector":null,"affinity":{"x":"]\"}"}},"spec":{"affinity":{}}}`))
	// ownerReferences: a repeated key merges into the elements, null keeps one.
	f.Add([]byte(`{"metadata":{"ownerReferences":[{"kind":"A","name":"x","controller":true},{"kind":"B"}],"ownerReferences":[{"name":"y","controller":null},null]}}`))
	f.Add([]byte(`{"metadata":{"ownerReferences":[{"kind":"A"}],"ownerReferences":[],"ownerReferences":null}}`))
	f.Add([]byte(`{"metadata":{"ownerReferences":[{"kind":5}]}}`))
	f.Add([]byte(`{"metadata":{"annotations":{"k":"v\"\\/\u00e9"}},"spec":{"hostNetwork":null,"x":[1,-2.5e+3,true,false,null,{}]}}`))
	// Repeated and null metadata, labels and annotations: MapsJSON must not
	// claim one raw value for a merge.
	f.Add([]byte(`{"metadata":{"labels":{"a":"1"}},"metadata":{"labels":{"b":"2"}}}`))
	f.Add([]byte(`{"metadata":{"labels":{"a":"1"},"labels":null,"annotations":{"x":"y"}},"metadata":null,"metadata":{"labels":{"c":"3"}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, gotErr := DecodePod(raw)
		if !json.Valid(raw) {
			return
		}
		var want Pod
		wantErr := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &want)
		if wantErr == nil && want.Metadata == nil {
			wantErr = errJSON
		}
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("DecodePod error %v, full decode error %v, on %s", gotErr, wantErr, raw)
		}
		if gotErr == nil && (!reflect.DeepEqual(got.Metadata, want.Metadata) || got.Spec != want.Spec) {
			t.Fatalf("DecodePod %+v, full decode %+v, on %s", got, &want, raw)
		}
		if gotErr == nil {
			checkMapsJSON(t, got, raw)
			checkNodeConstraintsJSON(t, got, raw)
		}
	})
}

// checkNodeConstraintsJSON checks that the raw spec.nodeSelector and
// spec.affinity DecodePod kept are what a full decode sees there.
func checkNodeConstraintsJSON(t *testing.T, p *Pod, raw []byte) {
	t.Helper()
	var full struct {
		Spec struct {
			NodeSelector any `json:"nodeSelector"`
			Affinity     any `json:"affinity"`
		} `json:"spec"`
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &full); err != nil {
		return // the view decoded what the full pod cannot: not this check's concern
	}
	wantSel, wantAff := full.Spec.NodeSelector, full.Spec.Affinity
	sel, aff := p.NodeConstraintsJSON()
	for _, c := range []struct {
		name string
		raw  []byte
		want any
	}{{"nodeSelector", sel, wantSel}, {"affinity", aff, wantAff}} {
		var got any
		if c.raw != nil {
			if err := sigsjson.UnmarshalCaseSensitivePreserveInts(c.raw, &got); err != nil {
				t.Fatalf("spec.%s kept as %q: %v", c.name, c.raw, err)
			}
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Fatalf("spec.%s kept as %q (%v), full decode %v, on %s", c.name, c.raw, got, c.want, raw)
		}
	}
}

// FuzzEncodePatch checks PatchWriter against encoding/json of the same
// operations (mapPatch, the reference), byte for byte, on any keys and values
// and on both an empty and a filled original map.
func FuzzEncodePatch(f *testing.F) {
	f.Add("sidecar.istio.io/inject", "true", "a~b/c", "<\u2028\"\\\x01\xff>", true)
	// An empty key is a member ("/metadata/labels/"), not the map: removing it
	// must not remove every label (fuzzing found that).
	f.Add("0", "0", "", "0", false)
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string, emptyOrig bool) {
		orig := map[string]string{k2: "old", "keep": v1}
		if emptyOrig {
			orig = nil
		}
		set := map[string]string{k1: v1, "x/" + k2: v2}
		remove := []string{k2, "absent"}
		var w PatchWriter
		w.MapOps("/metadata/labels", orig, set, remove)
		w.MapOps("/metadata/annotations", nil, map[string]string{k1: v2}, nil)
		ops := mapPatch("/metadata/labels", orig, set, remove)
		ops = append(ops, mapPatch("/metadata/annotations", nil, map[string]string{k1: v2}, nil)...)
		want, err := json.Marshal(ops)
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Done(); !bytes.Equal(got, want) {
			t.Fatalf("PatchWriter\n%s\njson.Marshal\n%s", got, want)
		}
	})
}

// FuzzDecodeReview: DecodeReview never panics, and on valid JSON it agrees
// with decoding into admissionv1.AdmissionReview (case-sensitive, as the
// admission.Webhook decoder) on every field it reads.
func FuzzDecodeReview(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","operation":"CREATE","namespace":"shop","name":"p","dryRun":true,"object":{"metadata":{"name":"p"}}}}`))
	f.Add([]byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1","request":{"object":null,"dryRun":null,"subResource":"status","UID":"x"},"request":{"uid":"\u0031"}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"object":[1,{"a":"}"}],"object":null,"dryRun":true,"dryRun":null}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"UPDATE","object":{"a":1},"oldObject":{"a":[0]},"oldObject":null}}`))
	f.Add(apiServerReview(f))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"object":{"metadata":{"name":"a"}},"object":null}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"object":{"metadata":{"name":"a"}},"object":{"spec":{}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"object":{"metadata":{"labels":{"a":5}}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"object":{"metadata":{"labels":{"a":"1"},"annotations":{"b":"2"},"labels":{"c":"3"}}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeReview(data)
		checkPodReview(t, data, got, err)
		if !json.Valid(data) {
			return
		}
		var want fullReview
		wantErr := sigsjson.UnmarshalCaseSensitivePreserveInts(data, &want)
		readable := wantErr == nil && want.Request != nil && want.Kind == "AdmissionReview" &&
			(want.APIVersion == "admission.k8s.io/v1" || want.APIVersion == "admission.k8s.io/v1beta1")
		if err != nil {
			if readable && !bytes.Contains(data, []byte(`"request":null`)) {
				t.Fatalf("DecodeReview: %v; the full decode read %+v", err, want.Request)
			}
			return
		}
		if !readable {
			t.Fatalf("DecodeReview read %+v; the full decode: %v, %+v", got, wantErr, want)
		}
		r := want.Request
		if got.Request.UID != r.UID || got.Request.Operation != r.Operation || got.Request.SubResource != r.SubResource ||
			got.Request.Namespace != r.Namespace || got.Request.Name != r.Name || got.Request.DryRun != (r.DryRun != nil && *r.DryRun) ||
			!bytes.Equal(got.Request.Object, r.Object.Raw) || !bytes.Equal(got.Request.OldObject, r.OldObject.Raw) || "admission.k8s.io/"+got.Version != want.APIVersion {
			t.Fatalf("DecodeReview %+v, full decode %+v", got.Request, r)
		}
	})
}

// checkPodReview: DecodePodReview reads what DecodeReview reads, and its Pod
// is DecodePod of the object (nil where DecodePod fails).
func checkPodReview(t *testing.T, data []byte, want Review, wantErr error) {
	t.Helper()
	got, err := DecodePodReview(data)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("DecodePodReview error %v, DecodeReview error %v", err, wantErr)
	}
	if err != nil {
		if err.Error() != wantErr.Error() {
			t.Fatalf("DecodePodReview error %q, DecodeReview error %q", err, wantErr)
		}
		return
	}
	pod := got.Request.Pod
	got.Request.Pod = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodePodReview %+v, DecodeReview %+v", got, want)
	}
	wantPod, podErr := DecodePod(got.Request.Object)
	if pod != nil {
		labels, annotations, ok := pod.MapsJSON()
		if err := pod.DecodeMaps(); err != nil {
			if podErr == nil {
				t.Fatalf("DecodeMaps: %v; DecodePod read %+v", err, wantPod.Metadata)
			}
			return
		}
		if podErr == nil {
			wl, wa, wok := wantPod.MapsJSON()
			if ok != wok || !bytes.Equal(labels, wl) || !bytes.Equal(annotations, wa) {
				t.Fatalf("MapsJSON of the lazy pod %q %q %v, of DecodePod's %q %q %v", labels, annotations, ok, wl, wa, wok)
			}
		}
	}
	switch {
	case podErr != nil && pod != nil:
		t.Fatalf("DecodePodReview read pod %+v; DecodePod: %v", pod, podErr)
	case podErr == nil && (pod == nil || !reflect.DeepEqual(pod.Metadata, wantPod.Metadata) || pod.Spec != wantPod.Spec):
		t.Fatalf("DecodePodReview read pod %+v; DecodePod %+v", pod, wantPod)
	}
}

// checkMapsJSON: when MapsJSON says ok, the labels and annotations are what
// its raw values decode to alone.
func checkMapsJSON(t *testing.T, p *Pod, raw []byte) {
	t.Helper()
	labels, annotations, ok := p.MapsJSON()
	if !ok {
		return
	}
	for _, c := range []struct {
		raw  []byte
		want map[string]string
	}{{labels, p.Metadata.Labels}, {annotations, p.Metadata.Annotations}} {
		var m map[string]string
		if c.raw != nil {
			if err := sigsjson.UnmarshalCaseSensitivePreserveInts(c.raw, &m); err != nil {
				t.Fatalf("MapsJSON value %s does not decode: %v (pod %s)", c.raw, err, raw)
			}
		}
		if !reflect.DeepEqual(m, c.want) {
			t.Fatalf("MapsJSON value %s decodes to %v, the pod has %v (pod %s)", c.raw, m, c.want, raw)
		}
	}
}
