package migrator

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

// next asks for the following step at once: the new phase is in the status
// this reconcile writes, and the step after it acts only on what it reads back.
var next = ctrl.Result{RequeueAfter: time.Millisecond}

const (
	defaultBakeTime     = 5 * time.Minute
	defaultReadyTimeout = 10 * time.Minute
)

func bakeTime(mm *meshv1alpha1.MeshMigration) time.Duration {
	if mm.Spec.BakeTime != nil {
		return mm.Spec.BakeTime.Duration
	}
	return defaultBakeTime
}

func readyTimeout(mm *meshv1alpha1.MeshMigration) time.Duration {
	if mm.Spec.ReadyTimeout != nil {
		return mm.Spec.ReadyTimeout.Duration
	}
	return defaultReadyTimeout
}

// wave does the step of wave i's phase.
func (r *Reconciler) wave(ctx context.Context, mm *meshv1alpha1.MeshMigration, gate *GateConfig, i int) (ctrl.Result, error) {
	w := &mm.Status.Waves[i]
	paused := mm.Spec.Paused
	switch w.Phase {
	case meshv1alpha1.WavePending, "":
		if paused {
			return ctrl.Result{}, nil
		}
		if mm.Spec.Approval == meshv1alpha1.ApprovalManual && mm.Spec.ApprovedWaves <= int32(i) {
			msg := fmt.Sprintf("wave %s waits for approval: set spec.approvedWaves to %d", w.Name, i+1)
			if setCondition(mm, ConditionProgressing, false, ReasonAwaitingApproval, msg) {
				r.event(mm, false, ReasonAwaitingApproval, "Approve", "%s", msg)
			}
			return ctrl.Result{}, nil
		}
		return r.precheck(ctx, mm, w)
	case meshv1alpha1.WavePrechecking:
		if paused {
			return ctrl.Result{}, nil
		}
		return r.baseline(ctx, mm, gate, w)
	case meshv1alpha1.WaveMovingPolicies:
		return r.movePolicies(ctx, mm, w)
	case meshv1alpha1.WaveFlipping:
		for _, n := range w.Namespaces {
			if err := r.flipNamespace(ctx, mm, w.Name, n); err != nil {
				return ctrl.Result{}, err
			}
		}
		w.Phase, w.Message = meshv1alpha1.WaveRestarting, "namespaces flipped; restarting workloads"
		r.event(mm, false, ReasonFlipped, "Flip", "wave %s: namespaces %s flipped to %s", w.Name, strings.Join(w.Namespaces, ","), mm.Spec.TargetMode)
		return next, nil
	case meshv1alpha1.WaveRestarting:
		return r.restart(ctx, mm, w)
	case meshv1alpha1.WaveBaking:
		return r.bake(ctx, mm, gate, w)
	case meshv1alpha1.WaveRollingBack:
		return r.rollback(ctx, mm, w)
	case meshv1alpha1.WaveRolledBack, meshv1alpha1.WaveFailed:
		return ctrl.Result{}, r.stopAfter(ctx, mm, w)
	}
	return ctrl.Result{}, nil
}

