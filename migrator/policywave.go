package migrator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

// maxProposalLines bounds status.waves[].policyProposal.
const maxProposalLines = 200

// precheckPolicies is the policy part of a namespace's precheck: the
// proposal for the workloads that only selector-attached L7 policies keep on
// a sidecar, and the blockers. With policyMigration Propose, a namespace with
// such a workload trapped by a deny-all policy is blocked (the proposal is
// in the wave's status for review); with Apply, a policy that cannot move
// safely blocks, and so does a caller still on a sidecar outside the wave.
func (r *Reconciler) precheckPolicies(ctx context.Context, mm *meshv1alpha1.MeshMigration, w *meshv1alpha1.WaveStatus, ns string, plan *nsPlan) (blockers, lines []string, err error) {
	if len(plan.moving) == 0 {
		return nil, nil, nil
	}
	prop, err := r.propose(ctx, mm, ns, plan.movingWaypoint, plan.moving)
	if err != nil {
		return nil, nil, err
	}
	lines = proposalLines(ns, prop)
	if !plan.apply {
		if plan.trapped {
			blockers = append(blockers, fmt.Sprintf("%s: %s kept on a sidecar only by selector-attached L7 policies; spec.policyMigration is Propose: review status.waves[].policyProposal, then set spec.policyMigration to Apply to move them",
				ns, strings.Join(plan.moving, ", ")))
		}
		return blockers, lines, nil
	}
	for _, b := range prop.Blocked {
		blockers = append(blockers, ns+": policy cannot move: "+b)
	}
	cb, err := r.sidecarCallers(ctx, w.Namespaces, ns, plan.moving)
	if err != nil {
		return nil, nil, err
	}
	return append(blockers, cb...), lines, nil
}

// movePolicies is the MovingPolicies phase: each namespace's policy move up
// to the step it waits on. When every namespace is done the wave flips; a
// policy that cannot move, or a waypoint not programmed within readyTimeout,
// rolls the wave back.
func (r *Reconciler) movePolicies(ctx context.Context, mm *meshv1alpha1.MeshMigration, w *meshv1alpha1.WaveStatus) (ctrl.Result, error) {
	anyMoved := false
	for _, n := range w.Namespaces {
		done, moved, why, err := r.moveNamespacePolicies(ctx, mm, w.Name, n)
		anyMoved = anyMoved || moved
		var be *blockedError
		if errors.As(err, &be) {
			r.startRollback(ctx, mm, w, ReasonPolicyMoveBlocked, fmt.Sprintf("wave %s: %s", w.Name, be.msg))
			return next, nil
		}
		if err != nil {
			return ctrl.Result{}, err
		}
		if !done {
			if w.PolicyStep != why {
				log.FromContext(ctx).V(1).Info("policy move waiting", "wave", w.Name, "namespace", n, "step", why)
			}
			w.PolicyStep, w.Message = why, "moving policies: "+why
			if w.StartedAt != nil && r.Clock.Since(w.StartedAt.Time) > readyTimeout(mm) {
				r.startRollback(ctx, mm, w, ReasonWaypointNotReady, fmt.Sprintf("wave %s: %s after %s", w.Name, why, readyTimeout(mm)))
				return next, nil
			}
			return ctrl.Result{RequeueAfter: r.poll()}, nil
		}
	}
	if !anyMoved {
		w.Phase, w.PolicyStep, w.Message = meshv1alpha1.WaveFlipping, "nothing to move", "no policies to move; flipping"
		return next, nil
	}
	now := r.now()
	w.WaypointProgrammedAt = &now
	w.Phase, w.PolicyStep, w.Message = meshv1alpha1.WaveFlipping, "moved", "policies moved to the waypoint; flipping"
	r.event(mm, false, ReasonPoliciesMoved, "MovePolicies", "wave %s: waypoints programmed, policies copied to them and originals narrowed to sidecar pods in %s",
		w.Name, strings.Join(w.Namespaces, ","))
	return next, nil
}
