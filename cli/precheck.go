package cli

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
)

// Severity of a precheck finding.
const (
	SeverityBlocker = "blocker"
	SeverityWarning = "warning"
)

// Finding is one precheck result.
type Finding struct {
	Severity  string `json:"severity"`
	Check     string `json:"check"`
	Namespace string `json:"namespace,omitempty"`
	Workload  string `json:"workload,omitempty"`
	Object    string `json:"object,omitempty"`
	Message   string `json:"message"`
}

// PrecheckResult is every finding, blockers first.
type PrecheckResult struct {
	Target   meshv1alpha1.Mode `json:"target"`
	Findings []Finding         `json:"findings"`
	Blockers int               `json:"blockers"`
	Warnings int               `json:"warnings"`
}

// Precheck looks for what stops the workloads in scope from moving to the
// target mode (ambient when o.Target is empty): the mesh features only a
// sidecar serves and the DENY-all trap (policies.FeatureTable) — toward
// ambient-waypoint, selector-attached L7 policies that can move to the
// workload's waypoint are warnings, and a workload whose policies move is
// refused while an observed caller (the traffic snapshot's Callers) stays on
// a sidecar outside the namespaces checked or keeps its sidecar —, a cluster
// without ztunnel or Cilium, missing Gateway API CRDs where a waypoint is
// needed, and nodes whose kernel the agent reports too old for Cilium.
// live says whether the inventory comes from a cluster (facts offline
// manifests cannot show are warnings offline, blockers live).
func Precheck(inv *Inventory, o *Options, live bool) *PrecheckResult {
	opts := *o
	if opts.Target == "" {
		opts.Target = meshv1alpha1.ModeAmbient
	}
	r := &PrecheckResult{Target: opts.Target}
	add := func(f Finding) {
		r.Findings = append(r.Findings, f)
	}
	caps := inv.capabilities(&opts)
	switch opts.Target {
	case meshv1alpha1.ModeAmbient, meshv1alpha1.ModeAmbientWaypoint:
		if !caps.Ztunnel {
			add(Finding{Severity: SeverityBlocker, Check: "ztunnel", Message: "no ztunnel DaemonSet found: Istio ambient is not installed, so no workload can go ambient"})
		}
	case meshv1alpha1.ModeCilium:
		if !caps.Cilium {
			add(Finding{Severity: SeverityBlocker, Check: "cilium", Message: "no Cilium agent DaemonSet found: Cilium's sidecarless mesh is not installed"})
		}
		n := &caps.Nodes
		switch {
		case !n.Known:
			add(Finding{Severity: SeverityWarning, Check: "node-kernel", Message: "no node carries the agent's kernel and eBPF labels; cannot tell whether the nodes serve Cilium"})
		case n.EBPF.Rank() < policies.CiliumMinEBPF.Rank():
			add(Finding{Severity: SeverityBlocker, Check: "node-ebpf",
				Message: fmt.Sprintf("the weakest node's eBPF level is %s, below the %s Cilium needs", n.EBPF, policies.CiliumMinEBPF)})
		case !n.Kernel.IsZero() && !n.Kernel.AtLeast(policies.CiliumMinKernel):
			add(Finding{Severity: SeverityBlocker, Check: "node-kernel",
				Message: fmt.Sprintf("the oldest node kernel is %s, below the %s Cilium needs", n.Kernel, policies.CiliumMinKernel)})
		}
	}
	needWaypoint := 0
	evals := inv.Evaluate(&opts)
	callers := newCallerCheck(inv, &opts, evals)
	for _, e := range evals {
		if e.Decision.Excluded {
			continue
		}
		moved, isMove := policyMove(&e, &opts)
		if e.Decision.Mode == meshv1alpha1.ModeAmbientWaypoint || isMove {
			needWaypoint++
		}
		if isMove {
			callers.check(&e, moved.Waypoint, add)
		}
		if why := cannotRestart(e.W); why != "" && e.Current != e.Decision.Mode {
			add(Finding{Severity: SeverityBlocker, Check: "cannot-restart", Namespace: e.W.Namespace, Workload: e.W.Name, Message: why})
		}
		switch e.Decision.Rule {
		case policies.RuleOptOut:
			// A team's opt-out is kept; say so where the platform's policy forbids what it leaves.
			if e.Decision.Mode == meshv1alpha1.ModeNone && !e.Input.Policy.Allows(e.Input.Namespace.Labels, meshv1alpha1.ModeNone) {
				add(Finding{Severity: SeverityWarning, Check: "opt-out", Namespace: e.W.Namespace, Workload: e.W.Name,
					Message: policies.OptOutForbidden(e.Input.Policy, e.W.Namespace, e.Input.Namespace.Labels)})
			}
		case policies.RuleNodeUnserved:
			if opts.Target.Sidecarless() {
				add(Finding{Severity: SeverityBlocker, Check: "node-unserved", Namespace: e.W.Namespace, Workload: e.W.Name, Message: e.Decision.Reason})
			}
		}
		for _, f := range e.Input.Features {
			row, ok := policies.Row(f.Feature)
			if !ok || row.Need < policies.NeedSidecar || row.Need.Serves(opts.Target) {
				continue
			}
			check := string(f.Feature)
			if row.Need == policies.NeedBlock {
				check = "deny-all-trap"
			}
			if isMove && movableL7[f.Feature] {
				add(Finding{Severity: SeverityWarning, Check: checkL7PolicyMove, Namespace: e.W.Namespace, Workload: e.W.Name,
					Object: f.Object(), Message: row.What + ": moves to the workload's waypoint (Gateway " + moved.Waypoint +
						") only when the MeshMigration says spec.policyMigration: Apply; otherwise the wave stops at its precheck"})
				continue
			}
			add(Finding{Severity: SeverityBlocker, Check: check, Namespace: e.W.Namespace, Workload: e.W.Name,
				Object: f.Object(), Message: row.What + ": " + row.Why})
		}
	}
	moveBlocks, err := policyMoveBlocks(inv, &opts, evals)
	if err != nil {
		add(Finding{Severity: SeverityBlocker, Check: checkL7PolicyMoveBlocked, Message: err.Error()})
	}
	for _, ns := range slices.Sorted(maps.Keys(moveBlocks)) {
		for _, why := range moveBlocks[ns] {
			add(Finding{Severity: SeverityBlocker, Check: checkL7PolicyMoveBlocked, Namespace: ns, Message: why})
		}
	}
	if needWaypoint > 0 && !inv.GatewayAPICRDs {
		f := Finding{Check: "gateway-api-crds",
			Message: fmt.Sprintf("%d workload(s) need a waypoint, which is a Gateway API Gateway, and the Gateway API CRDs are not installed", needWaypoint)}
		if live {
			f.Severity = SeverityBlocker
		} else {
			f.Severity = SeverityWarning
			f.Message = fmt.Sprintf("%d workload(s) need a waypoint (a Gateway API Gateway); no Gateway API CRD or Gateway is among the manifests, so check the cluster has them (precheck --cluster)", needWaypoint)
		}
		add(f)
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.Severity != b.Severity {
			return a.Severity == SeverityBlocker
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Workload != b.Workload {
			return a.Workload < b.Workload
		}
		return a.Object < b.Object
	})
	for _, f := range r.Findings {
		if f.Severity == SeverityBlocker {
			r.Blockers++
		} else {
			r.Warnings++
		}
	}
	return r
}