// precheck checks every namespace of the wave; a blocker pauses the migration
// with the list, for a person to fix and resume.
func (r *Reconciler) precheck(ctx context.Context, mm *meshv1alpha1.MeshMigration, w *meshv1alpha1.WaveStatus) (ctrl.Result, error) {
	var blockers, notes, proposal []string
	for _, n := range w.Namespaces {
		ns := &corev1.Namespace{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: n}, ns); err != nil {
			if apierrors.IsNotFound(err) {
				blockers = append(blockers, "namespace "+n+" not found")
				continue
			}
			return ctrl.Result{}, fmt.Errorf("get namespace %s: %w", n, err)
		}
		if owner := ns.Annotations[AnnotationMigration]; owner != mm.Name {
			other, err := r.liveOwner(ctx, n, mm.Name)
			if err != nil {
				return ctrl.Result{}, err
			}
			if other != "" {
				blockers = append(blockers, "namespace "+n+" is owned by MeshMigration "+other)
				continue
			}
			if err := r.claim(ctx, n, mm.Name); err != nil {
				return ctrl.Result{}, err
			}
		}
		plan, err := r.planNamespace(ctx, mm, ns)
		if err != nil {
			return ctrl.Result{}, err
		}
		blockers = append(blockers, plan.blockers...)
		notes = append(notes, plan.notes...)
		pb, lines, err := r.precheckPolicies(ctx, mm, w, n, plan)
		if err != nil {
			return ctrl.Result{}, err
		}
		blockers = append(blockers, pb...)
		proposal = append(proposal, lines...)
	}
	if len(proposal) > maxProposalLines {
		proposal = append(proposal[:maxProposalLines-1], fmt.Sprintf("... and %d more", len(proposal)-maxProposalLines+1))
	}
	w.PolicyProposal = proposal
	if len(blockers) > 0 {
		msg := fmt.Sprintf("precheck of wave %s: %s", w.Name, strings.Join(blockers, "; "))
		w.Message = msg
		return ctrl.Result{}, r.pause(ctx, mm, ReasonPrecheckFailed, msg)
	}
	if len(notes) > 0 {
		r.event(mm, false, ReasonPrecheckPassed, "Precheck", "wave %s: %s", w.Name, strings.Join(notes, "; "))
	} else {
		r.event(mm, false, ReasonPrecheckPassed, "Precheck", "wave %s: no blockers", w.Name)
	}
	w.Phase, w.Message, w.Inconclusive, w.Failures, w.LastCheckAt = meshv1alpha1.WavePrechecking, "precheck passed; recording the baseline", 0, 0, nil
	return next, nil
}

// baseline records the wave's SLIs before the flip. An SLI with a relative
// limit needs a conclusive baseline; past the inconclusive limit the migration
// pauses.
func (r *Reconciler) baseline(ctx context.Context, mm *meshv1alpha1.MeshMigration, gate *GateConfig, w *meshv1alpha1.WaveStatus) (ctrl.Result, error) {
	if w.LastCheckAt != nil {
		if due := w.LastCheckAt.Add(gate.Interval); r.Clock.Now().Before(due) {
			return ctrl.Result{RequeueAfter: due.Sub(r.Clock.Now())}, nil
		}
	}
	q, err := r.querier(gate.PrometheusURL)
	if err != nil {
		return ctrl.Result{}, err
	}
	g := &Gate{API: q, Clock: r.Clock}
	c := g.Evaluate(ctx, gate, w.Namespaces, nil)
	at := metav1.NewTime(c.At)
	w.LastCheckAt = &at
	var missing []string
	for i, v := range c.Values {
		if v.Result == ResultInconclusive && !isNaN(gate.SLIs[i].MaxIncrease) {
			missing = append(missing, v.Name+": "+v.Message)
		}
	}
	if len(missing) > 0 {
		w.Inconclusive++
		w.Message = "baseline inconclusive: " + strings.Join(missing, "; ")
		if w.Inconclusive >= gate.InconclusiveLimit {
			return ctrl.Result{}, r.pause(ctx, mm, ReasonBaselineInconclusive, fmt.Sprintf("wave %s: %s", w.Name, w.Message))
		}
		return ctrl.Result{RequeueAfter: gate.Interval}, nil
	}
	now := r.now()
	w.Baseline = c.Values
	w.Phase, w.StartedAt, w.Inconclusive, w.LastCheckAt = meshv1alpha1.WaveFlipping, &now, 0, nil
	w.RestartToken = now.UTC().Format(time.RFC3339Nano)
	w.Message = "baseline recorded; flipping"
	if mm.Spec.PolicyMigration == meshv1alpha1.PolicyMigrationApply {
		w.Phase, w.Message = meshv1alpha1.WaveMovingPolicies, "baseline recorded; moving policies to the waypoint"
	}
	r.event(mm, false, ReasonBaselineRecorded, "Baseline", "wave %s: baseline %s", w.Name, valuesString(c.Values))
	return next, nil
}

