package signals

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// PodIPs maps the addresses of running pods to their workloads, so that the
// peers the node agents report (AgentPeer) resolve to the workloads that
// called. It holds status.podIPs of every running pod that is not on the
// host network (a host-network pod's address is its node's and names no
// workload). When two pods claim one address (a pod's address reused before
// the old pod's status caught up), the newer pod, by creation time, owns it.
// Feed it from a Pod informer (EventHandler, WatchPodIPs).
type PodIPs struct {
	// CronJobOf, when set, names the CronJob that controls a Job; a Job's
	// pods then resolve to that CronJob, as plan and the webhook key them.
	// It is called from Resolve, never from an informer's handler.
	CronJobOf func(namespace, job string) (cronJob string, ok bool)

	mu    sync.RWMutex
	byIP  map[netip.Addr]map[types.UID]*podIPOwner
	byPod map[types.UID][]netip.Addr
}

// podIPOwner is what one pod says of the addresses it holds.
type podIPOwner struct {
	namespace string
	workload  string // WorkloadName of the pod
	job       string // the controlling Job's name, "" when not a Job's pod
	created   metav1.Time
	name      string
}

// NewPodIPs returns an empty index.
func NewPodIPs() *PodIPs {
	return &PodIPs{byIP: map[netip.Addr]map[types.UID]*podIPOwner{}, byPod: map[types.UID][]netip.Addr{}}
}

// ParsePeerIP parses an address as the node agents report it, unmapping an
// IPv4-mapped IPv6 address; ok is false for anything else.
func ParsePeerIP(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// Upsert records (or replaces) what pod holds. A pod that is not running,
// runs on the host network or has no address holds nothing.
func (ix *PodIPs) Upsert(pod *corev1.Pod) {
	if pod == nil {
		return
	}
	var addrs []netip.Addr
	if pod.Status.Phase == corev1.PodRunning && !pod.Spec.HostNetwork {
		seen := map[netip.Addr]bool{}
		add := func(s string) {
			if a, ok := ParsePeerIP(s); ok && !seen[a] {
				seen[a] = true
				addrs = append(addrs, a)
			}
		}
		for _, ip := range pod.Status.PodIPs {
			add(ip.IP)
		}
		add(pod.Status.PodIP)
	}
	owner := &podIPOwner{namespace: pod.Namespace, created: pod.CreationTimestamp, name: pod.Name}
	var kind, name string
	if c := metav1.GetControllerOf(pod); c != nil {
		kind, name = c.Kind, c.Name
	}
	owner.workload = WorkloadName(kind, name, pod.Name, pod.Labels)
	if kind == "Job" {
		owner.job = name
	}

	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.removeLocked(pod.UID)
	if len(addrs) == 0 {
		return
	}
	ix.byPod[pod.UID] = addrs
	for _, a := range addrs {
		m := ix.byIP[a]
		if m == nil {
			m = map[types.UID]*podIPOwner{}
			ix.byIP[a] = m
		}
		m[pod.UID] = owner
	}
}

// Delete forgets a pod's addresses.
func (ix *PodIPs) Delete(uid types.UID) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.removeLocked(uid)
}

func (ix *PodIPs) removeLocked(uid types.UID) {
	for _, a := range ix.byPod[uid] {
		if m := ix.byIP[a]; m != nil {
			delete(m, uid)
			if len(m) == 0 {
				delete(ix.byIP, a)
			}
		}
	}
	delete(ix.byPod, uid)
}

// Len is how many addresses the index holds.
func (ix *PodIPs) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.byIP)
}

// Resolve returns the workload of the running pod that holds ip; ok is false
// for an address no such pod holds (a node, a host-network pod, something
// outside the cluster, loopback) or that does not parse.
func (ix *PodIPs) Resolve(ip string) (WorkloadKey, bool) {
	a, ok := ParsePeerIP(ip)
	if !ok {
		return WorkloadKey{}, false
	}
	ix.mu.RLock()
	var best *podIPOwner
	for _, o := range ix.byIP[a] {
		if best == nil || newer(o, best) {
			best = o
		}
	}
	ix.mu.RUnlock()
	if best == nil {
		return WorkloadKey{}, false
	}
	k := WorkloadKey{Namespace: best.namespace, Name: best.workload}
	if best.job != "" && ix.CronJobOf != nil {
		if cj, ok := ix.CronJobOf(best.namespace, best.job); ok && cj != "" {
			k.Name = cj
		}
	}
	return k, true
}

// newer orders two claimants of one address: the later creation time wins,
// then the greater namespace/name, so the answer never depends on map order.
func newer(a, b *podIPOwner) bool {
	if !a.created.Equal(&b.created) {
		return b.created.Before(&a.created)
	}
	if a.namespace != b.namespace {
		return a.namespace > b.namespace
	}
	return a.name > b.name
}

// EventHandler feeds the index from a Pod informer.
func (ix *PodIPs) EventHandler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				ix.Upsert(p)
			}
		},
		UpdateFunc: func(_, obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				ix.Upsert(p)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				ix.Delete(p.UID)
			}
		},
	}
}

// WatchPodIPs feeds ix from the informers' Pod informer.
func WatchPodIPs(ctx context.Context, informers Informers, ix *PodIPs) error {
	inf, err := informers.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return fmt.Errorf("get pod informer: %w", err)
	}
	if _, err := inf.AddEventHandler(ix.EventHandler()); err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	return nil
}
