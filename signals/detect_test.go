package signals

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDetectCapabilities(t *testing.T) {
	ds := func(ns, name string, ready int32) appsv1.DaemonSet {
		return appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Status: appsv1.DaemonSetStatus{NumberReady: ready}}
	}
	node := func(name string, labels map[string]string) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	c, err := DetectCapabilities(
		[]appsv1.DaemonSet{ds("istio-system", "ztunnel", 3), ds("kube-system", "cilium", 0), ds("mesh-cni", "istio-cni-node", 3)},
		[]appsv1.Deployment{{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istiod"}}, {ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}},
		[]corev1.Node{
			node("a", map[string]string{LabelNodeKernel: "6.8.0", LabelNodeEBPFLevel: "full"}),
			node("b", map[string]string{LabelNodeKernel: "5.15.0", LabelNodeEBPFLevel: "basic"}),
			node("c", nil),
			node("d", map[string]string{LabelNodeEBPFLevel: "turbo"}),
		}, false)
	want := Capabilities{Ztunnel: true, Cilium: false, MeshNamespaces: []string{"istio-system", "mesh-cni"},
		Nodes: NodeCapabilities{Known: true, Kernel: KernelVersion{5, 15, 0}, EBPF: EBPFBasic}}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err == nil || !strings.Contains(err.Error(), "node d: label meshshift.io/ebpf-level") {
		t.Errorf("error %v, want one naming node d's label", err)
	}
}
