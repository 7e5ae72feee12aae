package policies

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

var testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func mustCompile(t testing.TB, name string, gen int64, spec v1alpha1.DataplanePolicySpec) *Policy {
	t.Helper()
	p, errs := Compile(&v1alpha1.DataplanePolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: gen}, Spec: spec})
	if len(errs) > 0 {
		t.Fatalf("compile %s: %v", name, errs.ToAggregate())
	}
	return p
}

// fullCaps can serve every mode.
func fullCaps() signals.Capabilities {
	return signals.Capabilities{Ztunnel: true, Cilium: true,
		Nodes: signals.NodeCapabilities{Known: true, Kernel: signals.KernelVersion{Major: 6, Minor: 1}, EBPF: signals.EBPFFull}}
}

func baseInput(p *Policy) Input {
	return Input{
		Workload: Workload{Name: "web-7d9f-abcde", Namespace: "shop",
			Labels:    map[string]string{"app": "web", "pod-template-hash": "7d9f"},
			OwnerKind: "ReplicaSet", OwnerName: "web-7d9f", Workload: "web"},
		Namespace:    Namespace{Name: "shop", Labels: map[string]string{"kubernetes.io/metadata.name": "shop", "istio-injection": "enabled"}},
		Now:          testNow,
		Capabilities: fullCaps(),
		Policy:       p,
	}
}

// Label sets of the Istio provider, per mode (DESIGN.md "Labels written").
func istioLabels(m v1alpha1.Mode, waypoint string) map[string]string {
	l := map[string]string{v1alpha1.LabelDataplane: string(m)}
	switch m {
	case v1alpha1.ModeSidecar:
		l["sidecar.istio.io/inject"] = "true"
	case v1alpha1.ModeAmbient:
		l["sidecar.istio.io/inject"] = "false"
		l["istio.io/dataplane-mode"] = "ambient"
	case v1alpha1.ModeAmbientWaypoint:
		l["sidecar.istio.io/inject"] = "false"
		l["istio.io/dataplane-mode"] = "ambient"
		l["istio.io/use-waypoint"] = waypoint
	case v1alpha1.ModeCilium, v1alpha1.ModeNone:
		l["sidecar.istio.io/inject"] = "false"
		l["istio.io/dataplane-mode"] = "none"
	}
	return l
}

func fref(f signals.Feature, kind, ns, name string) signals.FeatureRef {
	return signals.FeatureRef{Feature: f, Kind: kind, Namespace: ns, Name: name}
}
