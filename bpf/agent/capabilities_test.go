package agent_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshshift/meshshift/bpf/agent"
	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/test/harness"
)

func TestCapabilityLevels(t *testing.T) {
	full := agent.Capabilities{BTF: true, Cgroup2: true, SockOps: true, CgroupSKB: true, TPBTF: true, TCX: true, Programs: true}
	basic := full
	basic.TCX = false
	none := full
	none.BTF = false
	// Every hook type there, but the verifier rejects the agent's programs
	// (a kernel older than 5.17): the agent cannot count there.
	rejected := full
	rejected.Programs = false
	for _, tt := range []struct {
		c    agent.Capabilities
		want signals.EBPFLevel
	}{{full, signals.EBPFFull}, {basic, signals.EBPFBasic}, {none, signals.EBPFNone}, {rejected, signals.EBPFNone}} {
		if got := tt.c.Level(); got != tt.want {
			t.Errorf("%+v: level %s, want %s", tt.c, got, tt.want)
		}
	}
}

// TestProbeAndLabelNode probes this machine's kernel (root needed for the
// program loads) and labels a Node of a real API server with the result.
func TestProbeAndLabelNode(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs the control-plane harness (kube-apiserver, etcd from the assets); run without -short")
	}
	caps := agent.Probe()
	if caps.Kernel.IsZero() || !caps.Cgroup2 || !caps.Programs {
		t.Fatalf("probe found no kernel version, no cgroup v2 or the agent's programs not loading: %+v", caps)
	}
	c := harness.Start(t, harness.Options{})
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{"keep": "me"}}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := agent.LabelNode(ctx, cs, "node-a", caps); err != nil {
		t.Fatal(err)
	}
	got, err := cs.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := signals.NodeCapabilitiesFromLabels(got.Labels)
	if err != nil {
		t.Fatal(err)
	}
	if !nc.Known || nc.Kernel != caps.Kernel || nc.EBPF != caps.Level() || got.Labels["keep"] != "me" {
		t.Errorf("node labels %v read back as %+v; want kernel %v level %s and the old label kept", got.Labels, nc, caps.Kernel, caps.Level())
	}
	t.Logf("node labels: %s=%s %s=%s", signals.LabelNodeKernel, got.Labels[signals.LabelNodeKernel], signals.LabelNodeEBPFLevel, got.Labels[signals.LabelNodeEBPFLevel])
	if err := agent.LabelNode(ctx, cs, "", caps); err == nil {
		t.Error("labelling a node without a name returned no error")
	}
}
