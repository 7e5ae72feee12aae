package app

import (
	"context"
	"fmt"

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

// setup adds the migrator to mgr when enabled. Its precheck judges
// capabilities as the webhook does (the same --capabilities list), so a wave
// is never flipped to a mode the webhook would not give its pods.
func (m *migratorFlags) setup(mgr ctrl.Manager, capabilities []string) error {
	if !m.enabled {
		return nil
	}
	var caps signals.Capabilities
	for _, c := range capabilities {
		switch c {
		case "ztunnel":
			caps.Ztunnel = true
		case "cilium":
			caps.Cilium = true
		case "spire-ca":
			caps.SpireCA = true
		default:
			return fmt.Errorf("flag --capabilities: %q is not one of ztunnel, cilium, spire-ca", c)
		}
	}
	r := &migrator.Reconciler{
		PrometheusURL: m.prometheusURL,
		Capabilities:  func(context.Context) (signals.Capabilities, error) { return caps, nil },
	}
	return r.SetupWithManager(mgr)
}
