package harness

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// The real node's network. One real node runs on a machine at a time (a
// file lock serializes test binaries): kube-proxy owns machine-wide nftables
// tables, so two nodes would fight over them.
const (
	// BridgeName is the CNI bridge the node's pods attach to.
	BridgeName = "meshshift0"
	// NodeIP is the bridge's address: the node's InternalIP, where the API
	// server, kubelet and NodePorts listen.
	NodeIP = "10.244.0.1"
	// PodCIDR is the pods' range, on the bridge.
	PodCIDR = "10.244.0.0/24"
	// ServiceCIDR is the ClusterIP range (envtest's API server default);
	// the kubernetes Service is its first address.
	ServiceCIDR = "10.0.0.0/24"
	// APIServiceIP is the kubernetes Service's ClusterIP.
	APIServiceIP = "10.0.0.1"
	// guardTable is the nftables table that keeps pod traffic on the bridge.
	guardTable = "meshshift_harness_guard"
	// ipForward is the sysctl ClusterIP traffic from pods needs (DNAT, then
	// forwarded back onto the bridge).
	ipForward = "/proc/sys/net/ipv4/ip_forward"
)

// nodeLockPath is the machine-wide lock of the real node.
func nodeLockPath() string { return filepath.Join(os.TempDir(), "meshshift-real-node.lock") }

// lockNode takes the machine-wide real-node lock, waiting for another test
// binary's node to go. The kernel drops it if this process dies.
func lockNode() (*os.File, error) {
	f, err := os.OpenFile(nodeLockPath(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open real node lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("take real node lock: %w", err)
	}
	return f, nil
}

// run runs a command (ip, nft) and returns its error with its output.
func runCmd(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// guardRules keeps pods' traffic on the machine: nothing is forwarded from
// the bridge to another interface, or from another interface onto it (the
// API server and kubelet on the bridge address are input, not forwarding).
func guardRules() string {
	return fmt.Sprintf(`table inet %[1]s {
	chain forward {
		type filter hook forward priority filter - 10; policy accept;
		iifname "%[2]s" oifname != "%[2]s" drop
		iifname != "%[2]s" oifname "%[2]s" drop
	}
}
`, guardTable, BridgeName)
}

// netUp creates the bridge with the node address, the route that keeps
// ClusterIP traffic on it, the forwarding guard, and turns IP forwarding on.
// It returns what to restore: the previous ip_forward value.
func netUp() (prevForward []byte, err error) {
	prevForward, err = os.ReadFile(ipForward)
	if err != nil {
		return nil, fmt.Errorf("read ip_forward: %w", err)
	}
	steps := [][]string{
		{"ip", "link", "add", BridgeName, "type", "bridge"},
		{"ip", "addr", "add", NodeIP + "/24", "dev", BridgeName},
		{"ip", "link", "set", BridgeName, "up"},
		{"ip", "route", "add", ServiceCIDR, "dev", BridgeName, "src", NodeIP},
	}
	for _, s := range steps {
		if err := runCmd(s[0], s[1:]...); err != nil {
			return prevForward, fmt.Errorf("set up node network: %w", err)
		}
	}
	nft := exec.Command("nft", "-f", "-")
	nft.Stdin = strings.NewReader(guardRules())
	if out, err := nft.CombinedOutput(); err != nil {
		return prevForward, fmt.Errorf("install forwarding guard: %w: %s", err, out)
	}
	if err := os.WriteFile(ipForward, []byte("1\n"), 0o644); err != nil {
		return prevForward, fmt.Errorf("enable ip_forward: %w", err)
	}
	return prevForward, nil
}

// kubeProxyTables are the nftables tables kube-proxy's nftables mode creates
// and does not remove when it stops.
var kubeProxyTables = [][2]string{{"ip", "kube-proxy"}, {"ip6", "kube-proxy"}}

// netDown removes everything netUp and kube-proxy made, whatever exists of
// it; prevForward (nil: leave it) is written back to ip_forward.
func netDown(prevForward []byte) error {
	var errs []error
	if prevForward != nil {
		if err := os.WriteFile(ipForward, prevForward, 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore ip_forward: %w", err))
		}
	}
	tables := append([][2]string{{"inet", guardTable}}, kubeProxyTables...)
	for _, t := range tables {
		if exec.Command("nft", "list", "table", t[0], t[1]).Run() == nil {
			if err := runCmd("nft", "delete", "table", t[0], t[1]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if _, err := net.InterfaceByName(BridgeName); err == nil {
		// Deleting the bridge removes its address and routes.
		if err := runCmd("ip", "link", "del", BridgeName); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// netLeftovers lists what of the node's network still exists.
func netLeftovers() []string {
	var left []string
	if _, err := net.InterfaceByName(BridgeName); err == nil {
		left = append(left, "bridge "+BridgeName)
	}
	tables := append([][2]string{{"inet", guardTable}}, kubeProxyTables...)
	for _, t := range tables {
		if exec.Command("nft", "list", "table", t[0], t[1]).Run() == nil {
			left = append(left, "nft table "+t[0]+" "+t[1])
		}
	}
	if out, err := exec.Command("ip", "-o", "route", "show", ServiceCIDR).Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		left = append(left, "route "+string(bytes.TrimSpace(out)))
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, "veth") {
			if master, err := os.Readlink(filepath.Join("/sys/class/net", i.Name, "master")); err == nil && filepath.Base(master) == BridgeName {
				left = append(left, "veth "+i.Name)
			}
		}
	}
	return left
}
