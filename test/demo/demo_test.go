package demo_test

import (
	"bytes"
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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/meshshift/meshshift/cli"
	"github.com/meshshift/meshshift/migrator"
	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/test/prom"
	"github.com/meshshift/meshshift/webhook"
	"github.com/meshshift/meshshift/webhook/webhooktest"
)

// summary is the demo's last line, printed by TestMain after the test ran.
var summary string

func TestMain(m *testing.M) {
	code := m.Run()
	if summary != "" {
		fmt.Println(summary)
	}
	os.Exit(code)
}

// printer writes the timeline with the time since the demo started.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (p *printer) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

// section prints a heading and then output captured from a CLI command.
func (p *printer) block(title, body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = fmt.Fprintf(p.w, "\n==== %s\n%s\n\n", title, strings.TrimRight(body, "\n"))
}

const migratorUser = "meshshift-migrator"

// ensureAssets builds (or reuses) the control-plane binaries, showing
// hack/assets.sh's progress when a build is needed.
func ensureAssets(t *testing.T, p *printer, root string) {
	t.Helper()
	for _, a := range []struct {
		name  string
		files []string
	}{
		{"kube", []string{"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler"}},
		{"kwok", []string{"kwok", "stages.yaml"}},
	} {
		if dir, err := harness.AssetDir(a.name, a.files...); err == nil {
			p.say("control-plane binaries %s: cached in %s", a.name, dir)
			continue
		}
		p.say("control-plane binaries %s: not cached; building them from Go modules (about 10 minutes the first time)", a.name)
		cmd := exec.Command(filepath.Join(root, "hack", "assets.sh"), a.name)
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		if err := cmd.Run(); err != nil {
			t.Fatalf("hack/assets.sh %s: %v", a.name, err)
		}
	}
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Fatalf("the demo feeds its SLO gate through a real Prometheus: install Debian's package (apt-get install -y --no-install-recommends prometheus): %v", err)
	}
}

func moduleDir(t *testing.T, root, mod string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Fatalf("go list -m %s: %v", mod, err)
	}
	return string(bytes.TrimSpace(out))
}

func newScheme() *runtime.Scheme {
	s := harness.NewScheme()
	utilruntime.Must(signals.AddToScheme(s))
	return s
}

// startManager runs one manager as production does: the webhooks and the
// migrator, fed by a live signals index, as the migrator's user.
func startManager(t *testing.T, cfg *rest.Config, scheme *runtime.Scheme, port int, promURL string, caps signals.Capabilities) {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ix := signals.NewIndex("")
	if err := signals.Watch(ctx, mgr.GetCache(), ix, mgr.GetLogger().WithName("index")); err != nil {
		t.Fatal(err)
	}
	if err := webhook.Setup(mgr, webhook.Options{
		Host: "127.0.0.1", Port: port, CertIPs: []net.IP{net.ParseIP("127.0.0.1")},
		MigratorUsername: migratorUser, Capabilities: webhook.StaticCapabilities(caps), Features: ix,
	}); err != nil {
		t.Fatalf("set up webhook: %v", err)
	}
	r := &migrator.Reconciler{
		Features:      ix,
		Capabilities:  func(context.Context) (signals.Capabilities, error) { return caps, nil },
		PrometheusURL: promURL, PollInterval: 200 * time.Millisecond,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("manager stopped: %v", err)
		}
	})
}

// waitWebhook waits until a pod create passes through the mutating webhook.
func waitWebhook(ctx context.Context, t *testing.T, cl client.Client) {
	t.Helper()
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "webhook-probe"}}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: "webhook-probe"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "c"}}}}
		if err := cl.Create(ctx, p, client.DryRunAll); err != nil {
			return false, nil
		}
		return p.Labels["meshshift.io/dataplane"] != "", nil
	})
	if err != nil {
		t.Fatalf("the webhook never answered: %v", err)
	}
	if err := cl.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "webhook-probe"}}); err != nil {
		t.Fatal(err)
	}
}

// setUp starts everything the demo runs on and applies the samples.
func setUp(t *testing.T, p *printer) (*harness.Cluster, client.Client, *prom.Exporter) {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ensureAssets(t, p, root)
	if os.Getenv("MESHSHIFT_DEMO_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	}
	scheme := newScheme()
	c := harness.Start(t, harness.Options{
		CRDPaths: []string{
			filepath.Join(moduleDir(t, root, "istio.io/api"), "kubernetes", "customresourcedefinitions.gen.yaml"),
			filepath.Join(moduleDir(t, root, "sigs.k8s.io/gateway-api"), "config", "crd", "standard"),
		},
		ControllerManager: true, Scheduler: true, KwokNodes: 2, Scheme: scheme,
	})
	p.say("control plane up: kube-apiserver, etcd, kube-controller-manager, kube-scheduler, 2 kwok nodes; Istio and Gateway API CRDs installed")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := c.Client
	exp := prom.NewExporter(t)
	ps := prom.Start(t, exp.Addr)
	p.say("Prometheus up at %s, scraping node-agent-style series every second", ps.URL)

	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: webhook.DefaultNamespace}}); err != nil {
		t.Fatal(err)
	}
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := webhooktest.InstallConfigurations(ctx, cl, port, "", nil); err != nil {
		t.Fatal(err)
	}
	u, err := c.Env.AddUser(envtest.User{Name: migratorUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("add migrator user: %v", err)
	}
	startManager(t, u.Config(), scheme, port, ps.URL, signals.Capabilities{Ztunnel: true})
	waitWebhook(ctx, t, cl)
	p.say("meshshift manager running in process: mutating and validating webhooks (installed from config/webhook) and the migrator")

	objs, err := cli.LoadFiles([]string{filepath.Join(root, "config", "samples", "demo")})
	if err != nil {
		t.Fatal(err)
	}
	a, err := cli.NewApplier(c.Config, "meshshift-demo")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, cli.Unstructured(objs)); err != nil {
		t.Fatalf("apply config/samples/demo: %v", err)
	}
	p.say("applied config/samples/demo: %d objects (namespaces, Deployments, StatefulSet, Services, Istio objects, a DataplanePolicy)", len(objs))
	for _, ns := range demoNamespaces {
		exp.Set(ns, prom.DefaultTraffic)
	}
	return c, cl, exp
}
