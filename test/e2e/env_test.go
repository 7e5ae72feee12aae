package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/migrator"
	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/test/prom"
	"github.com/meshshift/meshshift/webhook"
	"github.com/meshshift/meshshift/webhook/webhooktest"
)

const migratorUser = "meshshift-migrator"

var caps = signals.Capabilities{Ztunnel: true}

// env is one control plane (API server, kube-controller-manager, scheduler,
// two kwok nodes) with Gateway API's CRDs, the real meshshift webhook served by
// a manager of its own (it stays up while migrator managers are killed), a
// real Prometheus and the exporter it scrapes. Tests share it and use their
// own namespaces.
type env struct {
	c        *harness.Cluster
	cl       client.Client
	scheme   *runtime.Scheme
	migrator *rest.Config
	exp      *prom.Exporter
	// expStop is a second exporter (target) that a test may stop outright.
	expStop   *prom.Exporter
	prom      *prom.Server
	startedAt time.Time
	// istio is true when the environment runs istiod with Istio's CRDs; the
	// migrators then read mesh objects through a signals index.
	istio bool
}

func newScheme() *runtime.Scheme {
	s := harness.NewScheme()
	utilruntime.Must(gatewayv1.Install(s))
	return s
}

func moduleDir(t testing.TB, mod string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod).Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", mod, err)
	}
	return strings.TrimSpace(string(out))
}

func startEnv(t *testing.T) *env {
	t.Helper()
	return startEnvWith(t, false)
}

// startEnvWith is startEnv; with istio, Istio's CRDs are installed and
// istiod (ambient profile) runs, so waypoints are programmed for real.
func startEnvWith(t *testing.T, istio bool) *env {
	t.Helper()
	if os.Getenv("MESHSHIFT_E2E_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	}
	e := &env{scheme: newScheme(), startedAt: time.Now(), istio: istio}
	crds := []string{filepath.Join(moduleDir(t, "sigs.k8s.io/gateway-api"), "config", "crd", "standard")}
	if istio {
		crds = append(crds, istioCRDs(t))
	}
	e.c = harness.Start(t, harness.Options{
		CRDPaths: crds, ControllerManager: true, Scheduler: true, KwokNodes: 2, Scheme: e.scheme,
	})
	if istio {
		startIstiod(t, e.c)
	}
	var err error
	if e.cl, err = client.New(e.c.Config, client.Options{Scheme: e.scheme}); err != nil {
		t.Fatal(err)
	}
	u, err := e.c.Env.AddUser(envtest.User{Name: migratorUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("add migrator user: %v", err)
	}
	e.migrator = u.Config()
	e.startWebhook(t)
	e.exp = prom.NewExporter(t)
	e.expStop = prom.NewExporter(t)
	e.prom = prom.Start(t, e.exp.Addr, e.expStop.Addr)
	t.Logf("environment up in %v", time.Since(e.startedAt).Round(time.Millisecond))
	return e
}

// startWebhook installs the shipped webhook configurations with their
// clientConfig turned into a URL on 127.0.0.1 and serves them from a manager
// that runs until the test ends.
func (e *env) startWebhook(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := e.cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: webhook.DefaultNamespace}}); err != nil {
		t.Fatal(err)
	}
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := webhooktest.InstallConfigurations(ctx, e.cl, port, "", nil); err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(e.c.Config, ctrl.Options{
		Scheme: e.scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := webhook.Setup(mgr, webhook.Options{
		Host: "127.0.0.1", Port: port, CertIPs: []net.IP{net.ParseIP("127.0.0.1")},
		MigratorUsername: migratorUser, Capabilities: webhook.StaticCapabilities(caps),
	}); err != nil {
		t.Fatalf("set up webhook: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("webhook manager stopped: %v", err)
		}
	})
	// Wait until a pod create passes through the mutating webhook.
	probe := "webhook-probe"
	if err := e.cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: probe}}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: probe},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "c"}}}}
		if err := e.cl.Create(ctx, p, client.DryRunAll); err != nil {
			return false, nil
		}
		return p.Labels[meshv1alpha1.LabelDataplane] != "", nil
	})
	if err != nil {
		t.Fatalf("webhook never answered: %v", err)
	}
}

// migratorOpts tune a migrator manager.
type migratorOpts struct {
	// releaseLease hands the lease over at stop; false simulates a crash.
	releaseLease bool
	// restartOnLeaseLoss starts a new manager when one exits because it lost
	// its lease (as the pod's restart would): on a loaded machine a 2 s lease
	// can lapse, and a test waiting for the wave would otherwise wait for
	// nobody.
	restartOnLeaseLoss bool
}

