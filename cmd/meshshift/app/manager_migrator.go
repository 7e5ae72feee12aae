package app

import (
	"context"

	"github.com/spf13/pflag"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/meshshift/meshshift/migrator"
	"github.com/meshshift/meshshift/signals"
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

// setup adds the migrator to mgr when enabled. Its precheck sees what the
// webhook's decisions see: the same --capabilities list (or the same
// detection when it is empty), the same index of the mesh objects, and the
// same traffic snapshot (its callers feed the caller-aware precheck; nil
// means no callers are known).
func (m *migratorFlags) setup(mgr ctrl.Manager, capabilities []string, spireCA bool, ix *signals.Index, traffic func() *signals.TrafficSnapshot) error {
	if !m.enabled {
		return nil
	}
	r := &migrator.Reconciler{PrometheusURL: m.prometheusURL, SpireCA: spireCA}
	caps, fixed, err := parseCapabilities(capabilities, spireCA)
	if err != nil {
		return err
	}
	if fixed {
		r.Capabilities = func(context.Context) (signals.Capabilities, error) { return caps, nil }
	}
	r.Features, r.Traffic = ix, traffic
	return r.SetupWithManager(mgr)
}
