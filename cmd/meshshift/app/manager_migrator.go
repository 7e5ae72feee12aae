package app

import (
	"github.com/spf13/pflag"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/meshshift/meshshift/migrator"
)

// migratorFlags are the manager's flags for the MeshMigration controller.
type migratorFlags struct {
	enabled       bool
	prometheusURL string
}

func (m *migratorFlags) bind(f *pflag.FlagSet) {
	f.BoolVar(&m.enabled, "migrator", true, "run the MeshMigration controller (waves, SLO gate, rollback); it acts only on the leader")
	f.StringVar(&m.prometheusURL, "prometheus-url", "", "Prometheus HTTP API the SLO gate reads when a MeshMigration names none, e.g. http://prometheus.monitoring:9090")
}

// setup adds the migrator to mgr when enabled.
func (m *migratorFlags) setup(mgr ctrl.Manager) error {
	if !m.enabled {
		return nil
	}
	return (&migrator.Reconciler{PrometheusURL: m.prometheusURL}).SetupWithManager(mgr)
}
