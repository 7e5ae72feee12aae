package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// nodeBinaries are the processes of a real node; only ones run from the
// asset cache are theirs.
var nodeBinaries = map[string]bool{"containerd": true, "containerd-shim-runc-v2": true, "kubelet": true, "kube-proxy": true}

// cgroupRoot is where the cgroup hierarchies are mounted (v1 controllers and
// the cgroup2 "unified" one on this kind of host).
const cgroupRoot = "/sys/fs/cgroup"

// hostPaths are the machine paths a real node's parts create outside their
// configured folders (libcni's result cache, containerd's shim sockets,
// kubelet's /var/log/containers links, ...). Those that did not exist before
// the node started are removed with it.
var hostPaths = []string{
	"/var/lib/cni", "/run/containerd", "/var/log/containers", "/var/log/pods", "/var/lib/kubelet",
	"/var/lib/containerd", "/opt/containerd", "/run/nri", "/etc/cni", "/opt/cni", "/run/netns",
	"/etc/kubernetes", "/usr/libexec/kubernetes",
}

// HostPathsPresent tells which of the machine paths a node may create exist now.
func HostPathsPresent() map[string]bool {
	out := map[string]bool{}
	for _, p := range hostPaths {
		if _, err := os.Lstat(p); err == nil {
			out[p] = true
		}
	}
	return out
}

func hostPathsPresent() map[string]bool { return HostPathsPresent() }

