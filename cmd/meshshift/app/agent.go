package app

import (
	"flag"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlzap "sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/meshshift/meshshift/bpf/agent"
)

type agentOptions struct {
	kubeconfig string
	node       string
	listen     string
	interval   time.Duration
	maxCgroups int
	cgroupRoot string
	standalone bool
	zap        ctrlzap.Options
}

func newAgentCommand() *cobra.Command {
	o := &agentOptions{}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: eBPF TCP and HTTP metrics per pod, node capability labels",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := ctrlzap.New(ctrlzap.UseFlagOptions(&o.zap))
			cfg := agent.Config{Node: o.node, Listen: o.listen, Interval: o.interval, MaxCgroups: o.maxCgroups, CgroupRoot: o.cgroupRoot, Log: log}
			if err := cfg.Validate(); err != nil {
				return err
			}
			if !o.standalone {
				rc, err := restConfig(o.kubeconfig)
				if err != nil {
					return err
				}
				if cfg.Clientset, err = kubernetes.NewForConfig(rc); err != nil {
					return err
				}
			}
			return agent.Run(ctrl.SetupSignalHandler(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "path of a kubeconfig file; empty means in-cluster or $KUBECONFIG")
	f.StringVar(&o.node, "node-name", "", "this node's name (required; the DaemonSet sets it from spec.nodeName)")
	f.StringVar(&o.listen, "listen", ":9990", "address of /metrics, /snapshot and /healthz")
	f.DurationVar(&o.interval, "interval", 5*time.Second, "how often the kernel counters are read (1s to 10m)")
	f.IntVar(&o.maxCgroups, "max-cgroups", 0, "cgroups counted separately; 0 means 4096 (kernel memory about 1 KiB per cgroup per CPU)")
	f.StringVar(&o.cgroupRoot, "cgroup-root", "", "the host's cgroup v2 mount; empty means the first cgroup2 mount in /proc/mounts")
	f.BoolVar(&o.standalone, "standalone", false, "run without the API server: no pod names, no node labels")
	zfs := flag.NewFlagSet("zap", flag.ContinueOnError)
	o.zap.BindFlags(zfs)
	f.AddGoFlagSet(zfs)
	return cmd
}
