package app

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlzap "sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/webhook"
)

// managerOptions are the manager command's flags.
type managerOptions struct {
	kubeconfig    string
	metricsAddr   string
	probeAddr     string
	pprofAddr     string
	leaderElect   bool
	leaderElectNS string
	shutdownDrain time.Duration
	zap           ctrlzap.Options
	webhook       webhookFlags
	migrator      migratorFlags
	traffic       trafficFlags
}

func newManagerCommand() *cobra.Command {
	o := &managerOptions{zap: ctrlzap.Options{Development: false}}
	cmd := &cobra.Command{
		Use:   "manager",
		Short: "Run the controller manager: admission webhooks and the migrator",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runManager(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "path of a kubeconfig file; empty means in-cluster or $KUBECONFIG")
	f.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "address the Prometheus metrics endpoint binds to; 0 disables it")
	f.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address the /healthz and /readyz probes bind to")
	f.StringVar(&o.pprofAddr, "pprof-bind-address", "", "address Go's /debug/pprof profiles are served on (e.g. 127.0.0.1:6060); empty disables them")
	f.BoolVar(&o.leaderElect, "leader-elect", false, "hold a lease so that only one manager replica acts at a time")
	f.StringVar(&o.leaderElectNS, "leader-election-namespace", "", "namespace of the leader election lease; empty means the manager's own")
	f.DurationVar(&o.shutdownDrain, "shutdown-drain", 3*time.Second, "on SIGTERM, how long the webhook keeps answering while telling callers to reconnect (to the other replicas) before the manager stops")
	o.webhook.bind(f)
	o.migrator.bind(f)
	o.traffic.bind(f)
	zfs := flag.NewFlagSet("zap", flag.ContinueOnError)
	o.zap.BindFlags(zfs)
	f.AddGoFlagSet(zfs)
	return cmd
}

// Client-side rate limits where the kubeconfig sets none (client-go's
// default is 5 requests/s, burst 10): plan --cluster's discovery and lists
// of every kind it reads, and the manager's discovery, waited seconds on it.
const (
	defaultQPS   = 50
	defaultBurst = 100
)

// restConfig loads the kubeconfig named by a flag, else the usual places.
func restConfig(path string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if path != "" {
		if cfg, err = clientcmd.BuildConfigFromFlags("", path); err != nil {
			return nil, fmt.Errorf("load kubeconfig %s: %w", path, err)
		}
	} else if cfg, err = ctrl.GetConfig(); err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		cfg.QPS, cfg.Burst = defaultQPS, defaultBurst
	}
	return cfg, nil
}

// The manager's own permissions; each controller and webhook declares the rest
// beside its code. `make manifests` turns these markers into config/rbac.
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

func runManager(cmd *cobra.Command, o *managerOptions) error {
	log := ctrlzap.New(ctrlzap.UseFlagOptions(&o.zap))
	ctrl.SetLogger(log)
	cfg, err := restConfig(o.kubeconfig)
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  newScheme(),
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "meshshift-manager.meshshift.io",
		LeaderElectionNamespace: o.leaderElectNS,
		// The process ends when the manager stops: hand the lease over at
		// once instead of letting the next replica wait out its duration.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cacheOptions(),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	ns := o.webhook.resolveNamespace()
	traffic, err := o.traffic.setup(mgr, ns, o.migrator.prometheusURL)
	if err != nil {
		return fmt.Errorf("set up traffic source: %w", err)
	}
	// One index of the mesh objects, fed by the manager's informers, serves
	// both the webhook's decisions and the migrator's precheck.
	features := signals.NewIndex("")
	if err := signals.Watch(cmd.Context(), mgr.GetCache(), features, log.WithName("index")); err != nil {
		return fmt.Errorf("watch mesh objects: %w", err)
	}
	drain := &webhook.Drain{}
	if err := o.webhook.setup(mgr, ns, traffic, features, drain); err != nil {
		return fmt.Errorf("set up admission webhooks: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add ready check: %w", err)
	}
	if err := o.migrator.setup(mgr, o.webhook.capabilities, o.webhook.spireCA, features, traffic); err != nil {
		return fmt.Errorf("set up migrator: %w", err)
	}
	if err := addReleaseAfterSync(mgr, log.WithName("memory")); err != nil {
		return fmt.Errorf("add memory release after sync: %w", err)
	}
	log.Info("starting manager", "version", Version())
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	ctx := drainOnSignal(context.Background(), sig, drain, o.shutdownDrain, log, os.Exit)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	log.Info("manager stopped")
	return nil
}
