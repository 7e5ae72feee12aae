package cli

import (
	"strings"
	"testing"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

// TestPlanBlocksWhatTheMoveCannotCarry: the migrator refuses a wave whose
// L7 policy move has a blocked policy, so plan leaves such a namespace out
// of the waves and precheck reports a blocker naming the policy.
func TestPlanBlocksWhatTheMoveCannotCarry(t *testing.T) {
	inv := loadSample(t, l7MoveSample)
	o := &Options{Target: meshv1alpha1.ModeAmbientWaypoint, Now: goldenNow}
	p := BuildPlan(inv, o)
	blocked := map[string]string{}
	for _, b := range p.Blocked {
		blocked[b.Namespace] = strings.Join(b.Reasons, "\n")
	}
	for ns, policy := range map[string]string{"legacy": "AuthorizationPolicy/legacy/get-only", "shop": "AuthorizationPolicy/shop/reports-read"} {
		if !strings.Contains(blocked[ns], "L7 policy move blocked: "+policy) {
			t.Errorf("namespace %s: blocked for %q, want the L7 policy move blocked by %s", ns, blocked[ns], policy)
		}
	}
	for _, w := range p.Waves {
		for _, ns := range w.Namespaces {
			if ns == "legacy" || ns == "shop" {
				t.Errorf("wave %d holds namespace %s, whose L7 policy move is blocked", w.Index, ns)
			}
		}
	}
	r := Precheck(inv, o, false)
	found := map[string]bool{}
	for _, f := range r.Findings {
		if f.Check == checkL7PolicyMoveBlocked && f.Severity == SeverityBlocker {
			found[f.Namespace] = true
		}
	}
	if !found["legacy"] || !found["shop"] {
		t.Errorf("precheck blockers %q for namespaces %v, want legacy and shop", checkL7PolicyMoveBlocked, found)
	}

	// Toward ambient the L7 policies do not move, so nothing is said of them.
	ambient := &Options{Target: meshv1alpha1.ModeAmbient, Now: goldenNow}
	if m, err := policyMoveBlocks(inv, ambient, inv.Evaluate(ambient)); err != nil || len(m) != 0 {
		t.Errorf("toward ambient: %v, %v; want no move blocks", m, err)
	}
}