func isNaN(f float64) bool { return f != f }

// nextRunNote says how many Jobs and CronJobs of the wave were not restarted.
func nextRunNote(w *meshv1alpha1.WaveStatus) string {
	if w.WaitingForNextRun == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d Job(s) and CronJob(s) not restarted: their next run gets the new mode)", w.WaitingForNextRun)
}

func valuesString(vs []meshv1alpha1.SLIValue) string {
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		val := v.Value
		if val == "" {
			val = "n/a"
		}
		parts = append(parts, v.Name+"="+val)
	}
	return strings.Join(parts, " ")
}

// restart restarts the wave's workloads and waits until they are Ready.
func (r *Reconciler) restart(ctx context.Context, mm *meshv1alpha1.MeshMigration, w *meshv1alpha1.WaveStatus) (ctrl.Result, error) {
	ready, why, failed, err := r.restartAndWait(ctx, w, w.RestartToken)
	if err != nil {
		return ctrl.Result{}, err
	}
	if ready {
		now := r.now()
		w.Phase, w.BakeStartedAt, w.LastCheckAt, w.Failures, w.Inconclusive = meshv1alpha1.WaveBaking, &now, nil, 0, 0
		w.Message = "workloads Ready; baking" + nextRunNote(w)
		r.event(mm, false, ReasonReady, "Restart", "wave %s: every workload restarted and Ready%s; baking for %s", w.Name, nextRunNote(w), bakeTime(mm))
		return next, nil
	}
	w.Message = "waiting for " + why
	if failed || (w.StartedAt != nil && r.Clock.Since(w.StartedAt.Time) > readyTimeout(mm)) {
		r.startRollback(ctx, mm, w, ReasonNotReady, fmt.Sprintf("wave %s not Ready after the flip: %s", w.Name, why))
		return next, nil
	}
	return ctrl.Result{RequeueAfter: r.poll()}, nil
}

// restartAndWait writes token into every workload of the wave's namespaces,
// counts them and the Jobs and CronJobs that wait for their next run into
// the wave's status, and says whether all have rolled out.
func (r *Reconciler) restartAndWait(ctx context.Context, w *meshv1alpha1.WaveStatus, token string) (bool, string, bool, error) {
	var restarted, waiting int32
	for _, n := range w.Namespaces {
		rs, wt, err := r.restartNamespace(ctx, n, token)
		if err != nil {
			return false, "", false, err
		}
		restarted, waiting = restarted+rs, waiting+wt
	}
	w.Restarted, w.WaitingForNextRun = restarted, waiting
	for _, n := range w.Namespaces {
		ready, why, failed, err := r.namespaceReady(ctx, n, token)
		if err != nil || !ready {
			return false, why, failed, err
		}
	}
	return true, "", false, nil
}

