package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/cli"
)

// sourceOptions are the flags saying where plan, explain and precheck read
// objects from, and how they decide.
type sourceOptions struct {
	files      []string
	cluster    bool
	kubeconfig string
	output     string
	target     string
	namespaces []string
	traffic    string
	ztunnel    bool
	cilium     bool
	flags      *pflag.FlagSet
	live       bool
	now        string
}

func (s *sourceOptions) bind(f *pflag.FlagSet, defaultTarget string) {
	s.flags = f
	f.StringArrayVarP(&s.files, "filename", "f", nil, "manifest file or folder (read recursively); repeat for more")
	f.BoolVar(&s.cluster, "cluster", false, "read the objects from the cluster of the kubeconfig instead of files")
	f.StringVar(&s.kubeconfig, "kubeconfig", "", "path of a kubeconfig file; empty means $KUBECONFIG or ~/.kube/config")
	f.StringVarP(&s.output, "output", "o", cli.FormatTable, "output format: table, json or yaml")
	f.StringVar(&s.target, "target", defaultTarget, "plan toward this mode as if the migrator had annotated each namespace (sidecar, ambient, ambient-waypoint, cilium, none); empty decides the objects as they are")
	f.StringSliceVarP(&s.namespaces, "namespace", "n", nil, "only these namespaces (comma-separated or repeated)")
	f.StringVar(&s.traffic, "traffic", "", "traffic snapshot file (YAML or JSON) the policy rules see")
	f.BoolVar(&s.ztunnel, "ztunnel", false, "assume Istio's ztunnel runs (or, with =false, does not), whatever the objects say")
	f.BoolVar(&s.cilium, "cilium", false, "assume Cilium's agent runs (or, with =false, does not), whatever the objects say")
	f.StringVar(&s.now, "now", "", "the time traffic staleness is judged at (RFC 3339); empty means now")
	_ = f.MarkHidden("now")
}

