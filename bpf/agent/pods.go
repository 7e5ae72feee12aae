package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/meshshift/meshshift/signals"
)

// PodMeta names a pod and its workload.
type PodMeta struct {
	Namespace string
	Name      string
	// Workload is signals.WorkloadName of the pod.
	Workload string
}

// PodResolver names pods by UID.
type PodResolver interface {
	Pod(uid string) (PodMeta, bool)
}

// StaticPods is a fixed PodResolver (tests, benchmarks, the CLI's offline use).
type StaticPods map[string]PodMeta

// Pod implements PodResolver.
func (s StaticPods) Pod(uid string) (PodMeta, bool) {
	m, ok := s[uid]
	return m, ok
}

// MetaOf returns the PodMeta of a pod object.
func MetaOf(p *corev1.Pod) PodMeta {
	var kind, name string
	for _, o := range p.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			kind, name = o.Kind, o.Name
			break
		}
	}
	return PodMeta{Namespace: p.Namespace, Name: p.Name, Workload: signals.WorkloadName(kind, name, p.Name, p.Labels)}
}

// InformerPods resolves pods through an informer over the pods of one node
// (field selector spec.nodeName).
type InformerPods struct {
	mu   sync.RWMutex
	byID map[types.UID]PodMeta
}

// NewInformerPods starts a node-local pod informer and waits for its first
// list. It stops when ctx is done.
func NewInformerPods(ctx context.Context, cs kubernetes.Interface, node string) (*InformerPods, error) {
	if node == "" {
		return nil, fmt.Errorf("node name: must not be empty")
	}
	ip := &InformerPods{byID: map[types.UID]PodMeta{}}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 10*time.Minute,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
		}))
	inf := f.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { ip.set(obj) },
		UpdateFunc: func(_, obj any) { ip.set(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				ip.mu.Lock()
				delete(ip.byID, p.UID)
				ip.mu.Unlock()
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("add pod event handler: %w", err)
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, fmt.Errorf("sync pod informer: %w", ctx.Err())
	}
	return ip, nil
}

func (ip *InformerPods) set(obj any) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	m := MetaOf(p)
	ip.mu.Lock()
	ip.byID[p.UID] = m
	ip.mu.Unlock()
}

// Pod implements PodResolver.
func (ip *InformerPods) Pod(uid string) (PodMeta, bool) {
	ip.mu.RLock()
	defer ip.mu.RUnlock()
	m, ok := ip.byID[types.UID(uid)]
	return m, ok
}
