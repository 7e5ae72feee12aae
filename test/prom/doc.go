// Package prom starts a real Prometheus server for tests (Debian's
// `prometheus` binary, on 127.0.0.1, 1 s scrape interval, data in a temporary
// folder removed at the end) and serves a test exporter whose node-agent-style
// series (meshshift_http_*, meshshift_tcp_*) the test drives per namespace.
//
// It must not import migrator, webhook, bpf or cmd: it only knows the metric
// names the node agent exports.
package prom
