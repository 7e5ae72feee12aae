// Package demo is meshshift's one-command demo, written as Go tests so it
// stands on the same real pieces as the end-to-end tests and cleans up after
// itself even when interrupted.
//
// `make demo` (TestDemoRealNode, built with the realnodedemo tag, as root) is the whole
// loop on a real node of test/harness: meshshift installed from the shipped
// config/default overlay with the image `make image` builds, the test app's
// real requests measured by the real node agent, Prometheus discovering the
// agent through the API server, and the two-wave MeshMigration of
// test/realnode. It prints a timeline with the agent's request rate, error
// rate and p99 per wave before and after the flip, and ends with one line:
// `demo: waves=2 migrated=1 rolled_back=1 pods_ready=N/N agent_vs_client=…x`.
//
// `make demo-sim` (TestDemo, no root) runs on kwok nodes: a real control
// plane (API server, etcd, kube-controller-manager, scheduler and kwok
// nodes, from the cached asset binaries), the meshshift webhook and migrator
// running in process in one manager, a real Prometheus scraping node-agent
// style series (test/prom), and the samples of config/samples/demo. It
// prints the plan (the CLI's own plan command), runs the 3-wave
// MeshMigration the plan proposes toward ambient, injects an SLI breach in
// the last wave, prints a timeline and ends with
// `demo: waves=3 migrated=2 rolled_back=1 pods_ready=N/N`.
//
// It lives under test/ because it imports test/harness, test/prom and
// test/realnode, which production code must not; nothing imports it.
package demo
