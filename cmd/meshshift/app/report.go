package app

import (
	"fmt"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/spf13/cobra"

	"github.com/meshshift/meshshift/cli"
	"github.com/meshshift/meshshift/signals"
)

func newReportCommand() *cobra.Command {
	s := &sourceOptions{}
	var promURL string
	var window time.Duration
	cmd := &cobra.Command{
		Use:   "report (-f FILE|DIR ... | --cluster) [--prometheus URL | --traffic FILE]",
		Short: "Per-namespace traffic figures from the node agent and the sidecars' resource overhead",
		Long: `report sums, per namespace, the workloads and pods, the CPU and memory their sidecars
request, and the traffic the node agent measured (request, error, connection and
retransmit rates, worst p99 latency), read from Prometheus (--prometheus, which scrapes
the agents) or from a snapshot file (--traffic). The last column is the sidecar CPU each
1,000 requests per second pays for.`,
		Example: `  meshshift report --cluster --prometheus http://prometheus.monitoring:9090
  meshshift report -f config/samples/demo --traffic config/samples/traffic.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if promURL != "" && s.traffic != "" {
				return fmt.Errorf("flags --prometheus and --traffic are exclusive")
			}
			inv, o, err := s.load(cmd.Context())
			if err != nil {
				return err
			}
			if promURL != "" {
				pc, err := promapi.NewClient(promapi.Config{Address: promURL})
				if err != nil {
					return fmt.Errorf("flag --prometheus: %w", err)
				}
				src := &signals.PromSource{API: promv1.NewAPI(pc), Window: window}
				if err := src.Refresh(cmd.Context()); err != nil {
					return fmt.Errorf("read traffic from prometheus %s: %w", promURL, err)
				}
				inv.Traffic = src.Snapshot()
				o.Now = inv.Traffic.Time
			}
			printNotes(cmd.ErrOrStderr(), inv.Notes)
			return cli.PrintReport(cmd.OutOrStdout(), s.output, cli.BuildReport(inv, o))
		},
	}
	s.bind(cmd.Flags(), "")
	cmd.Flags().StringVar(&promURL, "prometheus", "", "Prometheus HTTP API that scrapes the node agents")
	cmd.Flags().DurationVar(&window, "window", 5*time.Minute, "rate window of the Prometheus queries")
	return cmd
}
