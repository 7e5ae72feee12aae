package signals

import (
	"fmt"
	"testing"

	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// benchIndex10k: 100 namespaces × (100 Services, 50 AuthorizationPolicies by
// selector, 50 VirtualServices by host) = 10,000 mesh objects.
func benchIndex10k(b *testing.B) *Index {
	ix := NewIndex("")
	for n := range 100 {
		ns := fmt.Sprintf("ns-%d", n)
		for s := range 100 {
			app := fmt.Sprintf("svc-%d", s)
			ix.UpsertService(ns, app, map[string]string{"app": app})
			if s%2 == 0 {
				ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app}}
				ap.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": app}}
				if err := ix.Upsert(ap); err != nil {
					b.Fatal(err)
				}
			} else {
				vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app}}
				vs.Spec.Hosts = []string{app}
				if err := ix.Upsert(vs); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if ix.Len() != 10000 {
		b.Fatalf("%d objects", ix.Len())
	}
	return ix
}

// BenchmarkIndexUpdate measures one informer update in a 10,000-object index:
// an AuthorizationPolicy whose selector and rules change, alternating between
// two versions (classification, unfiling and refiling), and a Service update.
func BenchmarkIndexUpdate(b *testing.B) {
	ix := benchIndex10k(b)
	a := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-42", Name: "svc-10"}}
	a.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "svc-10"}}
	c := a.DeepCopy()
	c.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "svc-12", "version": "v2"}}
	c.Spec.Rules = []*securityapi.Rule{{To: []*securityapi.Rule_To{{Operation: &securityapi.Operation{Paths: []string{"/admin"}}}}}}
	b.Run("authorizationpolicy", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			obj := a
			if i%2 == 1 {
				obj = c
			}
			i++
			if err := ix.Upsert(obj); err != nil {
				b.Fatal(err)
			}
		}
	})
	sel := []map[string]string{{"app": "svc-10"}, {"app": "svc-10", "track": "canary"}}
	b.Run("service", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			ix.UpsertService("ns-42", "svc-10", sel[i%2])
			i++
		}
	})
	if ix.Len() != 10000 {
		b.Fatalf("index holds %d objects after the updates", ix.Len())
	}
}

// BenchmarkFeaturesFor is the webhook's lookup in the same index.
func BenchmarkFeaturesFor(b *testing.B) {
	ix := benchIndex10k(b)
	labels := map[string]string{"app": "svc-41", "version": "v1", "pod-template-hash": "7d9f"}
	var buf Features
	b.ReportAllocs()
	for b.Loop() {
		buf = ix.AppendFeatures(buf[:0], "ns-42", labels)
	}
	if len(buf) != 1 {
		b.Fatalf("features %v", buf)
	}
}
