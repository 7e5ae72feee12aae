package agent

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/meshshift/meshshift/bpf"
)

// fakeCounters stands in for the kernel maps; ids are inode numbers of
// folders in a temporary tree, laid out like the kubelet's.
type fakeCounters struct {
	stats     map[uint64]*bpf.Stats
	forgotten []uint64
	failFor   map[uint64]bool
}

func (f *fakeCounters) Read() (map[uint64]*bpf.Stats, error) {
	out := map[uint64]*bpf.Stats{}
	for id, s := range f.stats {
		c := *s
		out[id] = &c
	}
	return out, nil
}

func (f *fakeCounters) Forget(ids []uint64) error {
	for _, id := range ids {
		if f.failFor[id] {
			return errors.New("delete failed")
		}
		delete(f.stats, id)
		f.forgotten = append(f.forgotten, id)
	}
	return nil
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestCollectorKeepsCountersOfRemovedContainers(t *testing.T) {
	const uid = "0f5c3a2e-8b1d-4c6e-9a7f-1234567890ab"
	root := t.TempDir()
	pod := filepath.Join(root, "kubepods", "pod"+uid)
	c1 := filepath.Join(pod, "4b825dc642cb6eb9a060e54bf8d69288fbee49044b825dc642cb6eb9a060e54b")
	c2 := filepath.Join(pod, "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391e69de29bb2d1d6434b8b29ae")
	other := filepath.Join(root, "system.slice", "sshd.service")
	for _, d := range []string{c1, c2, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	id1, id2, idOther := inode(t, c1), inode(t, c2), inode(t, other)
	fc := &fakeCounters{stats: map[uint64]*bpf.Stats{
		0:       {KernelStats: bpf.KernelStats{ResetsSent: 1}},
		id1:     {KernelStats: bpf.KernelStats{ConnPassiveOpened: 3}},
		id2:     {KernelStats: bpf.KernelStats{ConnPassiveOpened: 4}},
		idOther: {KernelStats: bpf.KernelStats{ConnActiveOpened: 5}},
	}}
	now := time.Unix(1000, 0)
	col := NewCollector(fc, root, StaticPods{uid: {Namespace: "shop", Name: "web-1", Workload: "web"}}, func() time.Time { return now })

	agg, err := col.Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(agg.Pods) != 1 || !agg.Pods[0].Known || agg.Pods[0].Stats.ConnPassiveOpened != 7 {
		t.Fatalf("pods: %+v, want web-1 with 7 accepted connections", agg.Pods)
	}
	if agg.Unattributed.ConnActiveOpened != 5 || agg.Unattributed.ResetsSent != 1 {
		t.Errorf("unattributed %+v, want the system service's 5 connections and the socketless reset", agg.Unattributed)
	}

	// The first container goes away (its counters with it), the second
	// keeps counting: the pod's counter must not go down.
	if err := os.Remove(c1); err != nil {
		t.Fatal(err)
	}
	fc.stats[id2].ConnPassiveOpened = 6
	now = now.Add(time.Minute) // past the walk interval
	if agg, err = col.Collect(); err != nil {
		t.Fatal(err)
	}
	if got := agg.Pods[0].Stats.ConnPassiveOpened; got != 9 {
		t.Errorf("pod after a container went: %d accepted, want 3 + 6", got)
	}
	if len(fc.forgotten) != 1 || fc.forgotten[0] != id1 {
		t.Errorf("forgotten %v, want [%d]", fc.forgotten, id1)
	}

	// A removal the kernel refuses is not retired (it would count twice).
	if err := os.Remove(c2); err != nil {
		t.Fatal(err)
	}
	fc.failFor = map[uint64]bool{id2: true}
	now = now.Add(time.Minute)
	if agg, err = col.Collect(); err == nil {
		t.Error("a failed forget was not reported")
	}
	if got := agg.Pods[0].Stats.ConnPassiveOpened; got != 9 {
		t.Errorf("pod after a failed forget: %d, want 3 retired + 6 still in the kernel", got)
	}
	// Next time the kernel lets go: retired once, not twice.
	fc.failFor = nil
	now = now.Add(time.Minute)
	if agg, err = col.Collect(); err != nil {
		t.Fatal(err)
	}
	if got := agg.Pods[0].Stats.ConnPassiveOpened; got != 9 {
		t.Errorf("pod after the retried forget: %d, want 9", got)
	}
}

func TestCgroup2UnderFindsTheHybridLayout(t *testing.T) {
	mnt, err := bpf.Cgroup2Mount()
	if err != nil {
		t.Skipf("no cgroup v2 mount: %v", err)
	}
	got, err := cgroup2Under(mnt)
	if err != nil || got != mnt {
		t.Errorf("cgroup2Under(%s) = %s, %v; want the mount itself", mnt, got, err)
	}
	if filepath.Base(mnt) == "unified" {
		// Hybrid host: the parent is the v1 tmpfs.
		if got, err := cgroup2Under(filepath.Dir(mnt)); err != nil || got != mnt {
			t.Errorf("cgroup2Under(%s) = %s, %v; want %s", filepath.Dir(mnt), got, err, mnt)
		}
	}
	if _, err := cgroup2Under(t.TempDir()); err == nil {
		t.Error("a temporary folder passed as a cgroup v2 root")
	}
}
