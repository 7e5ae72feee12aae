package app

import (
	"fmt"
	"io"

	"github.com/meshshift/meshshift/cli"
)

// emitPolicies writes plan --emit-policies DIR: the L7 policy proposals of
// the namespaces the plan moves to ambient-waypoint, as YAML files, and
// says on w how many it wrote and what is blocked.
func emitPolicies(w io.Writer, dir, migration string, inv *cli.Inventory, o *cli.Options) error {
	if migration == "" {
		migration = cli.DefaultEmitMigration
	}
	ps, err := cli.ProposePolicies(inv, o, migration)
	if err != nil {
		return err
	}
	files, err := cli.EmitPolicies(ps)
	if err != nil {
		return err
	}
	if err := cli.WritePolicies(dir, files); err != nil {
		return err
	}
	for _, np := range ps {
		for _, b := range np.Plan.Blocked {
			_, _ = fmt.Fprintf(w, "blocked: %s\n", b)
		}
	}
	_, _ = fmt.Fprintf(w, "emitted %d file(s) for %d namespace(s) to %s\n", len(files), len(ps), dir)
	return nil
}
