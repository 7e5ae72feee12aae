// Package realnode runs meshshift as a user runs it, on a real node of the
// test harness (containerd, kubelet, kube-proxy): the shipped kustomize
// default overlay with the image `make image` builds, a Debian Prometheus
// that discovers the agents through the API server, the test app (test/app)
// as the workload, and the MeshMigration scenario the end-to-end test and
// `make demo` share: two waves, one healthy and promoted, one whose
// application breaks under the target mode and is rolled back by the SLO
// gate on the node agent's own figures.
//
// It is imported by tests and the demo only; production packages must not
// import it.
package realnode
