package app

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
// detection when it is empty) and an index of the mesh objects.
func (m *migratorFlags) setup(mgr ctrl.Manager, capabilities []string, spireCA bool) error {
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
	ix := signals.NewIndex("")
	if err := indexMeshObjects(mgr, ix); err != nil {
		return err
	}
	r.Features = ix
	return r.SetupWithManager(mgr)
}

// indexMeshObjects feeds ix from the manager's informers of the mesh objects
// (signals.WatchedObjects); a type the cluster does not serve is skipped.
func indexMeshObjects(mgr ctrl.Manager, ix *signals.Index) error {
	log := mgr.GetLogger().WithName("migrator-index")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	onError := func(_ any, err error) { log.Info("mesh object not indexed", "error", err.Error()) }
	for _, obj := range signals.WatchedObjects() {
		cobj, ok := obj.(client.Object)
		if !ok {
			continue
		}
		inf, err := mgr.GetCache().GetInformer(ctx, cobj)
		if err != nil {
			if meta.IsNoMatchError(err) {
				log.Info("mesh object type not watched: the cluster does not serve it", "type", fmt.Sprintf("%T", obj))
				continue
			}
			return fmt.Errorf("get %T informer: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(ix.EventHandler(onError)); err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
	}
	return nil
}
