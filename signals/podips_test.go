package signals_test

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/meshshift/meshshift/signals"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// runningPod is a running pod of namespace ns owned by (kind, owner), created
// at t0+age, holding ips.
func runningPod(ns, name, uid, kind, owner string, age time.Duration, ips ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid),
		CreationTimestamp: metav1.NewTime(t0.Add(age))}}
	if owner != "" {
		yes := true
		p.OwnerReferences = []metav1.OwnerReference{{Kind: kind, Name: owner, Controller: &yes}}
	}
	p.Status.Phase = corev1.PodRunning
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	if len(ips) > 0 {
		p.Status.PodIP = ips[0]
	}
	return p
}

func TestPodIPsResolve(t *testing.T) {
	ix := signals.NewPodIPs()
	ix.CronJobOf = func(ns, job string) (string, bool) {
		if ns == "batch" && job == "nightly-29000000" {
			return "nightly", true
		}
		return "", false
	}
	web := runningPod("shop", "web-7d9f8-abcde", "u-web", "ReplicaSet", "web-7d9f8", 0, "10.0.0.5", "fd00::5")
	web.Labels = map[string]string{"pod-template-hash": "7d9f8"}
	hostNet := runningPod("kube-system", "proxy-x", "u-host", "DaemonSet", "proxy", 0, "192.168.1.10")
	hostNet.Spec.HostNetwork = true
	pending := runningPod("shop", "cart-0", "u-pending", "StatefulSet", "cart", 0, "10.0.0.6")
	pending.Status.Phase = corev1.PodPending
	bare := runningPod("tools", "netshoot", "u-bare", "", "", 0, "10.0.0.7")
	job := runningPod("batch", "nightly-29000000-q", "u-job", "Job", "nightly-29000000", 0, "10.0.0.8")
	other := runningPod("batch", "once-x", "u-once", "Job", "once", 0, "10.0.0.9")
	for _, p := range []*corev1.Pod{web, hostNet, pending, bare, job, other} {
		ix.Upsert(p)
	}
	for _, tc := range []struct {
		ip   string
		want string // "" means not a caller
	}{
		{"10.0.0.5", "shop/web"},
		{"fd00::5", "shop/web"},
		{"fd00:0:0::5", "shop/web"},     // another spelling of the same address
		{"::ffff:10.0.0.5", "shop/web"}, // IPv4-mapped
		{"192.168.1.10", ""},            // host network: the node's address
		{"10.0.0.6", ""},                // not running
		{"10.0.0.7", "tools/netshoot"},  // a bare pod is its own workload
		{"10.0.0.8", "batch/nightly"},   // a CronJob's run
		{"10.0.0.9", "batch/once"},      // a Job no CronJob controls
		{"10.9.9.9", ""},                // no pod
		{"127.0.0.6", ""},
		{"not-an-ip", ""},
		{"fe80::1%eth0", ""},
	} {
		k, ok := ix.Resolve(tc.ip)
		got := ""
		if ok {
			got = k.String()
		}
		if got != tc.want {
			t.Errorf("Resolve(%s) = %q, want %q", tc.ip, got, tc.want)
		}
	}
	if n := ix.Len(); n != 5 {
		t.Errorf("index holds %d addresses, want 5 (web's two, netshoot's, the two Job pods' and none of the others)", n)
	}
}

// TestPodIPsReuse: an address still claimed by an old pod whose status has
// not caught up resolves to the newer pod; when the newer pod goes, to the old
// one again; a pod that stops running gives its addresses up.
func TestPodIPsReuse(t *testing.T) {
	ix := signals.NewPodIPs()
	h := ix.EventHandler()
	old := runningPod("a", "old-1", "u-old", "StatefulSet", "old", 0, "10.1.0.1")
	newer := runningPod("b", "new-1", "u-new", "StatefulSet", "new", time.Minute, "10.1.0.1")
	h.OnAdd(newer, false)
	h.OnAdd(old, false)
	if k, _ := ix.Resolve("10.1.0.1"); k.String() != "b/new" {
		t.Fatalf("reused address resolves to %s, want b/new", k)
	}
	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "b/new-1", Obj: newer})
	if k, _ := ix.Resolve("10.1.0.1"); k.String() != "a/old" {
		t.Fatalf("after the newer pod went: %s, want a/old", k)
	}
	done := old.DeepCopy()
	done.Status.Phase = corev1.PodSucceeded
	h.OnUpdate(old, done)
	if k, ok := ix.Resolve("10.1.0.1"); ok {
		t.Fatalf("a finished pod's address resolves to %s", k)
	}
	// An update that changes the address moves it.
	moved := runningPod("a", "old-1", "u-old", "StatefulSet", "old", 0, "10.1.0.2")
	h.OnUpdate(done, moved)
	if _, ok := ix.Resolve("10.1.0.1"); ok {
		t.Error("the old address still resolves")
	}
	if k, _ := ix.Resolve("10.1.0.2"); k.String() != "a/old" {
		t.Errorf("the new address resolves to %s, want a/old", k)
	}
	if n := ix.Len(); n != 1 {
		t.Errorf("index holds %d addresses, want 1", n)
	}
}