// bake checks the gate once per interval and promotes, rolls back or pauses.
func (r *Reconciler) bake(ctx context.Context, mm *meshv1alpha1.MeshMigration, gate *GateConfig, w *meshv1alpha1.WaveStatus) (ctrl.Result, error) {
	now := r.Clock.Now()
	if w.BakeStartedAt == nil {
		t := metav1.NewTime(now)
		w.BakeStartedAt = &t
	}
	if w.LastCheckAt != nil {
		if due := w.LastCheckAt.Add(gate.Interval); now.Before(due) {
			return ctrl.Result{RequeueAfter: due.Sub(now)}, nil
		}
	}
	if c := meta.FindStatusCondition(mm.Status.Conditions, ConditionPaused); mm.Spec.Paused && c != nil &&
		c.Status == metav1.ConditionTrue && (c.Reason == ReasonGateInconclusive || c.Reason == ReasonGateBreached) {
		return ctrl.Result{}, nil // the gate paused the migration for a person; it waits too
	}
	q, err := r.querier(gate.PrometheusURL)
	if err != nil {
		return ctrl.Result{}, err
	}
	g := &Gate{API: q, Clock: r.Clock}
	c := g.Evaluate(ctx, gate, w.Namespaces, w.Baseline)
	at := metav1.NewTime(c.At)
	w.LastCheckAt, w.LastGate = &at, c.Values
	gateEvaluationsTotal.WithLabelValues(mm.Name, c.Result).Inc()
	verdict := Step(gate, w, &c, w.BakeStartedAt.Time, bakeTime(mm))
	log.FromContext(ctx).V(1).Info("gate checked", "wave", w.Name, "result", c.Result, "verdict", verdict.String(),
		"failures", w.Failures, "inconclusive", w.Inconclusive)
	switch verdict {
	case VerdictBreach:
		f, _ := c.Failed()
		msg := fmt.Sprintf("wave %s breached its gate: SLI %s = %s, limit %s: %s; %d consecutive failing checks, the last at %s",
			w.Name, f.Name, f.Value, f.Limit, f.Message, w.Failures, c.At.UTC().Format(time.RFC3339Nano))
		r.event(mm, true, ReasonGateBreached, "Bake", "%s", msg)
		if mm.Spec.Rollback != nil && mm.Spec.Rollback.Automatic != nil && !*mm.Spec.Rollback.Automatic {
			w.Message = msg
			return ctrl.Result{}, r.pause(ctx, mm, ReasonGateBreached, msg+"; automatic rollback is off")
		}
		r.startRollback(ctx, mm, w, ReasonGateBreached, msg)
		return next, nil
	case VerdictInconclusive:
		msg := fmt.Sprintf("wave %s: %d consecutive inconclusive gate checks: %s", w.Name, w.Inconclusive, c.Summary())
		w.Message = msg
		return ctrl.Result{}, r.pause(ctx, mm, ReasonGateInconclusive, msg)
	case VerdictPromote:
		if mm.Spec.Paused {
			w.Message = "bake passed; paused before promotion"
			return ctrl.Result{RequeueAfter: gate.Interval}, nil
		}
		if mm.Spec.OriginalPolicies == meshv1alpha1.OriginalPoliciesRemove {
			for _, n := range w.Namespaces {
				if err := r.removeOriginals(ctx, mm.Name, n); err != nil {
					return ctrl.Result{}, err
				}
			}
		}
		fin := r.now()
		w.Phase, w.FinishedAt, w.Reason = meshv1alpha1.WavePromoted, &fin, ReasonWavePromoted
		w.Message = "promoted: " + valuesString(c.Values)
		r.event(mm, false, ReasonWavePromoted, "Promote", "wave %s promoted after %s: %s", w.Name,
			fin.Sub(w.BakeStartedAt.Time).Round(time.Millisecond), valuesString(c.Values))
		return next, nil
	}
	w.Message = fmt.Sprintf("baking: check %s (%d failing, %d inconclusive in a row)", c.Result, w.Failures, w.Inconclusive)
	return ctrl.Result{RequeueAfter: gate.Interval}, nil
}

// startRollback moves a wave to RollingBack; the namespaces are restored by
// the next step, which reads the phase back first.
func (r *Reconciler) startRollback(ctx context.Context, mm *meshv1alpha1.MeshMigration, w *meshv1alpha1.WaveStatus, reason, msg string) {
	now := r.now()
	w.Phase, w.Reason, w.Message = meshv1alpha1.WaveRollingBack, reason, msg
	w.RollbackStartedAt = &now
	w.RollbackToken = now.UTC().Format(time.RFC3339Nano)
	r.event(mm, reason != ReasonRollbackRequested, ReasonRollbackStarted, "Rollback", "wave %s rolling back (%s): %s", w.Name, reason, msg)
	log.FromContext(ctx).Info("wave rolling back", "wave", w.Name, "reason", reason, "message", msg)
}

