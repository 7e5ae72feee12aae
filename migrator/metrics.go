package migrator

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

var (
	waveGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meshshift_migration_wave",
		Help: "1 for the phase each wave of a MeshMigration is in, 0 for the other phases.",
	}, []string{"migration", "wave", "phase"})
	rollbacksTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshshift_migration_rollbacks_total",
		Help: "Waves of MeshMigrations rolled back, by reason (GateBreached, NotReady, RollbackRequested).",
	}, []string{"migration", "reason"})
	gateEvaluationsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshshift_migration_gate_evaluations_total",
		Help: "SLO gate checks of MeshMigrations, by result (Pass, Fail, Inconclusive).",
	}, []string{"migration", "result"})

	registerOnce sync.Once
)

var wavePhases = []meshv1alpha1.WavePhase{
	meshv1alpha1.WavePending, meshv1alpha1.WavePrechecking, meshv1alpha1.WaveFlipping, meshv1alpha1.WaveRestarting,
	meshv1alpha1.WaveBaking, meshv1alpha1.WavePromoted, meshv1alpha1.WaveRollingBack, meshv1alpha1.WaveRolledBack, meshv1alpha1.WaveFailed,
}

// registerMetrics adds the migrator's metrics to controller-runtime's registry once.
func registerMetrics() error {
	var err error
	registerOnce.Do(func() {
		for _, c := range []prometheus.Collector{waveGauge, rollbacksTotal, gateEvaluationsTotal} {
			if e := metrics.Registry.Register(c); e != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(e, &are) {
					err = e
				}
			}
		}
	})
	return err
}

// observeWaves sets the wave gauge from a migration's status.
func observeWaves(mm *meshv1alpha1.MeshMigration) {
	for _, w := range mm.Status.Waves {
		for _, p := range wavePhases {
			v := 0.0
			if w.Phase == p {
				v = 1
			}
			waveGauge.WithLabelValues(mm.Name, w.Name, string(p)).Set(v)
		}
	}
}

func forgetMigration(name string) {
	waveGauge.DeletePartialMatch(prometheus.Labels{"migration": name})
}
