package agent_test

import (
	"os"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestDaemonSetIsLeastPrivilege reads config/agent/daemonset.yaml and checks
// the privileges the issue allows: CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and
// nothing else (no CAP_SYS_RESOURCE: kernels the agent runs on charge BPF
// memory to the memory cgroup, and nodes whose bounding set lacks it refuse
// to start a container asking for it), not privileged, no host PID, the cgroup2
// and BTF paths read-only.
func TestDaemonSetIsLeastPrivilege(t *testing.T) {
	b, err := os.ReadFile("../../config/agent/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(b, &ds); err != nil {
		t.Fatal(err)
	}
	spec := ds.Spec.Template.Spec
	if spec.HostPID || spec.HostNetwork || spec.HostIPC {
		t.Errorf("host namespaces: pid %v network %v ipc %v, want none", spec.HostPID, spec.HostNetwork, spec.HostIPC)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("no security context with capabilities")
	}
	if sc.Privileged == nil || *sc.Privileged {
		t.Error("privileged must be set to false")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation must be false")
	}
	add := append([]corev1.Capability(nil), sc.Capabilities.Add...)
	slices.Sort(add)
	if want := []corev1.Capability{"BPF", "NET_ADMIN", "PERFMON"}; !slices.Equal(add, want) {
		t.Errorf("added capabilities %v, want %v", add, want)
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("dropped capabilities %v, want [ALL]", sc.Capabilities.Drop)
	}
	paths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			paths[v.Name] = v.HostPath.Path
		}
	}
	mounted := map[string]bool{}
	for _, m := range c.VolumeMounts {
		if p, ok := paths[m.Name]; ok {
			if !m.ReadOnly {
				t.Errorf("host path %s mounted writable", p)
			}
			mounted[p] = true
		}
	}
	for _, p := range []string{"/sys/fs/cgroup", "/sys/kernel/btf"} {
		if !mounted[p] {
			t.Errorf("host path %s not mounted", p)
		}
	}
	if !slices.Contains(c.Args, "--cgroup-root=/host/sys/fs/cgroup") {
		t.Errorf("args %v do not point the agent at the mounted host cgroup tree", c.Args)
	}
}
