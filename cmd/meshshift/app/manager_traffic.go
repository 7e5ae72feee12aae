package app

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/webhook"
)

// Traffic source names (--traffic-source).
const (
	trafficAgents     = "agents"
	trafficPrometheus = "prometheus"
	trafficNone       = "none"
)

// trafficFlags say where the live traffic that DataplanePolicy rules read
// comes from: the node agents' snapshot endpoints (default), Prometheus
// scraping those agents (for large clusters), or nowhere.
type trafficFlags struct {
	source         string
	interval       time.Duration
	agentNamespace string
	agentSelector  string
	agentPort      int
	prometheusURL  string
	window         time.Duration
}

func (t *trafficFlags) bind(f *pflag.FlagSet) {
	f.StringVar(&t.source, "traffic-source", trafficAgents, "where rules' traffic signals come from: agents (the node agents' snapshot endpoints), prometheus (PromQL over the agents' metrics), or none")
	f.DurationVar(&t.interval, "traffic-interval", 15*time.Second, "how often the traffic snapshot is refreshed")
	f.StringVar(&t.agentNamespace, "agent-namespace", "", "namespace of the node agent pods; empty means meshshift's own (--namespace)")
	f.StringVar(&t.agentSelector, "agent-selector", "app.kubernetes.io/component=agent", "label selector of the node agent pods")
	f.IntVar(&t.agentPort, "agent-port", 9990, "port of the node agents' snapshot endpoint")
	f.StringVar(&t.prometheusURL, "traffic-prometheus-url", "", "Prometheus HTTP API for --traffic-source=prometheus; empty means --prometheus-url")
	f.DurationVar(&t.window, "traffic-window", 2*time.Minute, "rate window of --traffic-source=prometheus")
}

// trafficSource is what the manager runs: one refresh loop, read by the webhook.
type trafficSource interface {
	Refresh(ctx context.Context) error
	Snapshot() *signals.TrafficSnapshot
}

// setup validates the flags, adds the refresh loop to mgr, and returns what
// the webhook reads (nil with --traffic-source=none). namespace is
// meshshift's own, prometheusURL the migrator's default.
func (t *trafficFlags) setup(mgr ctrl.Manager, namespace, prometheusURL string) (webhook.TrafficSource, error) {
	if t.interval < time.Second {
		return nil, fmt.Errorf("flag --traffic-interval %v: must be at least 1s", t.interval)
	}
	var src trafficSource
	var prepare func(context.Context) error
	switch t.source {
	case trafficNone:
		return nil, nil
	case trafficAgents:
		sel, err := labels.Parse(t.agentSelector)
		if err != nil {
			return nil, fmt.Errorf("flag --agent-selector %q: %w", t.agentSelector, err)
		}
		if t.agentPort < 1 || t.agentPort > 65535 {
			return nil, fmt.Errorf("flag --agent-port %d: must be 1-65535", t.agentPort)
		}
		ns := t.agentNamespace
		if ns == "" {
			ns = namespace
		}
		ips := signals.NewPodIPs()
		ips.CronJobOf = cronJobOf(mgr.GetCache())
		as := &signals.AgentSource{Endpoints: agentEndpoints(mgr.GetAPIReader(), ns, sel, t.agentPort), Peers: ips}
		if err := registerCallers(as.CallerEdges); err != nil {
			return nil, err
		}
		src = as
		// The pod informer of the manager's cache (the missed-decision
		// detector's too) feeds the index of the peers' addresses.
		prepare = func(ctx context.Context) error { return signals.WatchPodIPs(ctx, mgr.GetCache(), ips) }
	case trafficPrometheus:
		url := t.prometheusURL
		if url == "" {
			url = prometheusURL
		}
		if url == "" {
			return nil, fmt.Errorf("flag --traffic-source=prometheus needs --traffic-prometheus-url or --prometheus-url")
		}
		c, err := api.NewClient(api.Config{Address: url})
		if err != nil {
			return nil, fmt.Errorf("flag --traffic-prometheus-url %q: %w", url, err)
		}
		src = &signals.PromSource{API: promv1.NewAPI(c), Window: t.window}
	default:
		return nil, fmt.Errorf("flag --traffic-source %q: must be one of %s, %s, %s", t.source, trafficAgents, trafficPrometheus, trafficNone)
	}
	if err := mgr.Add(&trafficLoop{src: src, name: t.source, interval: t.interval, prepare: prepare}); err != nil {
		return nil, fmt.Errorf("add traffic source: %w", err)
	}
	return src.Snapshot, nil
}

// trafficLoop refreshes the snapshot every interval on every replica: the
// webhook, which reads it, serves on all of them, not only on the leader.
type trafficLoop struct {
	src      trafficSource
	name     string
	interval time.Duration
	prepare  func(context.Context) error // may be nil
}

var _ manager.LeaderElectionRunnable = (*trafficLoop)(nil)

func (l *trafficLoop) NeedLeaderElection() bool { return false }

func (l *trafficLoop) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("traffic")
	if l.prepare != nil {
		if err := l.prepare(ctx); err != nil {
			return fmt.Errorf("traffic source %s: %w", l.name, err)
		}
	}
	tick := time.NewTicker(l.interval)
	defer tick.Stop()
	for {
		if err := l.src.Refresh(ctx); err != nil {
			log.Info("traffic refresh incomplete", "source", l.name, "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// callerEdges is what the one registered meshshift_workload_caller_connections
// collector reads: the callers of the last agent source set up in this process.
var (
	callerEdges     atomic.Pointer[func() signals.CallerEdges]
	callersRegister sync.Once
	callersErr      error
)

// registerCallers points the manager's caller metric at edges, registering
// the collector with the manager's metrics registry the first time.
func registerCallers(edges func() signals.CallerEdges) error {
	callerEdges.Store(&edges)
	callersRegister.Do(func() {
		read := func() signals.CallerEdges { return (*callerEdges.Load())() }
		if err := ctrlmetrics.Registry.Register(signals.NewCallersCollector(read, signals.MaxCallerSeries)); err != nil {
			callersErr = fmt.Errorf("register caller metric: %w", err)
		}
	})
	return callersErr
}

// cronJobOf names the CronJob that controls a Job, from the manager's cache
// of Jobs' metadata (the webhook's; started on first use otherwise).
func cronJobOf(r client.Reader) func(namespace, job string) (string, bool) {
	return func(namespace, job string) (string, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m := webhook.JobMetadata()
		if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: job}, m); err != nil {
			return "", false
		}
		if c := metav1.GetControllerOf(m); c != nil && c.Kind == "CronJob" {
			return c.Name, true
		}
		return "", false
	}
}

// agentEndpoints lists the agent pods straight from the API server (no
// cluster-wide pod cache for a list made once per interval).
func agentEndpoints(r client.Reader, namespace string, sel labels.Selector, port int) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		var pods corev1.PodList
		if err := r.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return nil, fmt.Errorf("list agent pods in %s: %w", namespace, err)
		}
		return signals.AgentEndpoints(pods.Items, port), nil
	}
}