// stopNode removes the real node: pods first (so kubelet stops their
// containers and containerd tears their networks down), then kube-proxy,
// kubelet and containerd, then whatever is left: container processes,
// mounts, the kubepods cgroups in every hierarchy, the bridge, nftables
// tables, routes and host paths the node created. It releases the node lock.
func (c *Cluster) stopNode() error {
	n := c.Node
	var errs []error
	// Nothing may re-create pods while they go.
	c.stopNamed("kube-controller-manager", "kube-scheduler")
	if p := c.proc("kubelet"); p != nil && !p.exited() && c.Client != nil {
		if err := c.deletePods(); err != nil {
			errs = append(errs, err)
		}
	}
	c.stopNamed("kube-proxy", "kubelet", "containerd")
	if err := sweepNode(n); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// release removes the node's network and the host paths it created, and
// releases the node lock; after the API server (on the bridge) stopped.
func (n *Node) release() error {
	var errs []error
	if err := netDown(n.prevForward); err != nil {
		errs = append(errs, err)
	}
	if n.tablesBefore != nil {
		if err := removeKubeletTables(n.tablesBefore); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range hostPaths {
		if n.before != nil && !n.before[p] {
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", p, err))
			}
		}
	}
	if n.lock != nil {
		_ = n.lock.Close()
		n.lock = nil
	}
	return errors.Join(errs...)
}

// deletePods deletes every pod with a one-second grace period and waits up
// to 30 seconds for containerd to run no task.
func (c *Cluster) deletePods() error {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods); err != nil {
		return fmt.Errorf("list pods to delete: %w", err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName != c.Node.Name {
			continue
		}
		if err := c.Client.Delete(ctx, p, client.GracePeriodSeconds(1)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out, err := c.Node.ctrOutput(ctx, "tasks", "ls", "-q")
		if err == nil && strings.TrimSpace(out) == "" {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil // sweepNode kills what is still running
}

func (c *Cluster) proc(name string) *process {
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

func (c *Cluster) stopNamed(names ...string) {
	for _, name := range names {
		if p := c.proc(name); p != nil {
			p.stop()
		}
	}
}

// sweepNode kills what is left of node n's processes and containers and
// removes its mounts and kubepods cgroups. With n nil (a run that died), it
// removes what it can recognise without that run's records.
func sweepNode(n *Node) error {
	var errs []error
	killNodeProcesses()
	if err := unmountUnder(nodeMountPrefix(n)); err != nil {
		errs = append(errs, err)
	}
	if err := removeKubepodsCgroups(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// nodeMountPrefix is the folder whose mounts belong to node n; for a dead
// run, any harness scratch folder's node folder.
func nodeMountPrefix(n *Node) func(string) bool {
	if n != nil {
		prefix := n.Dir + "/"
		return func(mp string) bool { return mp == n.Dir || strings.HasPrefix(mp, prefix) }
	}
	tmp := filepath.Join(os.TempDir(), "meshshift-harness-")
	return func(mp string) bool { return strings.HasPrefix(mp, tmp) && strings.Contains(mp, "/node/") }
}

// killNodeProcesses SIGKILLs every process in a kubepods cgroup (the
// containers) and every node binary run from the asset cache (kubelet,
// kube-proxy, containerd and its shims, which outlive containerd), and waits
// up to ten seconds for them to go.
func killNodeProcesses() {
	for range 50 {
		pids := nodePIDs()
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// nodePIDs lists the processes killNodeProcesses kills.
func nodePIDs() []int {
	seen := map[int]bool{}
	self := os.Getpid()
	for _, f := range kubepodsProcsFiles() {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(l); err == nil && pid != self {
				seen[pid] = true
			}
		}
	}
	cache, _ := CacheRoot()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue
		}
		exe = strings.TrimSuffix(exe, " (deleted)")
		if nodeBinaries[filepath.Base(exe)] && cache != "" && strings.HasPrefix(exe, cache+"/") {
			seen[pid] = true
		}
	}
	out := make([]int, 0, len(seen))
	for pid := range seen {
		out = append(out, pid)
	}
	sort.Ints(out)
	return out
}

// kubepodsDirs lists the kubepods cgroup folder of every hierarchy that has one.
func kubepodsDirs() []string {
	hier, _ := os.ReadDir(cgroupRoot)
	var out []string
	for _, h := range hier {
		p := filepath.Join(cgroupRoot, h.Name(), "kubepods")
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

func kubepodsProcsFiles() []string {
	var out []string
	for _, d := range kubepodsDirs() {
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() && e.Name() == "cgroup.procs" {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

// removeKubepodsCgroups removes the kubepods folders, deepest first, retrying
// while the kernel still releases them after their processes died.
func removeKubepodsCgroups() error {
	var last error
	for range 50 {
		last = nil
		for _, d := range kubepodsDirs() {
			var dirs []string
			_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
				if err == nil && e.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			for i := len(dirs) - 1; i >= 0; i-- {
				if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
					last = fmt.Errorf("remove cgroup %s: %w", dirs[i], err)
				}
			}
		}
		if last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return last
}

// mountPoints lists the mount points of this mount namespace matching keep.
func mountPoints(keep func(string) bool) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if keep(mp) {
			out = append(out, mp)
		}
	}
	return out
}

// unescapeMount decodes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountUnder detaches every mount matching keep, deepest first, until none is left.
func unmountUnder(keep func(string) bool) error {
	for range 20 {
		mps := mountPoints(keep)
		if len(mps) == 0 {
			return nil
		}
		sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
		for _, mp := range mps {
			_ = syscall.Unmount(mp, syscall.MNT_DETACH)
		}
	}
	if mps := mountPoints(keep); len(mps) > 0 {
		return fmt.Errorf("mounts left: %s", strings.Join(mps, ", "))
	}
	return nil
}

// WithNodeLock runs fn while holding the machine's real-node lock, so no
// real node (of this or another test binary) starts or stops meanwhile:
// checks of what a node left run under it.
func WithNodeLock(fn func()) error {
	lock, err := lockNode()
	if err != nil {
		return err
	}
	defer func() { _ = lock.Close() }()
	fn()
	return nil
}

// Leftovers lists what of a real node is on the machine now: its processes,
// mounts, kubepods cgroups, kubelet's nftables tables and the node network.
// Empty when no real node runs; call it under WithNodeLock.
func Leftovers() []string {
	var left []string
	for _, pid := range nodePIDs() {
		exe, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
		left = append(left, fmt.Sprintf("process %d (%s)", pid, exe))
	}
	for _, mp := range mountPoints(nodeMountPrefix(nil)) {
		left = append(left, "mount "+mp)
	}
	for _, d := range kubepodsDirs() {
		left = append(left, "cgroup "+d)
	}
	left = append(left, kubeletTableLeftovers()...)
	return append(left, netLeftovers()...)
}
