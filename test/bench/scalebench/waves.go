package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshshift/meshshift/api/v1alpha1"
)

type waves struct {
	flipToReady, breachToRolledBack time.Duration
}

// migration moves names to ambient in one wave; its gate's one SLI is the
// constant value (a PromQL literal, evaluated by the real Prometheus) under
// a limit of 0.5: 0 passes, 1 breaks at the first check.
func migration(name string, names []string, promURL string, value int) *v1alpha1.MeshMigration {
	return &v1alpha1.MeshMigration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.MeshMigrationSpec{
			TargetMode:   v1alpha1.ModeAmbient,
			Waves:        []v1alpha1.WaveSpec{{Name: "wave", Namespaces: names}},
			BakeTime:     &metav1.Duration{Duration: 3 * time.Second},
			ReadyTimeout: &metav1.Duration{Duration: 5 * time.Minute},
			Gate: &v1alpha1.GateSpec{
				PrometheusURL:     promURL,
				Interval:          &metav1.Duration{Duration: time.Second},
				FailuresToBreach:  1,
				InconclusiveLimit: 30,
				SLIs:              []v1alpha1.SLI{{Name: "benchConstant", Query: fmt.Sprintf("vector(%d)", value), Max: "0.5"}},
			},
			Rollback: &v1alpha1.RollbackPolicy{Automatic: ptr.To(true)},
		},
	}
}

// phaseTimes are when the bench first saw each phase of a migration's wave.
type phaseTimes map[v1alpha1.WavePhase]time.Time

// follow polls the migration until its wave reaches one of final, noting
// when each phase was first seen.
func (e *env) follow(ctx context.Context, name string, lg func(string, ...any), final ...v1alpha1.WavePhase) (phaseTimes, *v1alpha1.WaveStatus, error) {
	seen := phaseTimes{}
	deadline := time.Now().Add(10 * time.Minute)
	var said time.Time
	for {
		var mm v1alpha1.MeshMigration
		if err := e.cl.Get(ctx, client.ObjectKey{Name: name}, &mm); err != nil {
			return seen, nil, fmt.Errorf("get meshmigration %s: %w", name, err)
		}
		if len(mm.Status.Waves) > 0 {
			w := &mm.Status.Waves[0]
			if _, ok := seen[w.Phase]; !ok {
				seen[w.Phase] = time.Now()
				said = time.Time{}
			}
			if time.Since(said) > 15*time.Second {
				lg("meshmigration %s: wave %s: %s", name, w.Phase, w.Message)
				said = time.Now()
			}
			for _, f := range final {
				if w.Phase == f {
					return seen, w, nil
				}
			}
			if w.Phase == v1alpha1.WaveFailed || w.Phase == v1alpha1.WaveRolledBack {
				return seen, w, fmt.Errorf("meshmigration %s: wave %s: %s", name, w.Phase, w.Message)
			}
		}
		if time.Now().After(deadline) {
			return seen, nil, fmt.Errorf("meshmigration %s: wave not %v after 10m (seen %v)", name, final, seen)
		}
		select {
		case <-ctx.Done():
			return seen, nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// firstOf is the earliest time any of phases was seen.
func (s phaseTimes) firstOf(phases ...v1alpha1.WavePhase) (time.Time, bool) {
	var t time.Time
	for _, p := range phases {
		if at, ok := s[p]; ok && (t.IsZero() || at.Before(t)) {
			t = at
		}
	}
	return t, !t.IsZero()
}

// podModes counts the pods of names by their meshshift.io/dataplane label.
func (e *env) podModes(ctx context.Context, names []string) (map[string]int, error) {
	out := map[string]int{}
	for _, ns := range names {
		var pods corev1.PodList
		if err := e.cl.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("list pods in %s: %w", ns, err)
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
				out[p.Labels[v1alpha1.LabelDataplane]]++
			}
		}
	}
	return out, nil
}

// runWaves runs the promoted wave, then the breached one.
// With profileDir, the manager's CPU profile of the first 60 s of the
// promoted wave is written there as manager-wave-cpu.pprof.
func (e *env) runWaves(ctx context.Context, m *manager, l layout, promURL, profileDir string, lg func(string, ...any)) (waves, error) {
	var out waves
	if profileDir != "" {
		go func() {
			b, err := get(ctx, m.pprofURL+"/profile?seconds=60")
			if err == nil {
				err = writeFile(filepath.Join(profileDir, "manager-wave-cpu.pprof"), b)
			}
			if err != nil {
				lg("wave profile not written: %v", err)
			}
		}()
	}
	if err := e.create(ctx, migration("scale-promoted", l.waveA(), promURL, 0)); err != nil {
		return out, err
	}
	seen, w, err := e.follow(ctx, "scale-promoted", lg, v1alpha1.WavePromoted)
	if err != nil {
		return out, err
	}
	flip, ok1 := seen.firstOf(v1alpha1.WaveFlipping, v1alpha1.WaveRestarting)
	ready, ok2 := seen.firstOf(v1alpha1.WaveBaking, v1alpha1.WavePromoted)
	if !ok1 || !ok2 {
		return out, fmt.Errorf("meshmigration scale-promoted: flip or bake not seen (seen %v)", seen)
	}
	out.flipToReady = ready.Sub(flip)
	modes, err := e.podModes(ctx, l.waveA())
	if err != nil {
		return out, err
	}
	lg("wave of %d namespaces promoted: flip to every pod Ready %.1fs (status: started %s, bake started %s); running pods by mode %v",
		len(l.waveA()), out.flipToReady.Seconds(), stamp(w.StartedAt), stamp(w.BakeStartedAt), modes)

	if err := e.create(ctx, migration("scale-breached", l.waveB(), promURL, 1)); err != nil {
		return out, err
	}
	seen, w, err = e.follow(ctx, "scale-breached", lg, v1alpha1.WaveRolledBack)
	if err != nil {
		return out, err
	}
	breach, ok1 := seen.firstOf(v1alpha1.WaveRollingBack)
	done, ok2 := seen.firstOf(v1alpha1.WaveRolledBack)
	if !ok1 || !ok2 {
		return out, fmt.Errorf("meshmigration scale-breached: rollback not seen (seen %v)", seen)
	}
	out.breachToRolledBack = done.Sub(breach)
	if f, ok := seen.firstOf(v1alpha1.WaveFlipping, v1alpha1.WaveRestarting); ok {
		if b, ok := seen.firstOf(v1alpha1.WaveBaking); ok {
			lg("breached wave: flip to every pod Ready %.1fs", b.Sub(f).Seconds())
		}
	}
	modes, err = e.podModes(ctx, l.waveB())
	if err != nil {
		return out, err
	}
	lg("wave of %d namespaces breached and rolled back: breach to rollback complete %.1fs (status: rollback started %s, finished %s); running pods by mode %v",
		len(l.waveB()), out.breachToRolledBack.Seconds(), stamp(w.RollbackStartedAt), stamp(w.FinishedAt), modes)
	return out, nil
}

func stamp(t *metav1.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format("15:04:05")
}
