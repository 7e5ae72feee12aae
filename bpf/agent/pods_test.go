package agent_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/meshshift/meshshift/bpf/agent"
	"github.com/meshshift/meshshift/test/harness"
)

// TestInformerPodsNamesThisNodesPods runs the node-local informer against a
// real API server: it knows the pods bound to its node, by UID, with their
// workload names, and not the pods of other nodes.
func TestInformerPodsNamesThisNodesPods(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs the control-plane harness (kube-apiserver, etcd from the assets); run without -short")
	}
	c := harness.Start(t, harness.Options{})
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	mk := func(name, node string, owner *metav1.OwnerReference, labels map[string]string) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
		}
		if owner != nil {
			p.OwnerReferences = []metav1.OwnerReference{*owner}
		}
		got, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	rs := &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d8f7b9c4", UID: "11111111-2222-4333-8444-555555555555", Controller: ptr.To(true)}
	web := mk("web-5d8f7b9c4-x7k2p", "node-a", rs, map[string]string{"pod-template-hash": "5d8f7b9c4"})
	other := mk("elsewhere", "node-b", nil, nil)

	ip, err := agent.NewInformerPods(ctx, cs, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	m, ok := ip.Pod(string(web.UID))
	if want := (agent.PodMeta{Namespace: "default", Name: web.Name, Workload: "web"}); !ok || m != want {
		t.Errorf("web pod: %+v %v, want %+v", m, ok, want)
	}
	if _, ok := ip.Pod(string(other.UID)); ok {
		t.Error("a pod of another node is known")
	}
	// A pod created later shows up; a deleted one goes.
	late := mk("late", "node-a", nil, nil)
	if err := cs.CoreV1().Pods("default").Delete(ctx, web.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, lateOK := ip.Pod(string(late.UID))
		_, webOK := ip.Pod(string(web.UID))
		if lateOK && !webOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after create and delete: late known %v, deleted web known %v", lateOK, webOK)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := agent.NewInformerPods(ctx, cs, ""); err == nil {
		t.Error("an informer without a node name started")
	}
}
