// Module crds pins the Go modules whose CRD manifests the packaging test
// installs into the real API server, so meshshift's ServiceMonitor,
// PrometheusRule, Issuer and Certificate are checked against their real
// schemas: the Prometheus Operator's (example/prometheus-operator-crd) and
// cert-manager's (deploy/crds). Nothing imports these modules' code.
module github.com/meshshift/meshshift/test/assets/crds

go 1.26.0

require (
	github.com/cert-manager/cert-manager v1.19.1
	github.com/prometheus-operator/prometheus-operator v0.87.1
)