// rollback restores the wave's namespaces from their records, restarts their
// workloads and waits until they are Ready.
func (r *Reconciler) rollback(ctx context.Context, mm *meshv1alpha1.MeshMigration, w *meshv1alpha1.WaveStatus) (ctrl.Result, error) {
	for _, n := range w.Namespaces {
		if err := r.undoNamespace(ctx, mm.Name, n, false); err != nil {
			return ctrl.Result{}, err
		}
	}
	ready, why, _, err := r.restartAndWait(ctx, w, w.RollbackToken)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !ready {
		w.Message = strings.SplitN(w.Message, "; rollback waiting for", 2)[0] + "; rollback waiting for " + why
		return ctrl.Result{RequeueAfter: r.poll()}, nil
	}
	// Every pod is back on its sidecar: now the moved policies' originals
	// are restored, the copies deleted and the waypoint undone.
	for _, n := range w.Namespaces {
		if err := r.undoNamespace(ctx, mm.Name, n, true); err != nil {
			return ctrl.Result{}, err
		}
	}
	fin := r.now()
	w.Phase, w.FinishedAt = meshv1alpha1.WaveRolledBack, &fin
	w.Message = strings.SplitN(w.Message, "; rollback waiting for", 2)[0] + "; rolled back at " + fin.UTC().Format(time.RFC3339Nano)
	rollbacksTotal.WithLabelValues(mm.Name, w.Reason).Inc()
	took := time.Duration(0)
	if w.RollbackStartedAt != nil {
		took = fin.Sub(w.RollbackStartedAt.Time).Round(time.Millisecond)
	}
	r.event(mm, w.Reason != ReasonRollbackRequested, ReasonWaveRolledBack, "Rollback",
		"wave %s rolled back in %s: namespaces %s restored and Ready", w.Name, took, strings.Join(w.Namespaces, ","))
	return next, nil
}

// stopAfter ends the migration after a wave was rolled back (earlier waves
// stay migrated) and releases the namespaces of the waves that never started.
func (r *Reconciler) stopAfter(ctx context.Context, mm *meshv1alpha1.MeshMigration, w *meshv1alpha1.WaveStatus) error {
	msg := w.Message
	setCondition(mm, ConditionRolledBack, true, w.Reason, msg)
	setCondition(mm, ConditionProgressing, false, ReasonRolledBack, fmt.Sprintf("stopped after wave %s rolled back", w.Name))
	r.event(mm, true, ReasonRolledBack, "Finish", "migration stopped: %s", msg)
	return r.releaseUntouched(ctx, mm)
}

// rollbackAll undoes every wave that changed anything, newest first
// (spec.rollbackRequested).
func (r *Reconciler) rollbackAll(ctx context.Context, mm *meshv1alpha1.MeshMigration) (ctrl.Result, error) {
	for i := len(mm.Status.Waves) - 1; i >= 0; i-- {
		w := &mm.Status.Waves[i]
		switch w.Phase {
		case meshv1alpha1.WaveMovingPolicies, meshv1alpha1.WaveFlipping, meshv1alpha1.WaveRestarting, meshv1alpha1.WaveBaking, meshv1alpha1.WavePromoted:
			mm.Status.CurrentWave = int32(i)
			r.startRollback(ctx, mm, w, ReasonRollbackRequested, fmt.Sprintf("wave %s: rollback requested by spec.rollbackRequested", w.Name))
			return next, nil
		case meshv1alpha1.WaveRollingBack:
			mm.Status.CurrentWave = int32(i)
			setCondition(mm, ConditionProgressing, true, ReasonRollbackRequested, "rolling back wave "+w.Name)
			return r.rollback(ctx, mm, w)
		case meshv1alpha1.WavePrechecking:
			w.Phase, w.Message = meshv1alpha1.WavePending, "not started: rollback requested"
		}
	}
	msg := "every wave that changed a namespace is rolled back"
	setCondition(mm, ConditionRolledBack, true, ReasonRollbackRequested, msg)
	setCondition(mm, ConditionProgressing, false, ReasonRolledBack, msg)
	r.event(mm, false, ReasonRolledBack, "Finish", "%s", msg)
	return ctrl.Result{}, r.releaseUntouched(ctx, mm)
}
