package migrator

import (
	"encoding/json"
	"math"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

// FuzzRecord feeds arbitrary meshshift.io/previous-labels annotations (people
// with namespace edit rights can write them) to the reader and the undo: no
// panic, and the undo touches only the keys a flip manages.
func FuzzRecord(f *testing.F) {
	f.Add(`{"migration":"m","wave":"w1","target":"ambient","labels":{"istio-injection":"enabled","istio.io/rev":null},"annotations":{"meshshift.io/mode":null}}`)
	f.Add(`{"migration":"m","labels":{"team":"x","istio.io/dataplane-mode":"ambient"},"services":{"web":null},"waypoint":"waypoint"}`)
	f.Add(`{}`)
	f.Add(`null`)
	f.Add(`{"labels":{"istio-injection":1}}`)
	f.Fuzz(func(t *testing.T, s string) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop",
			Labels:      map[string]string{"team": "payments", "istio.io/dataplane-mode": "ambient"},
			Annotations: map[string]string{AnnotationPreviousLabels: s, "owner": "me"}}}
		rec, err := readRecord(ns)
		if err != nil || rec == nil {
			return
		}
		for _, step := range undoSteps(rec) {
			step(ns)
		}
		if ns.Labels["team"] != "payments" || ns.Annotations["owner"] != "me" {
			t.Fatalf("undo of %q changed keys it does not manage: %v %v", s, ns.Labels, ns.Annotations)
		}
		if _, err := json.Marshal(rec); err != nil {
			t.Fatalf("record of %q does not encode: %v", s, err)
		}
	})
}

// FuzzParseLimit: a limit is a finite non-negative number or a field error
// naming the path.
func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{"0.05", "1", "", "-1", "NaN", "Inf", "1e400", "0x10", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ferr := parseLimit(field.NewPath("spec", "gate", "slis").Index(0).Child("max"), s)
		switch {
		case s == "":
			if ferr != nil || !math.IsNaN(v) {
				t.Fatalf("empty limit = %v, %v", v, ferr)
			}
		case ferr != nil:
			if ferr.Field != "spec.gate.slis[0].max" {
				t.Fatalf("error names %s", ferr.Field)
			}
		default:
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("parseLimit(%q) = %v", s, v)
			}
		}
	})
}

// FuzzResolveGateNoPanic: any SLI list resolves to a config or field errors.
func FuzzResolveGateNoPanic(f *testing.F) {
	f.Add("errorRate", "", "", int64(100), "0.05", "")
	f.Add("mine", "sum(x)", "", int64(5), "", "0.5")
	f.Fuzz(func(t *testing.T, name, query, sample string, minSample int64, max, inc string) {
		cfg, errs := ResolveGate(&meshv1alpha1.GateSpec{PrometheusURL: "http://p", SLIs: []meshv1alpha1.SLI{
			{Name: name, Query: query, SampleQuery: sample, MinSample: minSample, Max: max, MaxIncrease: inc}}}, "")
		if len(errs) == 0 && (len(cfg.SLIs) != 1 || cfg.SLIs[0].Query == "") {
			t.Fatalf("resolved without a query: %+v", cfg)
		}
	})
}
