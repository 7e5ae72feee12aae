package cli

import (
	"fmt"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

// checkL7PolicyMoveBlocked is the precheck finding for a policy the L7
// policy move cannot carry to the waypoint safely.
const checkL7PolicyMoveBlocked = "l7-policy-move-blocked"

// policyMoveBlocks is, per namespace, why the L7 policy move cannot be
// applied there (l7policy.Plan.Blocked, or an error proposing it). The
// migrator refuses a wave with any such entry, so plan and precheck do too.
// Only toward ambient-waypoint, where plan moves L7 policies at all; evals
// are inv.Evaluate(o), which the caller already has.
func policyMoveBlocks(inv *Inventory, o *Options, evals []Evaluated) (map[string][]string, error) {
	if o.Target != meshv1alpha1.ModeAmbientWaypoint {
		return nil, nil
	}
	props, err := proposePolicies(inv, o, evals, DefaultEmitMigration)
	if err != nil {
		return nil, fmt.Errorf("the L7 policy move cannot be proposed: %w", err)
	}
	out := map[string][]string{}
	for _, np := range props {
		for _, b := range np.Plan.Blocked {
			out[np.Namespace] = append(out[np.Namespace], "L7 policy move blocked: "+b)
		}
	}
	return out, nil
}
