package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/signals"
)

// Capabilities is what the node's kernel supports, found by probing.
type Capabilities struct {
	// Release is the kernel release (uname -r).
	Release string
	// Kernel is its major.minor.patch (zero when it cannot be read).
	Kernel    signals.KernelVersion
	BTF       bool // /sys/kernel/btf/vmlinux loads
	Cgroup2   bool // a cgroup v2 hierarchy is mounted
	SockOps   bool
	CgroupSKB bool
	TPBTF     bool // tracing programs (tp_btf)
	TCX       bool
	// Programs: the agent's own programs load (the verifier accepts them).
	// The program types existing is not enough: they use helpers and
	// socket-storage access, bpf_loop and ring buffers of later kernels (5.17 and
	// newer).
	Programs bool
}

// Level grades the capabilities as signals.EBPFLevel: basic needs BTF, cgroup
// v2, sock_ops and cgroup_skb, and the agent's programs loading (what the
// agent needs to count); full adds tp_btf and tcx.
func (c Capabilities) Level() signals.EBPFLevel {
	if !c.BTF || !c.Cgroup2 || !c.SockOps || !c.CgroupSKB || !c.Programs {
		return signals.EBPFNone
	}
	if c.TPBTF && c.TCX {
		return signals.EBPFFull
	}
	return signals.EBPFBasic
}

// Labels are the Node labels that carry the capabilities.
func (c Capabilities) Labels() map[string]string {
	l := map[string]string{signals.LabelNodeEBPFLevel: string(c.Level())}
	if !c.Kernel.IsZero() {
		l[signals.LabelNodeKernel] = c.Kernel.String()
	}
	return l
}

// Probe finds what the running kernel supports. Probes load tiny programs;
// they need the agent's capabilities (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN).
func Probe() Capabilities {
	var c Capabilities
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		c.Release = unix.ByteSliceToString(u.Release[:])
		c.Kernel, _ = signals.ParseKernelVersion(c.Release)
	}
	if _, err := btf.LoadKernelSpec(); err == nil {
		c.BTF = true
	}
	if _, err := bpf.Cgroup2Mount(); err == nil {
		c.Cgroup2 = true
	}
	c.SockOps = features.HaveProgramType(ebpf.SockOps) == nil
	c.CgroupSKB = features.HaveProgramType(ebpf.CGroupSKB) == nil
	c.TPBTF = c.BTF && probeTPBTF()
	c.TCX = probeTCX()
	if c.SockOps && c.CgroupSKB {
		if objs, err := bpf.Load(bpf.Options{}); err == nil {
			c.Programs = objs.Close() == nil
		}
	}
	return c
}

// probeTPBTF loads (without attaching) a tp_btf program for a tracepoint the
// agent uses. features.HaveProgramType(ebpf.Tracing) is not enough: it probes
// fentry, which some kernels block while tp_btf works.
func probeTPBTF() bool {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceRawTp,
		AttachTo:     "tcp_receive_reset",
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		return false
	}
	prog.Close()
	return true
}

// probeTCX attaches a no-op program to an interface index that cannot exist:
// a kernel with tcx answers "no such device".
func probeTCX() bool {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		License:      "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		return false
	}
	defer prog.Close()
	l, err := link.AttachTCX(link.TCXOptions{Interface: 0x7fffffff, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err == nil {
		l.Close()
		return true
	}
	return errors.Is(err, unix.ENODEV)
}

// LabelNode writes the capability labels on the Node (a merge patch: other
// labels stay).
func LabelNode(ctx context.Context, cs kubernetes.Interface, node string, c Capabilities) error {
	if node == "" {
		return errors.New("node name: must not be empty")
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": c.Labels()}})
	if err != nil {
		return fmt.Errorf("encode node label patch: %w", err)
	}
	if _, err := cs.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("label node %s: %w", node, err)
	}
	return nil
}
