package kerneltest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshshift/meshshift/bpf"
)

// moveMu serialises moving the process between cgroups.
var moveMu sync.Mutex

// RequireRoot skips the test under -short (the unit-test run) and unless it
// runs as root with a cgroup v2 mount, saying which is missing.
func RequireRoot(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: kernel test (loads eBPF programs as root); run without -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF, CAP_NET_ADMIN, cgroup writes)")
	}
	mnt, err := bpf.Cgroup2Mount()
	if err != nil {
		t.Skipf("needs a cgroup v2 mount: %v", err)
	}
	return mnt
}

// RandName returns prefix followed by 8 random hex digits.
func RandName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Cgroup creates the cgroup v2 folder parent/name (and missing parents below
// parent) and removes it, deepest first, at cleanup. It returns the path.
func Cgroup(t testing.TB, parent, name string) string {
	t.Helper()
	p := filepath.Join(parent, name)
	rel := strings.Split(name, string(filepath.Separator))
	created := []string{}
	cur := parent
	for _, r := range rel {
		cur = filepath.Join(cur, r)
		if _, err := os.Stat(cur); err == nil {
			continue
		}
		if err := os.Mkdir(cur, 0o755); err != nil {
			t.Fatalf("create cgroup %s: %v", cur, err)
		}
		created = append(created, cur)
	}
	t.Cleanup(func() {
		for i := len(created) - 1; i >= 0; i-- {
			removeCgroup(t, created[i])
		}
	})
	return p
}

func removeCgroup(t testing.TB, p string) {
	// Children first (tests may have made more below).
	entries, _ := os.ReadDir(p)
	for _, e := range entries {
		if e.IsDir() {
			removeCgroup(t, filepath.Join(p, e.Name()))
		}
	}
	var err error
	for i := 0; i < 50; i++ {
		if err = unix.Rmdir(p); err == nil || errors.Is(err, unix.ENOENT) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("remove cgroup %s: %v", p, err)
}

// ID returns the cgroup id of path.
func ID(t testing.TB, path string) uint64 {
	t.Helper()
	id, err := bpf.CgroupID(path)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// InCgroup runs fn with the whole process moved into the cgroup path, then
// moves it back. Sockets created by fn (and connections accepted later on
// listeners created by fn) belong to that cgroup.
func InCgroup(t testing.TB, mnt, path string, fn func()) {
	t.Helper()
	moveMu.Lock()
	defer moveMu.Unlock()
	orig, err := bpf.ProcessCgroup(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if err := bpf.MoveProcess(path); err != nil {
		t.Fatalf("move to cgroup %s: %v", path, err)
	}
	defer func() {
		if err := bpf.MoveProcess(orig); err != nil {
			t.Errorf("move back to cgroup %s: %v", orig, err)
		}
	}()
	fn()
}

// Netns is a network namespace made by the test.
type Netns struct {
	Name string
	fd   int
}

// Run runs command args with output captured; it fails the test on error.
func Run(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// NewNetns creates a named network namespace with lo up and deletes it at
// cleanup.
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	name := RandName("mstest-")
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("delete netns %s: %v: %s", name, err, out)
		}
	})
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	fd, err := unix.Open("/var/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &Netns{Name: name, fd: fd}
}

// Do runs fn on an OS thread inside the namespace; sockets fn creates live
// there.
func (n *Netns) Do(t testing.TB, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter netns: %w", err)
			return
		}
		fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			done <- fmt.Errorf("leave netns: %w", err)
			return
		}
		runtime.UnlockOSThread()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// VethPair connects two namespaces with a veth pair addressed aIP/24 and
// bIP/24 (the pair goes away with the namespaces).
func VethPair(t testing.TB, a, b *Netns, aIP, bIP string) {
	t.Helper()
	va, vb := Veth(t, a, b)
	Run(t, "ip", "-n", a.Name, "addr", "add", aIP+"/24", "dev", va)
	Run(t, "ip", "-n", b.Name, "addr", "add", bIP+"/24", "dev", vb)
}

// Veth connects two namespaces with a veth pair that is up and has no
// address yet; it returns the device names in a and in b (the pair goes away
// with the namespaces).
func Veth(t testing.TB, a, b *Netns) (string, string) {
	t.Helper()
	va, vb := RandName("msa"), RandName("msb")
	Run(t, "ip", "link", "add", va, "netns", a.Name, "type", "veth", "peer", "name", vb, "netns", b.Name)
	Run(t, "ip", "-n", a.Name, "link", "set", va, "up")
	Run(t, "ip", "-n", b.Name, "link", "set", vb, "up")
	return va, vb
}

// AddAddr adds the address with prefix (for example "10.0.0.1/24" or
// "fd00::1/64") to the device dev in n; IPv6 addresses skip duplicate
// address detection, so they can be used at once.
func (n *Netns) AddAddr(t testing.TB, dev, prefix string) {
	t.Helper()
	args := []string{"ip", "-n", n.Name, "addr", "add", prefix, "dev", dev}
	if strings.Contains(prefix, ":") {
		args = append(args, "nodad")
	}
	Run(t, args...)
}