// newMigratorManager builds a leader-elected migrator manager (as the
// migrator user); its context must be cancelled to stop the index.
func (e *env) newMigratorManager(ctx context.Context, o migratorOpts) (ctrl.Manager, error) {
	mgr, err := ctrl.NewManager(e.migrator, ctrl.Options{
		Scheme: e.scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		LeaderElection: true, LeaderElectionID: "meshshift-manager.meshshift.io", LeaderElectionNamespace: webhook.DefaultNamespace,
		LeaseDuration: ptr.To(2 * time.Second), RenewDeadline: ptr.To(1500 * time.Millisecond), RetryPeriod: ptr.To(200 * time.Millisecond),
		LeaderElectionReleaseOnCancel: o.releaseLease,
		Controller:                    config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, err
	}
	r := &migrator.Reconciler{
		Capabilities:  func(context.Context) (signals.Capabilities, error) { return caps, nil },
		PrometheusURL: e.prom.URL, PollInterval: 200 * time.Millisecond,
	}
	if e.istio {
		ix := signals.NewIndex("")
		if err := signals.Watch(ctx, mgr.GetCache(), ix, mgr.GetLogger().WithName("index")); err != nil {
			return nil, err
		}
		r.Features = ix
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	return mgr, nil
}

// startMigrator runs a migrator manager (leader-elected, as the migrator user)
// until the returned stop is called or the test ends.
func (e *env) startMigrator(t *testing.T, o migratorOpts) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := e.newMigratorManager(ctx, o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	restarts := make(chan error, 10)
	go func() {
		for {
			err := mgr.Start(ctx)
			if ctx.Err() != nil || !o.restartOnLeaseLoss || err == nil || !strings.Contains(err.Error(), "leader election lost") {
				done <- err
				return
			}
			select {
			case restarts <- err:
			default:
			}
			if mgr, err = e.newMigratorManager(ctx, o); err != nil {
				done <- err
				return
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			err := <-done
			close(restarts)
			for r := range restarts {
				t.Logf("migrator manager restarted after: %v", r)
			}
			if err != nil {
				t.Logf("migrator manager stopped: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// app is the one Deployment and Service every test namespace holds.
const app = "web"

// makeNamespaces creates sidecar-mode namespaces, each with a 2-replica
// Deployment and a Service, and healthy traffic in the exporter.
func (e *env) makeNamespaces(t *testing.T, names ...string) {
	t.Helper()
	e.makeNamespacesSlow(t, 0, names...)
}

// makeNamespacesSlow is makeNamespaces with the Deployments' minReadySeconds,
// which makes a rollout last at least that long per pod.
func (e *env) makeNamespacesSlow(t *testing.T, minReady int32, names ...string) {
	t.Helper()
	ctx := context.Background()
	for _, n := range names {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"istio-injection": "enabled", "team": "shop"}}}
		if err := e.cl.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{"app": app}
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: n, Name: app},
			Spec: appsv1.DeploymentSpec{
				Replicas:        ptr.To[int32](2),
				MinReadySeconds: minReady,
				Selector:        &metav1.LabelSelector{MatchLabels: labels},
				Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
					RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: ptr.To(intstr.FromInt32(0)), MaxSurge: ptr.To(intstr.FromInt32(1))}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: "web:1"}}},
				},
			},
		}
		if err := e.cl.Create(ctx, dep); err != nil {
			t.Fatal(err)
		}
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: n, Name: app},
			Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}},
		}
		if err := e.cl.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
		e.exp.Set(n, prom.DefaultTraffic)
	}
	for _, n := range names {
		e.waitPods(t, n, "sidecar")
	}
	e.waitSeries(t, names...)
}

// waitSeries waits until Prometheus holds enough of each namespace's series
// for the gate's minimum sample.
func (e *env) waitSeries(t *testing.T, names ...string) {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: e.prom.URL})
	if err != nil {
		t.Fatal(err)
	}
	q := promv1.NewAPI(c)
	for _, n := range names {
		query := fmt.Sprintf(`sum(increase(meshshift_http_requests_total{namespace=%q}[5s])) >= 100`, n)
		err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			v, _, _, err := q.Query(ctx, query, time.Now())
			if err != nil {
				return false, nil
			}
			vec, ok := v.(model.Vector)
			return ok && len(vec) == 1, nil
		})
		if err != nil {
			t.Fatalf("prometheus has no series of namespace %s: %v", n, err)
		}
	}
}

// waitPods waits until the namespace's app pods are exactly the Deployment's
// replicas, all Ready, none terminating, all labeled for mode.
func (e *env) waitPods(t *testing.T, ns string, mode meshv1alpha1.Mode) {
	t.Helper()
	e.waitPodsOf(t, ns, app, 2, mode)
}

// waitPodsOf is waitPods for the pods labeled app=name, want of them.
func (e *env) waitPodsOf(t *testing.T, ns, name string, want int, mode meshv1alpha1.Mode) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		var pods corev1.PodList
		if err := e.cl.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": name}); err != nil {
			return false, err
		}
		if len(pods.Items) != want {
			last = fmt.Sprintf("%d pods", len(pods.Items))
			return false, nil
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil || !podReady(&p) {
				last = p.Name + " not Ready or terminating"
				return false, nil
			}
			if err := modeLabelsOK(p.Labels, mode); err != "" {
				last = p.Name + ": " + err
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("pods %s of %s never all Ready in mode %s: %s", name, ns, mode, last)
	}
}

