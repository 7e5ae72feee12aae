// Package kerneltest helps root tests of the eBPF agent: it creates cgroup v2
// folders and network namespaces, moves the test process between cgroups so
// that sockets are created in a chosen one, and removes all of it with
// t.Cleanup, also when the test fails.
//
// Only tests import it. It must not import Kubernetes or Prometheus code.
package kerneltest
