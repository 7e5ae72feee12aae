package webhooktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/webhook"
)

// Options of Start.
type Options struct {
	// Webhook is handed to webhook.New; Host, Port, CertIPs and Namespace are
	// filled in when empty (127.0.0.1, a free port, 127.0.0.1,
	// webhook.DefaultNamespace). Capabilities defaults to ztunnel and Cilium present.
	Webhook webhook.Options
	// MutatingName overrides the mutating configuration's name (to show what
	// happens when it sorts after Istio's injector).
	MutatingName string
	// SkipInstall leaves the webhook configurations out (the caller installs them).
	SkipInstall bool
	// CABundle is put into the installed configurations (with cert mode
	// cert-manager nothing patches it in).
	CABundle []byte
	// DetectCapabilities leaves Webhook.Capabilities nil (detected from the
	// cluster) instead of defaulting it to ztunnel and Cilium present.
	DetectCapabilities bool
}

// Running is a webhook manager started by Start.
type Running struct {
	Cluster  *harness.Cluster
	Options  webhook.Options
	Webhooks *webhook.Webhooks

	t      testing.TB
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
}

// ManifestPath is config/webhook/manifests.yaml of the repository.
func ManifestPath() (string, error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "config", "webhook", "manifests.yaml"), nil
}

// LoadConfigurations reads the shipped webhook configurations.
func LoadConfigurations() (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	path, err := ManifestPath()
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open webhook manifests: %w", err)
	}
	defer func() { _ = f.Close() }()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	var mut *admissionregistrationv1.MutatingWebhookConfiguration
	var val *admissionregistrationv1.ValidatingWebhookConfiguration
	for {
		var tm metav1.TypeMeta
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, nil, fmt.Errorf("decode %s: %w", path, err)
		}
		if raw == nil {
			continue
		}
		tm.Kind, _ = raw["kind"].(string)
		b, err := yamlToJSON(raw)
		if err != nil {
			return nil, nil, err
		}
		switch tm.Kind {
		case "MutatingWebhookConfiguration":
			mut = &admissionregistrationv1.MutatingWebhookConfiguration{}
			err = jsonUnmarshalStrict(b, mut)
		case "ValidatingWebhookConfiguration":
			val = &admissionregistrationv1.ValidatingWebhookConfiguration{}
			err = jsonUnmarshalStrict(b, val)
		default:
			err = fmt.Errorf("unexpected kind %q", tm.Kind)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("decode %s: %w", path, err)
		}
	}
	if mut == nil || val == nil {
		return nil, nil, fmt.Errorf("%s: want one mutating and one validating configuration", path)
	}
	return mut, val, nil
}

// toURL points a service clientConfig at https://127.0.0.1:port<path>.
func toURL(cc *admissionregistrationv1.WebhookClientConfig, port int) {
	path := ""
	if cc.Service != nil && cc.Service.Path != nil {
		path = *cc.Service.Path
	}
	cc.Service = nil
	cc.URL = ptr.To("https://127.0.0.1:" + strconv.Itoa(port) + path)
	cc.CABundle = nil
}

// InstallConfigurations creates the shipped configurations pointed at the
// webhook on 127.0.0.1:port; mutatingName, when not empty, renames the mutating
// one; caBundle, when not empty, is set on every webhook. It returns the names used.
func InstallConfigurations(ctx context.Context, c client.Client, port int, mutatingName string, caBundle []byte) (string, string, error) {
	mut, val, err := LoadConfigurations()
	if err != nil {
		return "", "", err
	}
	if mutatingName != "" {
		mut.Name = mutatingName
	}
	for i := range mut.Webhooks {
		toURL(&mut.Webhooks[i].ClientConfig, port)
		mut.Webhooks[i].ClientConfig.CABundle = caBundle
	}
	for i := range val.Webhooks {
		toURL(&val.Webhooks[i].ClientConfig, port)
		val.Webhooks[i].ClientConfig.CABundle = caBundle
	}
	for _, obj := range []client.Object{mut, val} {
		if err := c.Create(ctx, obj); err != nil {
			return "", "", fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
		}
	}
	return mut.Name, val.Name, nil
}

// Start installs the configurations and runs the webhooks until the test ends.
// It returns once a dry-run pod create comes back decided.
func Start(t testing.TB, c *harness.Cluster, opts Options) *Running {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := opts.Webhook
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		p, err := harness.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		o.Port = p
	}
	if len(o.CertIPs) == 0 {
		o.CertIPs = []net.IP{net.ParseIP("127.0.0.1")}
	}
	if o.Namespace == "" {
		o.Namespace = webhook.DefaultNamespace
	}
	if o.SecretName == "" {
		o.SecretName = webhook.DefaultSecretName
	}
	if o.Capabilities == nil && !opts.DetectCapabilities {
		o.Capabilities = webhook.StaticCapabilities(signals.Capabilities{Ztunnel: true, Cilium: true})
	}
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.Namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", o.Namespace, err)
	}
	if !opts.SkipInstall {
		mutName, valName, err := InstallConfigurations(ctx, c.Client, o.Port, opts.MutatingName, opts.CABundle)
		if err != nil {
			t.Fatal(err)
		}
		o.MutatingConfigName, o.ValidatingConfigName = mutName, valName
		t.Cleanup(func() {
			ctx := context.Background()
			_ = c.Client.Delete(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: mutName}})
			_ = c.Client.Delete(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: valName}})
		})
	}
	r := &Running{Cluster: c, Options: o, t: t}
	t.Cleanup(r.Stop)
	r.Restart()
	if !opts.SkipInstall {
		if err := WaitDecided(ctx, c.Client, "default"); err != nil {
			t.Fatalf("webhook never answered: %v", err)
		}
	}
	return r
}

// Restart starts the webhook manager again after Stop (a no-op while running).
func (r *Running) Restart() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return
	}
	scheme := harness.NewScheme()
	if err := signals.AddToScheme(scheme); err != nil {
		r.t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(r.Cluster.Config, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Logger:                 zap.New(zap.WriteTo(testWriter{r.t}), zap.StacktraceLevel(zapcore.PanicLevel)),
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		r.t.Fatalf("create manager: %v", err)
	}
	w, err := webhook.New(mgr, r.Options)
	if err != nil {
		r.t.Fatalf("set up webhooks: %v", err)
	}
	r.Webhooks = w
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func(done chan<- error) { done <- mgr.Start(ctx) }(r.done)
}

// Stop stops the webhook manager and waits for it (the API server then gets
// connection refused; failurePolicy Ignore admits pods undecided).
func (r *Running) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("webhook manager: %v", err)
		}
	case <-time.After(30 * time.Second):
		r.t.Errorf("webhook manager did not stop within 30s")
	}
	r.cancel = nil
}

// WaitDecided creates dry-run pods in namespace ns until one comes back with a
// meshshift decision.
func WaitDecided(ctx context.Context, c client.Client, ns string) error {
	var last error
	for {
		pod := &corev1.Pod{
			// Mode none: a mesh injector behind meshshift leaves the probe alone.
			ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: ns, Annotations: map[string]string{"meshshift.io/mode": "none"}},
			Spec: corev1.PodSpec{ServiceAccountName: "default",
				Containers: []corev1.Container{{Name: "c", Image: "example.invalid/probe:1"}}},
		}
		err := c.Create(ctx, pod, client.DryRunAll)
		if err == nil {
			if _, ok := pod.Annotations["meshshift.io/decision"]; ok {
				return nil
			}
			err = errors.New("pod admitted without a decision")
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
