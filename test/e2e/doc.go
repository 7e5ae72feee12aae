// Package e2e holds meshshift's end-to-end scenarios: the migrator on a real
// control plane (kube-apiserver, kube-controller-manager, kube-scheduler, kwok
// nodes) with the real admission webhook and a real Prometheus scraping a test
// exporter. Everything is in _test.go files; this package exports nothing and
// no other package may import it.
package e2e
