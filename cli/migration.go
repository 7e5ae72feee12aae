package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

// GetMigration reads one MeshMigration; a missing one is an error that says so.
func GetMigration(ctx context.Context, c client.Client, name string) (*meshv1alpha1.MeshMigration, error) {
	mm := &meshv1alpha1.MeshMigration{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, mm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("meshmigration %s not found", name)
		}
		return nil, fmt.Errorf("get meshmigration %s: %w", name, err)
	}
	return mm, nil
}

// Change is one edit of a MeshMigration's spec by a person.
type Change func(mm *meshv1alpha1.MeshMigration) (string, error)

// Pause stops the migration from starting or promoting a wave.
func Pause(mm *meshv1alpha1.MeshMigration) (string, error) {
	if mm.Spec.Paused {
		return "already paused", nil
	}
	mm.Spec.Paused = true
	return "paused", nil
}

// Resume lets a paused migration go on.
func Resume(mm *meshv1alpha1.MeshMigration) (string, error) {
	if !mm.Spec.Paused {
		return "not paused", nil
	}
	mm.Spec.Paused = false
	return "resumed", nil
}

// Rollback asks the migrator to roll back every wave, newest first.
func Rollback(mm *meshv1alpha1.MeshMigration) (string, error) {
	if mm.Spec.RollbackRequested {
		return "rollback already requested", nil
	}
	mm.Spec.RollbackRequested = true
	return "rollback requested: every flipped wave is restored, newest first", nil
}

// Approve approves waves up to count (1-based, 0 means the next one).
func Approve(count int32) Change {
	return func(mm *meshv1alpha1.MeshMigration) (string, error) {
		total := int32(len(mm.Spec.Waves))
		if total == 0 {
			total = int32(len(mm.Status.Waves))
		}
		want := count
		if want == 0 {
			want = mm.Spec.ApprovedWaves + 1
		}
		if total > 0 && want > total {
			return "", fmt.Errorf("approve wave %d: the migration has %d wave(s)", want, total)
		}
		if want <= mm.Spec.ApprovedWaves {
			return fmt.Sprintf("waves 1-%d already approved", mm.Spec.ApprovedWaves), nil
		}
		mm.Spec.ApprovedWaves = want
		msg := fmt.Sprintf("approved waves 1-%d", want)
		if mm.Spec.Approval != meshv1alpha1.ApprovalManual {
			msg += " (approval is Automatic: waves do not wait for it)"
		}
		return msg, nil
	}
}

// Apply reads the migration, applies change and writes the spec back with an
// optimistic lock (a concurrent writer makes it read and retry).
func Apply(ctx context.Context, c client.Client, name string, change Change) (string, error) {
	var msg string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		mm, err := GetMigration(ctx, c, name)
		if err != nil {
			return err
		}
		orig := mm.DeepCopy()
		if msg, err = change(mm); err != nil {
			return err
		}
		if specEqual(&mm.Spec, &orig.Spec) {
			return nil
		}
		if err := c.Patch(ctx, mm, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("patch meshmigration %s: %w", name, err)
		}
		return nil
	})
	return msg, err
}

// specEqual compares the fields a Change edits.
func specEqual(a, b *meshv1alpha1.MeshMigrationSpec) bool {
	return a.Paused == b.Paused && a.ApprovedWaves == b.ApprovedWaves && a.RollbackRequested == b.RollbackRequested
}

// condition returns a condition's status ("-" when absent).
func condition(mm *meshv1alpha1.MeshMigration, t string) string {
	for _, c := range mm.Status.Conditions {
		if c.Type == t {
			return string(c.Status)
		}
	}
	return "-"
}

