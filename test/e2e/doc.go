// Package e2e holds meshshift's end-to-end scenarios: the migrator on a real
// control plane (kube-apiserver, kube-controller-manager, kube-scheduler, kwok
// nodes) with the real admission webhook and a real Prometheus scraping a test
// exporter. The policy-migration scenarios add Istio's CRDs and the real
// istiod (pilot-discovery, ambient profile), which programs the waypoints,
// and check every step with Istio's own analyzers (istioctl analyze).
// Everything is in _test.go files; this package exports nothing and no other
// package may import it.
package e2e
