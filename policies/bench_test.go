package policies

import (
	"fmt"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// benchRules are ten rules of the kind a platform team writes; the benchmark's
// workload matches none until the ninth.
var benchRules = []v1alpha1.Rule{
	{Name: "opt-out", When: `workload.labels[?"meshshift.io/opt-out"].orValue("") == "true"`, Mode: "none"},
	{Name: "no-traffic", When: `!traffic.available || traffic.stale`, Mode: "current"},
	{Name: "failing", When: `traffic.errorRate > 0.05`, Mode: "current"},
	{Name: "batch-jobs", When: `workload.ownerKind == "Job"`, Mode: "none"},
	{Name: "opaque", When: `traffic.protocols.exists(p, p == "tls" || p == "other") && !traffic.protocols.exists(p, p == "http1" || p == "http2")`, Mode: "ambient"},
	{Name: "team-pinned", When: `namespaceObject.labels.?team.orValue("") == "payments"`, Mode: "sidecar"},
	{Name: "legacy", When: `workload.labels.?tier.orValue("") == "legacy"`, Mode: "sidecar"},
	{Name: "l7-latency", When: `traffic.p99Latency < duration("5ms") && features.exists(f, f == "retries")`, Mode: "ambient-waypoint"},
	{Name: "high-rate-l4", When: `traffic.requestRate > 100.0 && features.all(f, f in ["mtls", "l4-authz", "tcp-telemetry"])`, Mode: "ambient"},
	{Name: "cilium-canary", When: `workload.labels.?canary.orValue("") == "cilium"`, Mode: "cilium"},
}

// benchIndex builds an index of 10,000 mesh objects: 100 namespaces with 100
// Services and 100 objects each (AuthorizationPolicies, PeerAuthentications,
// Sidecars by selector; VirtualServices and DestinationRules by host).
func benchIndex(b *testing.B) *signals.Index {
	ix := signals.NewIndex("")
	for n := range 100 {
		ns := fmt.Sprintf("ns-%d", n)
		for s := range 100 {
			app := fmt.Sprintf("svc-%d", s)
			ix.UpsertService(ns, app, map[string]string{"app": app})
			meta := metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", app, s%5)}
			var err error
			switch s % 5 {
			case 0:
				ap := &securityv1.AuthorizationPolicy{ObjectMeta: meta}
				ap.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": app}}
				ap.Spec.Rules = []*securityapi.Rule{{From: []*securityapi.Rule_From{{Source: &securityapi.Source{Namespaces: []string{"web"}}}}}}
				err = ix.Upsert(ap)
			case 1:
				pa := &securityv1.PeerAuthentication{ObjectMeta: meta}
				pa.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": app}}
				pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}
				err = ix.Upsert(pa)
			case 2:
				sc := &networkingv1.Sidecar{ObjectMeta: meta}
				sc.Spec.WorkloadSelector = &networkingapi.WorkloadSelector{Labels: map[string]string{"app": app, "version": "v1"}}
				err = ix.Upsert(sc)
			case 3:
				vs := &networkingv1.VirtualService{ObjectMeta: meta}
				vs.Spec.Hosts = []string{app}
				vs.Spec.Http = []*networkingapi.HTTPRoute{{Route: []*networkingapi.HTTPRouteDestination{{Destination: &networkingapi.Destination{Host: app}}}}}
				err = ix.Upsert(vs)
			case 4:
				dr := &networkingv1.DestinationRule{ObjectMeta: meta}
				dr.Spec.Host = app + "." + ns + ".svc.cluster.local"
				dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{LoadBalancer: &networkingapi.LoadBalancerSettings{}}
				err = ix.Upsert(dr)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	if ix.Len() != 10000 {
		b.Fatalf("index holds %d objects, want 10000", ix.Len())
	}
	return ix
}

// BenchmarkDecide measures one decision as the webhook makes it: the feature
// lookup in a 10,000-object index, then Decide with a 10-rule policy.
func BenchmarkDecide(b *testing.B) {
	p := mustCompile(b, "bench", 1, v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeSidecar), Rules: benchRules})
	ix := benchIndex(b)
	in := baseInput(p)
	in.Namespace = Namespace{Name: "ns-42", Labels: map[string]string{"kubernetes.io/metadata.name": "ns-42", "team": "shop"}}
	in.Workload.Namespace = "ns-42"
	// svc-41 is selected by an L4 AuthorizationPolicy (41 % 5 == 1: a PeerAuthentication).
	in.Workload.Labels = map[string]string{"app": "svc-41", "version": "v1", "pod-template-hash": "7d9f"}
	in.HasTraffic = true
	in.Traffic = signals.WorkloadTraffic{RequestRate: 400, ErrorRate: 0.001, P99Latency: 12 * time.Millisecond,
		ConnectionRate: 20, Protocols: []signals.Protocol{signals.ProtocolHTTP1}, SampleTime: testNow.Add(-10 * time.Second)}
	var buf signals.Features
	check := func(d Decision) {
		if d.Mode != v1alpha1.ModeAmbient || d.Rule != "rule:high-rate-l4" {
			b.Fatalf("decided %s by %s (%q), want ambient by rule:high-rate-l4", d.Mode, d.Rule, d.Reason)
		}
	}
	b.Run("index+decide", func(b *testing.B) {
		b.ReportAllocs()
		cpu := processCPU()
		for b.Loop() {
			buf = ix.AppendFeatures(buf[:0], in.Namespace.Name, in.Workload.Labels)
			in.Features = buf
			check(Decide(in))
		}
		reportCPU(b, cpu)
	})
	in.Features = ix.FeaturesFor(in.Namespace.Name, in.Workload.Labels)
	b.Run("decide", func(b *testing.B) {
		b.ReportAllocs()
		cpu := processCPU()
		for b.Loop() {
			check(Decide(in))
		}
		reportCPU(b, cpu)
	})
	b.Run("index", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = ix.AppendFeatures(buf[:0], in.Namespace.Name, in.Workload.Labels)
		}
	})
	s := NewStabilizer(1024)
	b.Run("stabilized", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			check(s.Decide(in))
		}
	})
}

// reportCPU adds cpu-ns/op: the process's CPU time per operation, which stays
// meaningful on a machine whose cores other work shares (wall-clock ns/op
// grows with the machine's load; CPU time much less).
func reportCPU(b *testing.B, start time.Duration) {
	if d := processCPU() - start; d > 0 && b.N > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