// waveSummary is "phase of the current wave (i/n)".
func waveSummary(mm *meshv1alpha1.MeshMigration) string {
	n := len(mm.Status.Waves)
	if n == 0 {
		return "not started"
	}
	i := int(mm.Status.CurrentWave)
	if i < 0 || i >= n {
		i = n - 1
	}
	w := mm.Status.Waves[i]
	return fmt.Sprintf("%d/%d %s %s", i+1, n, w.Name, orDash(string(w.Phase)))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func age(now time.Time, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String()
}

// PrintMigrations writes the list view of status.
func PrintMigrations(w io.Writer, now time.Time, list []meshv1alpha1.MeshMigration) error {
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	if len(list) == 0 {
		o := &out{w: w}
		o.ln("No MeshMigration found.")
		return o.err
	}
	tw := newTable(w)
	tw.ln("NAME\tTARGET\tWAVE\tPROGRESSING\tSUCCEEDED\tROLLED BACK\tPAUSED\tAGE")
	for i := range list {
		mm := &list[i]
		tw.f("%s\t%s\t%s\t%s\t%s\t%s\t%t\t%s\n", mm.Name, mm.Spec.TargetMode, waveSummary(mm),
			condition(mm, "Progressing"), condition(mm, "Succeeded"), condition(mm, "RolledBack"), mm.Spec.Paused,
			age(now, mm.CreationTimestamp.Time))
	}
	return tw.flush()
}

// PrintMigration writes one migration: spec settings, conditions, waves, and
// the latest gate values against their limits.
func PrintMigration(w io.Writer, now time.Time, mm *meshv1alpha1.MeshMigration) error {
	s := &mm.Spec
	approval := string(s.Approval)
	if approval == "" {
		approval = string(meshv1alpha1.ApprovalAutomatic)
	}
	o := &out{w: w}
	o.f("MeshMigration %s → %s   (generation %d, observed %d, age %s)\n", mm.Name, s.TargetMode,
		mm.Generation, mm.Status.ObservedGeneration, age(now, mm.CreationTimestamp.Time))
	flags := []string{"approval " + approval}
	if approval == string(meshv1alpha1.ApprovalManual) {
		flags = append(flags, fmt.Sprintf("approved waves %d", s.ApprovedWaves))
	}
	if s.Paused {
		flags = append(flags, "PAUSED")
	}
	if s.RollbackRequested {
		flags = append(flags, "ROLLBACK REQUESTED")
	}
	if mm.Status.MissedDecisions > 0 {
		flags = append(flags, fmt.Sprintf("%d pod(s) admitted without a decision", mm.Status.MissedDecisions))
	}
	o.f("  %s\n", strings.Join(flags, ", "))
	if len(mm.Status.Conditions) > 0 {
		o.ln("\nConditions:")
		tw := newTable(w)
		tw.ln("  TYPE\tSTATUS\tREASON\tSINCE\tMESSAGE")
		for _, c := range mm.Status.Conditions {
			tw.f("  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, age(now, c.LastTransitionTime.Time), c.Message)
		}
		if err := tw.flush(); err != nil {
			return err
		}
	}
	o.ln("\nWaves:")
	tw := newTable(w)
	tw.ln("  #\tNAME\tNAMESPACES\tPHASE\tSTARTED\tFINISHED\tFAILURES\tINCONCLUSIVE\tMESSAGE")
	if len(mm.Status.Waves) == 0 {
		for i, ws := range s.Waves {
			tw.f("  %d\t%s\t%s\tPending\t-\t-\t0\t0\t\n", i+1, ws.Name, strings.Join(ws.Namespaces, ","))
		}
	}
	marker := func(i int) string {
		if i == int(mm.Status.CurrentWave) && len(mm.Status.Waves) > 0 {
			return ">"
		}
		return " "
	}
	for i, ws := range mm.Status.Waves {
		var started, finished time.Time
		if ws.StartedAt != nil {
			started = ws.StartedAt.Time
		}
		if ws.FinishedAt != nil {
			finished = ws.FinishedAt.Time
		}
		tw.f("%s %d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", marker(i), i+1, ws.Name, strings.Join(ws.Namespaces, ","),
			orDash(string(ws.Phase)), agoOrDash(now, started), agoOrDash(now, finished), ws.Failures, ws.Inconclusive, ws.Message)
	}
	if err := tw.flush(); err != nil {
		return err
	}
	for i, ws := range mm.Status.Waves {
		if ws.Restarted == 0 && ws.WaitingForNextRun == 0 {
			continue
		}
		o.f("  wave %d (%s): %d workload(s) restarted; %d Job(s) and CronJob(s) wait for their next run (not restarted: their next run's pods get the mode of the moment)\n",
			i+1, ws.Name, ws.Restarted, ws.WaitingForNextRun)
	}
	for i, ws := range mm.Status.Waves {
		if len(ws.LastGate) == 0 && len(ws.Baseline) == 0 {
			continue
		}
		o.f("\nGate of wave %d (%s):\n", i+1, ws.Name)
		base := map[string]string{}
		for _, b := range ws.Baseline {
			base[b.Name] = b.Value
		}
		tw := newTable(w)
		tw.ln("  SLI\tBASELINE\tVALUE\tLIMIT\tRESULT\tMESSAGE")
		for _, g := range ws.LastGate {
			tw.f("  %s\t%s\t%s\t%s\t%s\t%s\n", g.Name, orDash(base[g.Name]), orDash(g.Value), orDash(g.Limit), orDash(g.Result), g.Message)
		}
		if len(ws.LastGate) == 0 {
			for _, b := range ws.Baseline {
				tw.f("  %s\t%s\t-\t-\t-\tno check yet\n", b.Name, orDash(b.Value))
			}
		}
		if err := tw.flush(); err != nil {
			return err
		}
	}
	return o.err
}

func agoOrDash(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return age(now, t) + " ago"
}
