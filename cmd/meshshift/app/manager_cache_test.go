package app

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestTrimPodKeepsWhatTheManagerReads(t *testing.T) {
	now := metav1.Now()
	meta := metav1.ObjectMeta{
		Name: "web-1", Namespace: "shop", UID: "u1", CreationTimestamp: now, DeletionTimestamp: &now,
		Labels:          map[string]string{"app": "web", "meshshift.io/dataplane": "sidecar"},
		Annotations:     map[string]string{"meshshift.io/decision": "sidecar"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f", UID: "rs", Controller: ptr.To(true)}},
	}
	full := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: *meta.DeepCopy(),
		Spec: corev1.PodSpec{
			NodeName: "node-1", HostNetwork: true, ServiceAccountName: "default",
			InitContainers: []corev1.Container{{Name: "istio-init", Image: "istio/proxyv2"}},
			Containers: []corev1.Container{{Name: "app", Image: "shop/web:1", Env: []corev1.EnvVar{{Name: "A", Value: "b"}},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}}},
				{Name: "istio-proxy", Image: "istio/proxyv2"}},
			Volumes: []corev1.Volume{{Name: "token"}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.244.0.5", PodIPs: []corev1.PodIP{{IP: "10.244.0.5"}, {IP: "fd00::5"}},
			HostIP: "10.0.0.1", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true}},
		},
	}
	full.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}}
	got, err := trimPod(full)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Pod{
		TypeMeta:   full.TypeMeta,
		ObjectMeta: meta,
		Spec: corev1.PodSpec{NodeName: "node-1", HostNetwork: true,
			InitContainers: []corev1.Container{{Name: "istio-init"}},
			Containers:     []corev1.Container{{Name: "app"}, {Name: "istio-proxy"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.5", PodIPs: full.Status.PodIPs,
			HostIP: "10.0.0.1", Conditions: full.Status.Conditions},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trimmed pod (-want +got):\n%s", diff)
	}
	// Anything else passes through untouched.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	if got, _ := trimPod(ns); got != ns {
		t.Errorf("trimPod changed a Namespace: %v", got)
	}
}
