package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/meshshift/meshshift/test/image"
)

// containerdConfig keeps every file of containerd under the node's folder
// (root, state, sockets, runc's state, netns mounts, /opt plugins), runs runc
// from Debian with cgroupfs, never asks for a negative oom_score_adj (this
// machine has no CAP_SYS_RESOURCE), pins the pause image the harness
// imports, and turns NRI off (it would open /var/run/nri).
func (n *Node) containerdConfig() string {
	d := n.Dir
	return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
temp = %[3]q
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = %[4]q

[ttrpc]
  address = %[5]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[6]q

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %[7]q

[plugins."io.containerd.cri.v1.runtime"]
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = %[8]q
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = %[9]q
    max_conf_num = 1

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`, filepath.Join(d, "containerd", "root"), filepath.Join(d, "containerd", "state"), filepath.Join(d, "containerd", "tmp"),
		n.sock(), n.sock()+".ttrpc", filepath.Join(d, "containerd", "opt"), image.PauseTag,
		filepath.Join(d, "runc"), filepath.Join(d, "cni", "net.d"))
}

// cniConfig is a bridge with host-local addresses; the route to the Service
// range sends ClusterIP traffic to the bridge (kube-proxy DNATs it), never
// to a default route.
func (n *Node) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "meshshift-harness",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": %q}]
      }
    },
    {"type": "loopback"}
  ]
}
`, BridgeName, filepath.Join(n.Dir, "cni", "ipam"), PodCIDR, NodeIP, ServiceCIDR)
}

// resolvConf has no name server: nothing on the node or in its pods
// resolves names through the machine's resolver (pods reach Services by
// ClusterIP or the *_SERVICE_HOST variables).
const resolvConf = "# meshshift test node: no name servers; use ClusterIPs.\noptions ndots:1\n"

func (n *Node) writeConfigs() error {
	files := map[string]string{
		"containerd.toml": n.containerdConfig(),
		filepath.Join("cni", "net.d", "10-meshshift.conflist"): n.cniConfig(),
		"resolv.conf": resolvConf,
	}
	for name, content := range files {
		p := filepath.Join(n.Dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Dir(p), err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// writeKubeletConfig: cgroupfs on this cgroup-v1 hybrid host, the node
// address, the server on a free port, everything under the node's folder,
// lenient eviction (a test machine's disk is not the node's concern).
func (n *Node) writeKubeletConfig() error {
	port, err := freePortOn(NodeIP)
	if err != nil {
		return err
	}
	health, err := FreePort()
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: true
podCIDR: %[1]s
containerRuntimeEndpoint: unix://%[2]s
address: %[3]s
port: %[4]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[5]d
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
podLogsDir: %[6]s
volumePluginDir: %[7]s
resolvConf: %[8]s
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
nodeStatusUpdateFrequency: 2s
syncFrequency: 5s
fileCheckFrequency: 5s
maxPods: 110
`, PodCIDR, n.sock(), NodeIP, port, health, filepath.Join(n.Dir, "pod-logs"), filepath.Join(n.Dir, "volume-plugins"),
		filepath.Join(n.Dir, "resolv.conf"))
	return os.WriteFile(filepath.Join(n.Dir, "kubelet.yaml"), []byte(cfg), 0o644)
}

// writeKubeProxyConfig: nftables mode; health and metrics on loopback,
// NodePorts on the node address only, host conntrack sysctls left alone.
func (n *Node) writeKubeProxyConfig(kubeconfig string) error {
	health, err := FreePort()
	if err != nil {
		return err
	}
	metrics, err := FreePort()
	if err != nil {
		return err
	}
	cfg := `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clusterCIDR: ` + PodCIDR + `
hostnameOverride: ` + n.Name + `
bindAddress: ` + NodeIP + `
healthzBindAddress: 127.0.0.1:` + strconv.Itoa(health) + `
metricsBindAddress: 127.0.0.1:` + strconv.Itoa(metrics) + `
nodePortAddresses: ["` + NodeIP + `/32"]
clientConnection:
  kubeconfig: ` + kubeconfig + `
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`
	return os.WriteFile(filepath.Join(n.Dir, "kube-proxy.yaml"), []byte(cfg), 0o644)
}
