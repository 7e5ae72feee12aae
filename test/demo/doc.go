// Package demo is meshshift's one-command demo (`make demo`), written as a Go
// test so it stands on the same real pieces as the end-to-end tests and
// cleans up after itself even when interrupted: a real control plane
// (test/harness: API server, etcd, kube-controller-manager, scheduler and kwok
// nodes, from the cached asset binaries), the meshshift webhook and migrator
// running in process in one manager, a real Prometheus scraping node-agent
// style series (test/prom), and the samples of config/samples/demo.
//
// It prints the plan (the CLI's own plan command), runs the 3-wave
// MeshMigration the plan proposes toward ambient, injects an SLI breach in the
// last wave, prints a timeline (waves, pods re-admitted with their modes, the
// breach, the automatic rollback, the final state) and ends with one summary
// line: `demo: waves=3 migrated=2 rolled_back=1 pods_ready=N/N`.
//
// It lives under test/ because it imports test/harness and test/prom, which
// production code must not; nothing imports it.
package demo
