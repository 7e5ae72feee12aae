package app

import (
	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// cacheOptions are the manager's informer caches: every object without its
// managedFields (nothing reads them from the cache), and pods trimmed to
// what the manager reads of them (trimPod): with ten thousand pods, the
// pods' containers, volumes and container statuses were most of the heap.
func cacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         map[client.Object]cache.ByObject{&corev1.Pod{}: {Transform: trimPod}},
	}
}

var _ toolscache.TransformFunc = trimPod

// trimPod keeps of a pod what the manager's readers of the pod cache use:
// its metadata but managedFields (the missed-decision detector: namespace,
// annotations, deletion; the callers' address index: name, UID, owner,
// labels, creation time; the migrator: labels and annotations), whether it
// runs on the host network and where, its containers' names (the migrator
// looks for istio-proxy), and its phase, addresses and conditions. A reader
// of another field must add it here.
func trimPod(in any) (any, error) {
	p, ok := in.(*corev1.Pod)
	if !ok {
		return in, nil
	}
	names := func(cs []corev1.Container) []corev1.Container {
		if len(cs) == 0 {
			return nil
		}
		out := make([]corev1.Container, len(cs))
		for i, c := range cs {
			out[i] = corev1.Container{Name: c.Name}
		}
		return out
	}
	out := &corev1.Pod{
		TypeMeta:   p.TypeMeta,
		ObjectMeta: p.ObjectMeta,
		Spec: corev1.PodSpec{
			NodeName:       p.Spec.NodeName,
			HostNetwork:    p.Spec.HostNetwork,
			InitContainers: names(p.Spec.InitContainers),
			Containers:     names(p.Spec.Containers),
		},
		Status: corev1.PodStatus{
			Phase:      p.Status.Phase,
			Conditions: p.Status.Conditions,
			HostIP:     p.Status.HostIP,
			HostIPs:    p.Status.HostIPs,
			PodIP:      p.Status.PodIP,
			PodIPs:     p.Status.PodIPs,
			StartTime:  p.Status.StartTime,
		},
	}
	out.ManagedFields = nil
	return out, nil
}
