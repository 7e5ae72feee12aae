package app

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/cli"
)

// clusterOptions are the flags of the commands that talk to a cluster.
type clusterOptions struct {
	kubeconfig string
	output     string
}

func (o *clusterOptions) bind(cmd *cobra.Command, output bool) {
	cmd.Flags().StringVar(&o.kubeconfig, "kubeconfig", "", "path of a kubeconfig file; empty means $KUBECONFIG or ~/.kube/config")
	if output {
		cmd.Flags().StringVarP(&o.output, "output", "o", cli.FormatTable, "output format: table, json or yaml")
	}
}

func (o *clusterOptions) client() (client.Client, error) {
	if o.output != "" {
		if err := cli.CheckFormat(o.output); err != nil {
			return nil, err
		}
	}
	cfg, err := restConfig(o.kubeconfig)
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: newScheme()})
	if err != nil {
		return nil, fmt.Errorf("build client: %w", err)
	}
	return c, nil
}

func newStatusCommand() *cobra.Command {
	o := &clusterOptions{}
	cmd := &cobra.Command{
		Use:   "status [MIGRATION]",
		Short: "Show MeshMigrations: waves, gate values against limits, conditions",
		Example: `  meshshift status
  meshshift status to-ambient
  meshshift status to-ambient -o yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			now := time.Now()
			if len(args) == 0 {
				var list meshv1alpha1.MeshMigrationList
				if err := c.List(cmd.Context(), &list); err != nil {
					return fmt.Errorf("list meshmigrations: %w", err)
				}
				if o.output != cli.FormatTable {
					if list.Items == nil {
						list.Items = []meshv1alpha1.MeshMigration{}
					}
					return cli.PrintData(cmd.OutOrStdout(), o.output, list.Items)
				}
				return cli.PrintMigrations(cmd.OutOrStdout(), now, list.Items)
			}
			mm, err := cli.GetMigration(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			if o.output != cli.FormatTable {
				mm.ManagedFields = nil
				return cli.PrintData(cmd.OutOrStdout(), o.output, mm)
			}
			return cli.PrintMigration(cmd.OutOrStdout(), now, mm)
		},
	}
	o.bind(cmd, true)
	return cmd
}

// newChangeCommand builds pause, resume, rollback and approve: one spec edit
// each; change is called when the command runs, after flags are parsed.
func newChangeCommand(use, short string, change func() cli.Change) *cobra.Command {
	o := &clusterOptions{}
	cmd := &cobra.Command{
		Use:   use + " MIGRATION",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ch := change()
			if ch == nil {
				return fmt.Errorf("nothing to change")
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			msg, err := cli.Apply(cmd.Context(), c, args[0], ch)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "meshmigration %s: %s\n", args[0], msg)
			return err
		},
	}
	o.bind(cmd, false)
	return cmd
}

func newApproveCommand() *cobra.Command {
	var through int32
	cmd := newChangeCommand("approve", "Approve the next wave (or waves up to --through) of a migration with approval Manual",
		func() cli.Change {
			if through < 0 {
				return func(*meshv1alpha1.MeshMigration) (string, error) {
					return "", fmt.Errorf("flag --through: %d is negative", through)
				}
			}
			return cli.Approve(through)
		})
	cmd.Flags().Int32Var(&through, "through", 0, "approve every wave up to this one (1-based); 0 means the next wave")
	return cmd
}

func newPauseCommand() *cobra.Command {
	return newChangeCommand("pause", "Stop a migration from starting or promoting a wave",
		func() cli.Change { return cli.Pause })
}

func newResumeCommand() *cobra.Command {
	return newChangeCommand("resume", "Let a paused migration go on",
		func() cli.Change { return cli.Resume })
}

func newRollbackCommand() *cobra.Command {
	return newChangeCommand("rollback", "Roll back every flipped wave of a migration, newest first",
		func() cli.Change { return cli.Rollback })
}
