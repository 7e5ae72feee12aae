package app

import (
	"github.com/spf13/cobra"
)

// NewRootCommand returns the meshshift command with every subcommand.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "meshshift",
		Short: "Move Kubernetes workloads from sidecar proxies to sidecarless dataplanes, safely",
		Long: `meshshift decides, per workload, whether a pod keeps a sidecar or goes sidecarless
(Istio ambient, Cilium), flips namespaces in SLO-gated waves, and measures traffic
the same way on every dataplane with its eBPF node agent.`,
		SilenceUsage: true,
	}
	root.AddCommand(
		newVersionCommand(),
		newManagerCommand(),
		newAgentCommand(),
		newPlanCommand(),
		newExplainCommand(),
		newPrecheckCommand(),
		newStatusCommand(),
		newPauseCommand(),
		newResumeCommand(),
		newApproveCommand(),
		newRollbackCommand(),
		newReportCommand(),
	)
	return root
}
