// Package harness starts a real Kubernetes control plane for tests: envtest's
// kube-apiserver and etcd, and on request kube-controller-manager,
// kube-scheduler and kwok with fake nodes, all on 127.0.0.1, all stopped and
// removed when the test ends, also when it fails. The binaries are built from
// Go modules by hack/assets.sh (make assets) and cached outside the clone.
//
// Options.RealNode adds one real node (root only): containerd with Debian's
// runc, kubelet and kube-proxy (nftables mode) on the CNI bridge BridgeName,
// whose address NodeIP is the node's InternalIP. The API server then listens
// on NodeIP (pods reach it through the kubernetes Service at APIServiceIP,
// with ServiceAccount tokens), never resolves the node's name
// (--kubelet-preferred-address-types=InternalIP), and nothing on the node
// has a name server. Forwarding off the bridge is dropped by nftables. The
// pause and test app images (test/image) are imported before kubelet starts,
// and meshshift's own on request, so nothing is ever pulled. One real node
// runs on a machine at a time (a file lock). Stop removes it: pods first,
// then kube-proxy, kubelet and containerd, leftover container processes and
// shims, mounts, the kubepods cgroups in every hierarchy, the bridge, the
// nftables tables of the guard, kube-proxy and kubelet, the Service route,
// host paths the node created, and ip_forward is restored. Leftovers lists
// whatever of a node is still on the machine; a test checks it is empty.
//
// It is imported only by tests; production packages must not import it.
package harness
