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
	linuxOnly := func(d appsv1.DaemonSet) appsv1.DaemonSet {
		d.Spec.Template.Spec.NodeSelector = map[string]string{LabelNodeOS: "linux"}
		return d
	}
	c, err := DetectCapabilities(
		[]appsv1.DaemonSet{linuxOnly(ds("istio-system", "ztunnel", 3)), ds("kube-system", "cilium", 0), ds("mesh-cni", "istio-cni-node", 3)},
		[]appsv1.Deployment{{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istiod"}}, {ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}},
		[]corev1.Node{
			node("a", map[string]string{LabelNodeKernel: "6.8.0", LabelNodeEBPFLevel: "full", LabelNodeOS: "linux"}),
			node("b", map[string]string{LabelNodeKernel: "5.15.0", LabelNodeEBPFLevel: "basic", LabelNodeOS: "linux"}),
			node("c", map[string]string{LabelNodeOS: "windows"}),
			node("d", map[string]string{LabelNodeEBPFLevel: "turbo"}),
		}, false)
	want := Capabilities{Ztunnel: true, Cilium: false, MeshNamespaces: []string{"istio-system", "mesh-cni"},
		Nodes: NodeCapabilities{Known: true, Kernel: KernelVersion{5, 15, 0}, EBPF: EBPFBasic},
		// ztunnel runs only on the Linux nodes; Cilium's DaemonSet selects every node.
		ZtunnelNodes: []map[string]string{
			{LabelNodeKernel: "6.8.0", LabelNodeEBPFLevel: "full", LabelNodeOS: "linux"},
			{LabelNodeKernel: "5.15.0", LabelNodeEBPFLevel: "basic", LabelNodeOS: "linux"},
		},
		CiliumNodes: []map[string]string{
			{LabelNodeKernel: "6.8.0", LabelNodeEBPFLevel: "full", LabelNodeOS: "linux"},
			{LabelNodeKernel: "5.15.0", LabelNodeEBPFLevel: "basic", LabelNodeOS: "linux"},
			{LabelNodeOS: "windows"},
			{LabelNodeEBPFLevel: "turbo"},
		},
		NodesKnown: true}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err == nil || !strings.Contains(err.Error(), "node d: label meshshift.io/ebpf-level") {
		t.Errorf("error %v, want one naming node d's label", err)
	}
}