// modeLabelsOK checks a pod's labels against the mesh's contract for mode.
func modeLabelsOK(l map[string]string, mode meshv1alpha1.Mode) string {
	want := map[string]string{meshv1alpha1.LabelDataplane: string(mode)}
	switch mode {
	case meshv1alpha1.ModeSidecar:
		// Before a flip and after a rollback nothing asks for a mode: the
		// webhook keeps the sidecar the namespace's istio-injection label
		// gives and writes none of the mesh's labels (do no harm); a pod
		// asked to be sidecar carries sidecar.istio.io/inject=true.
		if v, ok := l["sidecar.istio.io/inject"]; ok && v != "true" {
			return fmt.Sprintf("label sidecar.istio.io/inject=%q on a sidecar pod", v)
		}
	case meshv1alpha1.ModeAmbient:
		want["sidecar.istio.io/inject"] = "false"
		want["istio.io/dataplane-mode"] = "ambient"
	case meshv1alpha1.ModeAmbientWaypoint:
		want["sidecar.istio.io/inject"] = "false"
		want["istio.io/dataplane-mode"] = "ambient"
		want["istio.io/use-waypoint"] = "waypoint"
	}
	for k, v := range want {
		if l[k] != v {
			return fmt.Sprintf("label %s=%q, want %q", k, l[k], v)
		}
	}
	if mode == meshv1alpha1.ModeSidecar && l["istio.io/dataplane-mode"] == "ambient" {
		return "sidecar pod labeled ambient"
	}
	return ""
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitMigration polls a migration until cond holds.
func (e *env) waitMigration(t *testing.T, name string, timeout time.Duration, what string, cond func(*meshv1alpha1.MeshMigration) bool) *meshv1alpha1.MeshMigration {
	t.Helper()
	mm := &meshv1alpha1.MeshMigration{}
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := e.cl.Get(ctx, client.ObjectKey{Name: name}, mm); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return cond(mm), nil
	})
	if err != nil {
		t.Fatalf("migration %s: %s did not happen within %v; status: %s", name, what, timeout, statusString(mm))
	}
	return mm
}

func statusString(mm *meshv1alpha1.MeshMigration) string {
	var b strings.Builder
	for _, c := range mm.Status.Conditions {
		fmt.Fprintf(&b, "\n  %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
	}
	for _, w := range mm.Status.Waves {
		fmt.Fprintf(&b, "\n  wave %s %v %s: %s (failures %d, inconclusive %d)", w.Name, w.Namespaces, w.Phase, w.Message, w.Failures, w.Inconclusive)
	}
	fmt.Fprintf(&b, "\n  spec.paused=%v", mm.Spec.Paused)
	return b.String()
}

func waveIs(i int, p meshv1alpha1.WavePhase) func(*meshv1alpha1.MeshMigration) bool {
	return func(mm *meshv1alpha1.MeshMigration) bool {
		return len(mm.Status.Waves) > i && mm.Status.Waves[i].Phase == p
	}
}

func condTrue(typ string) func(*meshv1alpha1.MeshMigration) bool {
	return func(mm *meshv1alpha1.MeshMigration) bool {
		for _, c := range mm.Status.Conditions {
			if c.Type == typ {
				return c.Status == metav1.ConditionTrue
			}
		}
		return false
	}
}

func condition(mm *meshv1alpha1.MeshMigration, typ string) metav1.Condition {
	for _, c := range mm.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

// events lists the reasons of the Events recorded on a migration, oldest first.
func (e *env) events(t *testing.T, name string) []string {
	t.Helper()
	var list eventsv1.EventList
	if err := e.cl.List(context.Background(), &list, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range list.Items {
		if ev.Regarding.Kind == "MeshMigration" && ev.Regarding.Name == name {
			out = append(out, ev.Reason+": "+ev.Note)
		}
	}
	return out
}

// metricValue reads a metric of the migrator from controller-runtime's
// registry (the migrator runs in this process); -1 when absent.
func metricValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// gate is a short gate for tests: 1 s checks over a 5 s window.
func gate(failures, inconclusive int32) *meshv1alpha1.GateSpec {
	return &meshv1alpha1.GateSpec{
		Interval: &metav1.Duration{Duration: time.Second}, Window: &metav1.Duration{Duration: 5 * time.Second},
		FailuresToBreach: failures, InconclusiveLimit: inconclusive,
		SLIs: []meshv1alpha1.SLI{
			{Name: "errorRate", Max: "0.1", MinSample: 50},
			{Name: "latencyP99", MaxIncrease: "1", MinSample: 50},
		},
	}
}

// nsState is a namespace's mesh labels and meshshift annotations.
func (e *env) nsState(t *testing.T, name string) (map[string]string, map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{}
	if err := e.cl.Get(context.Background(), client.ObjectKey{Name: name}, ns); err != nil {
		t.Fatal(err)
	}
	return ns.Labels, ns.Annotations
}
