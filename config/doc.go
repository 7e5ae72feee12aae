// Package config holds meshshift's deployment manifests: kustomize bases and
// overlays (crd, rbac, manager, webhook, agent, prometheus; default and
// cert-manager), the Helm chart under helm/meshshift, samples and the Grafana
// dashboard. Its Go code is only the tests that render those manifests with
// kustomize and Helm and dry-run them against a real API server; nothing
// imports this package, and it imports no meshshift package but test/harness
// in tests.
package config
