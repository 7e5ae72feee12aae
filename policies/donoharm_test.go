package policies

import (
	"fmt"
	"testing"
	"time"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// TestNothingAskedChangesNothing is the do-no-harm rule: with no
// DataplanePolicy (the builtin policy) and with the shipped default policy,
// and no meshshift.io/mode annotation anywhere, every workload keeps the mode
// the mesh's own labels give it, and the decision writes nothing the mesh
// reads — whatever the namespace's and pod's mesh labels, the mesh features
// that select it, its traffic and the cluster's capabilities.
func TestNothingAskedChangesNothing(t *testing.T) {
	dflt, err := DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	dflt.Generation = 1
	shipped, errs := Compile(dflt)
	if len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	nsLabels := []map[string]string{
		nil,
		{LabelIstioInjection: "enabled"},
		{LabelIstioInjection: "disabled"},
		{LabelIstioRev: "1-32"},
		{LabelIstioDataplaneMode: "ambient"},
		{LabelIstioDataplaneMode: "ambient", LabelIstioUseWaypoint: "waypoint"},
	}
	podLabels := []map[string]string{
		nil,
		{LabelIstioInject: "true"},
		{LabelIstioInject: "false"},
		{LabelIstioRev: "1-32"},
		{LabelIstioDataplaneMode: "ambient"},
		{LabelIstioDataplaneMode: "none"},
	}
	features := []signals.Features{
		nil,
		{fref(signals.FeatureEnvoyFilter, "EnvoyFilter", "shop", "lua")},
		{fref(signals.FeatureHTTPRouting, "VirtualService", "shop", "reviews")},
		{fref(signals.FeatureL7AuthzSelector, "AuthorizationPolicy", "shop", "l7")},
		{fref(signals.FeatureCiliumL7Policy, "CiliumNetworkPolicy", "shop", "http")},
	}
	caps := []signals.Capabilities{fullCaps(), {}, {Ztunnel: true}}
	fresh := signals.WorkloadTraffic{RequestRate: 800, ConnectionRate: 80, P99Latency: 5 * time.Millisecond,
		Protocols: []signals.Protocol{"tls"}, SampleTime: testNow.Add(-30 * time.Second)}
	n := 0
	for _, p := range []*Policy{nil, shipped} {
		for _, nl := range nsLabels {
			for _, pl := range podLabels {
				for _, fs := range features {
					for ci, c := range caps {
						for _, traffic := range []bool{false, true} {
							in := baseInput(p)
							in.Namespace.Labels = map[string]string{"kubernetes.io/metadata.name": "shop"}
							for k, v := range nl {
								in.Namespace.Labels[k] = v
							}
							for k, v := range pl {
								in.Workload.Labels[k] = v
							}
							in.Features, in.Capabilities = fs, c
							if traffic {
								in.HasTraffic, in.Traffic = true, fresh
							}
							name := fmt.Sprintf("policy=%v ns=%v pod=%v features=%v caps=%d traffic=%v", p != nil, nl, pl, fs, ci, traffic)
							cur, ok := CurrentMode(&in.Workload, &in.Namespace)
							if !ok {
								t.Fatalf("%s: no current mode", name)
							}
							if p == shipped && traffic && cur == v1alpha1.ModeSidecar {
								continue // the shipped rules move busy sidecar workloads: that is asking
							}
							d := Decide(in)
							n++
							if d.Mode != cur || !d.Observed {
								t.Errorf("%s: decided %s by %s (observed %v), want %s kept: %s", name, d.Mode, d.Rule, d.Observed, cur, d.Reason)
							}
							if len(d.Labels) != 1 || d.Labels[v1alpha1.LabelDataplane] != string(cur) {
								t.Errorf("%s: writes labels %v, want only %s=%s", name, d.Labels, v1alpha1.LabelDataplane, cur)
							}
							if len(d.LabelsToRemove) > 0 || len(d.AnnotationsToRemove) > 0 {
								t.Errorf("%s: removes %v %v", name, d.LabelsToRemove, d.AnnotationsToRemove)
							}
							for k := range d.Annotations {
								switch k {
								case v1alpha1.AnnotationDecision, v1alpha1.AnnotationReason, v1alpha1.AnnotationPolicy:
								default:
									t.Errorf("%s: writes annotation %s", name, k)
								}
							}
						}
					}
				}
			}
		}
	}
	if n < 1000 {
		t.Fatalf("only %d combinations decided", n)
	}
}

// FuzzNothingAskedChangesNothing checks the do-no-harm rule on any values of
// the mesh labels the current mode is read from: with the builtin policy the
// decision keeps CurrentMode and writes only meshshift's own label.
func FuzzNothingAskedChangesNothing(f *testing.F) {
	f.Add("true", "", "", "enabled", "", "", "")
	f.Add("false", "none", "", "", "1-32", "ambient", "waypoint")
	f.Add("", "ambient", "canary", "disabled", "", "", "none")
	f.Add("yes", "ambient", "", "", "", "ambient", "wp")
	f.Fuzz(func(t *testing.T, podInject, podDM, podRev, nsInjection, nsRev, nsDM, nsWaypoint string) {
		in := baseInput(nil)
		set := func(m map[string]string, k, v string) {
			if v != "" {
				m[k] = v
			}
		}
		set(in.Workload.Labels, LabelIstioInject, podInject)
		set(in.Workload.Labels, LabelIstioDataplaneMode, podDM)
		set(in.Workload.Labels, LabelIstioRev, podRev)
		in.Namespace.Labels = map[string]string{}
		set(in.Namespace.Labels, LabelIstioInjection, nsInjection)
		set(in.Namespace.Labels, LabelIstioRev, nsRev)
		set(in.Namespace.Labels, LabelIstioDataplaneMode, nsDM)
		set(in.Namespace.Labels, LabelIstioUseWaypoint, nsWaypoint)
		cur, ok := CurrentMode(&in.Workload, &in.Namespace)
		if !ok {
			t.Fatalf("no current mode for %v in %v", in.Workload.Labels, in.Namespace.Labels)
		}
		d := Decide(in)
		if d.Mode != cur || !d.Observed || len(d.Labels) != 1 || d.Labels[v1alpha1.LabelDataplane] != string(cur) ||
			len(d.LabelsToRemove) > 0 || len(d.AnnotationsToRemove) > 0 {
			t.Fatalf("pod %v in namespace %v: decided %s by %s (observed %v), labels %v, removes %v; want %s kept, only meshshift's label",
				in.Workload.Labels, in.Namespace.Labels, d.Mode, d.Rule, d.Observed, d.Labels, d.LabelsToRemove, cur)
		}
	})
}