// load reads the inventory and the decision options.
func (s *sourceOptions) load(ctx context.Context) (*cli.Inventory, *cli.Options, error) {
	if err := cli.CheckFormat(s.output); err != nil {
		return nil, nil, err
	}
	o := &cli.Options{Namespaces: s.namespaces, Now: time.Now()}
	if s.now != "" {
		t, err := time.Parse(time.RFC3339, s.now)
		if err != nil {
			return nil, nil, fmt.Errorf("flag --now: %w", err)
		}
		o.Now = t
	}
	if s.target != "" {
		m := meshv1alpha1.Mode(s.target)
		if !m.Valid() {
			return nil, nil, fmt.Errorf("flag --target: %q is not one of sidecar, ambient, ambient-waypoint, cilium, none", s.target)
		}
		o.Target = m
	}
	if s.flags.Changed("ztunnel") {
		o.Ztunnel = &s.ztunnel
	}
	if s.flags.Changed("cilium") {
		o.Cilium = &s.cilium
	}
	var objs []cli.Object
	gatewayAPI := false
	switch {
	case s.cluster && len(s.files) > 0:
		return nil, nil, fmt.Errorf("flags --cluster and -f are exclusive: read a cluster or files, not both")
	case s.cluster:
		cfg, err := restConfig(s.kubeconfig)
		if err != nil {
			return nil, nil, err
		}
		co, err := cli.LoadCluster(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		objs, gatewayAPI, s.live = co.Objects, co.GatewayAPI, true
	case len(s.files) > 0:
		var err error
		if objs, err = cli.LoadFiles(s.files); err != nil {
			// Report the bad objects of the documents that did parse too.
			_, berr := cli.Build(objs)
			return nil, nil, errors.Join(err, berr)
		}
	default:
		return nil, nil, fmt.Errorf("nothing to read: give -f FILE|DIR (offline) or --cluster")
	}
	inv, err := cli.Build(objs)
	if err != nil {
		return nil, nil, err
	}
	inv.GatewayAPICRDs = inv.GatewayAPICRDs || gatewayAPI
	if s.traffic != "" {
		if inv.Traffic, err = cli.LoadTraffic(s.traffic); err != nil {
			return nil, nil, err
		}
		if inv.Traffic.Time.IsZero() {
			return nil, nil, fmt.Errorf("traffic snapshot %s: field time: required", s.traffic)
		}
	}
	return inv, o, nil
}

func printNotes(w io.Writer, notes []string) {
	for _, n := range notes {
		_, _ = fmt.Fprintf(w, "note: %s\n", n)
	}
}

// skippedExit prints the objects left out and ends with ExitSkipped when
// there are any.
func skippedExit(w io.Writer, inv *cli.Inventory) error {
	for _, s := range inv.Skipped {
		_, _ = fmt.Fprintf(w, "skipped: %s\n", s)
	}
	if len(inv.Skipped) == 0 {
		return nil
	}
	return &exitError{code: ExitSkipped, msg: fmt.Sprintf("%d object(s) skipped: the answer is made without them", len(inv.Skipped))}
}

func newPlanCommand() *cobra.Command {
	s := &sourceOptions{}
	var waves int
	var migration, policiesDir string
	cmd := &cobra.Command{
		Use:   "plan (-f FILE|DIR ... | --cluster)",
		Short: "Decide every workload's dataplane and propose migration waves",
		Long: `plan decides, for every Deployment, StatefulSet, DaemonSet, ReplicationController, Job,
CronJob, Argo Rollout and bare Pod, the dataplane
mode meshshift would give it (policies.Decide, the same function the webhook runs), with
the rule and the reason, and proposes waves of namespaces: lowest risk first, then most
sidecar CPU and memory freed. It works offline on manifests (-f) or on a live cluster
(--cluster), from files of YAML or JSON documents and from lists (kubectl get -A -o yaml).
Kinds it does not read are skipped with a note on stderr. A mesh object (Istio, Gateway API,
Cilium) that cannot be decoded is left out, named with its file, object and field on stderr
("skipped: ..."), and the rest is planned.

Exit codes: 0 done, 1 error, 3 done but objects were skipped.

-o json and -o yaml print one object per workload (namespace, workload, kind, mode, rule,
reason, currentMode, wave, ...). --emit-migration NAME prints a MeshMigration running the
proposed waves instead. --emit-policies DIR also writes, per namespace moving to
ambient-waypoint, the L7 policy move as YAML files for review: targetRefs copies,
narrowed originals and ztunnel admit policies, each with a comment naming its source, and
blocked.txt where a policy cannot move (it never overwrites a file).`,
		Example: `  meshshift plan -f config/samples/demo --target ambient
  meshshift plan -f manifests/ -o json
  meshshift plan --cluster -n shop,payments --target ambient --emit-migration to-ambient
  meshshift plan -f manifests/ --target ambient-waypoint --emit-policies proposed/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inv, o, err := s.load(cmd.Context())
			if err != nil {
				return err
			}
			if waves < 1 || waves > 100 {
				return fmt.Errorf("flag --waves: %d is not from 1 to 100", waves)
			}
			o.Waves = waves
			p := cli.BuildPlan(inv, o)
			printNotes(cmd.ErrOrStderr(), p.Notes)
			if policiesDir != "" {
				if err := emitPolicies(cmd.ErrOrStderr(), policiesDir, migration, inv, o); err != nil {
					return err
				}
			}
			if migration != "" {
				if o.Target == "" {
					return fmt.Errorf("flag --emit-migration needs --target: the mode the migration moves to")
				}
				mm, err := p.Migration(migration, o.Target)
				if err != nil {
					return err
				}
				u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(mm)
				if err != nil {
					return fmt.Errorf("encode migration: %w", err)
				}
				delete(u, "status")
				unstructured.RemoveNestedField(u, "metadata", "creationTimestamp")
				if err := cli.PrintData(cmd.OutOrStdout(), yamlUnlessJSON(s.output), u); err != nil {
					return err
				}
				return skippedExit(cmd.ErrOrStderr(), inv)
			}
			if err := cli.PrintPlan(cmd.OutOrStdout(), s.output, p); err != nil {
				return err
			}
			return skippedExit(cmd.ErrOrStderr(), inv)
		},
	}
	s.bind(cmd.Flags(), "")
	cmd.Flags().IntVar(&waves, "waves", 3, "how many waves to propose")
	cmd.Flags().StringVar(&policiesDir, "emit-policies", "", "write the L7 policy move (targetRefs copies, narrowed originals, admit policies) as YAML files under this folder, labelled with the --emit-migration name")
	cmd.Flags().StringVar(&migration, "emit-migration", "", "print a MeshMigration of this name running the proposed waves (YAML, or JSON with -o json)")
	return cmd
}

func yamlUnlessJSON(f string) string {
	if f == cli.FormatJSON {
		return f
	}
	return cli.FormatYAML
}

func newExplainCommand() *cobra.Command {
	s := &sourceOptions{}
	cmd := &cobra.Command{
		Use:   "explain NAMESPACE/WORKLOAD (-f FILE|DIR ... | --cluster)",
		Short: "Show the whole decision path of one workload, step by step, with its inputs",
		Example: `  meshshift explain shop/cart -f config/samples/demo --target ambient
  meshshift explain payments/gateway --cluster -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, name, ok := strings.Cut(args[0], "/")
			if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
				return fmt.Errorf("argument %q: want NAMESPACE/WORKLOAD", args[0])
			}
			inv, o, err := s.load(cmd.Context())
			if err != nil {
				return err
			}
			e, err := cli.Explain(inv, ns, name, o)
			if err != nil {
				return err
			}
			if err := cli.PrintExplanation(cmd.OutOrStdout(), s.output, e); err != nil {
				return err
			}
			return skippedExit(cmd.ErrOrStderr(), inv)
		},
	}
	s.bind(cmd.Flags(), "")
	return cmd
}

func newPrecheckCommand() *cobra.Command {
	s := &sourceOptions{}
	cmd := &cobra.Command{
		Use:   "precheck (-f FILE|DIR ... | --cluster)",
		Short: "Find what blocks moving workloads to a sidecarless mode; exits 2 on a blocker",
		Long: `precheck lists the blockers of a move to the target mode (ambient by default): the
DENY-all trap of a selector-based L7 AuthorizationPolicy, EnvoyFilters, selector WasmPlugins,
PeerAuthentication DISABLE, WorkloadEntries, a cluster without ztunnel or Cilium, missing
Gateway API CRDs where a waypoint is needed, and nodes whose kernel or eBPF level (the
agent's node labels) is too low for Cilium.

Exit codes: 0 no blocker, 1 error, 2 at least one blocker, 3 no blocker but
objects were skipped (see "skipped:" on stderr).`,
		Example: `  meshshift precheck -f config/samples/demo
  meshshift precheck --cluster -n shop --target cilium`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inv, o, err := s.load(cmd.Context())
			if err != nil {
				return err
			}
			r := cli.Precheck(inv, o, s.live)
			printNotes(cmd.ErrOrStderr(), inv.Notes)
			if err := cli.PrintPrecheck(cmd.OutOrStdout(), s.output, r); err != nil {
				return err
			}
			skipped := skippedExit(cmd.ErrOrStderr(), inv)
			if r.Blockers > 0 {
				return &exitError{code: ExitBlocked, msg: fmt.Sprintf("precheck found %d blocker(s)", r.Blockers)}
			}
			return skipped
		},
	}
	s.bind(cmd.Flags(), string(meshv1alpha1.ModeAmbient))
	return cmd
}
