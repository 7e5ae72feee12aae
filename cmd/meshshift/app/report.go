package app

import (
	"context"
	"fmt"
	"net/url"
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
	var window, sample time.Duration
	var agents []string
	cmd := &cobra.Command{
		Use:   "report (-f FILE|DIR ... | --cluster) [--prometheus URL | --agents URL,... | --traffic FILE]",
		Short: "Per-namespace traffic figures from the node agent and the sidecars' resource overhead",
		Long: `report sums, per namespace, the workloads and pods, the CPU and memory their sidecars
request, and the traffic the node agent measured (request, error, connection and
retransmit rates, worst p99 latency), read from Prometheus (--prometheus, which scrapes
the agents), straight from the agents (--agents: their snapshot endpoints read twice,
--sample apart, the rates being over that time) or from a snapshot file (--traffic).
The last column is the sidecar CPU each 1,000 requests per second pays for.`,
		Example: `  meshshift report --cluster --prometheus http://prometheus.monitoring:9090
  meshshift report --cluster --agents http://10.0.0.7:9990,http://10.0.0.8:9990 --sample 30s
  meshshift report -f config/samples/demo --traffic config/samples/traffic.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n := btoi(promURL != "") + btoi(len(agents) > 0) + btoi(s.traffic != ""); n > 1 {
				return fmt.Errorf("flags --prometheus, --agents and --traffic are exclusive")
			}
			if len(agents) > 0 && (sample < time.Second || sample > 10*time.Minute) {
				return fmt.Errorf("flag --sample %v: allowed 1s to 10m", sample)
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
			if len(agents) > 0 {
				snap, err := sampleAgents(cmd.Context(), agents, sample)
				if err != nil {
					return err
				}
				inv.Traffic = snap
				o.Now = snap.Time
			}
			printNotes(cmd.ErrOrStderr(), inv.Notes)
			return cli.PrintReport(cmd.OutOrStdout(), s.output, cli.BuildReport(inv, o))
		},
	}
	s.bind(cmd.Flags(), "")
	cmd.Flags().StringVar(&promURL, "prometheus", "", "Prometheus HTTP API that scrapes the node agents")
	cmd.Flags().DurationVar(&window, "window", 5*time.Minute, "rate window of the Prometheus queries")
	cmd.Flags().StringSliceVar(&agents, "agents", nil, "node agents' base URLs (http://IP:9990), read directly")
	cmd.Flags().DurationVar(&sample, "sample", 10*time.Second, "with --agents: the time between the two reads the rates are over (1s to 10m)")
	return cmd
}

// sampleAgents reads every agent, waits sample, reads them again and returns
// the rates between the two reads.
func sampleAgents(ctx context.Context, agents []string, sample time.Duration) (*signals.TrafficSnapshot, error) {
	for _, a := range agents {
		if u, err := url.Parse(a); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("flag --agents %q: want a base URL such as http://10.0.0.7:9990", a)
		}
	}
	src := &signals.AgentSource{Endpoints: func(context.Context) ([]string, error) { return agents, nil }}
	if err := src.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("read the agents: %w", err)
	}
	select {
	case <-time.After(sample):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := src.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("read the agents again: %w", err)
	}
	return src.Snapshot(), nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
