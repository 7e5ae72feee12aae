// Package harness starts a real Kubernetes control plane for tests: envtest's
// kube-apiserver and etcd, and on request kube-controller-manager,
// kube-scheduler and kwok with fake nodes, all on 127.0.0.1, all stopped and
// removed when the test ends, also when it fails. The binaries are built from
// Go modules by hack/assets.sh (make assets) and cached outside the clone.
//
// It is imported only by tests; production packages must not import it.
package harness
