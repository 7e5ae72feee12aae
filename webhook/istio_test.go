package webhook_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/webhook/webhooktest"
)

// istioCRDs is the file of Istio's CRDs in the istio.io/api module.
func istioCRDs(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api").Output()
	if err != nil {
		t.Fatalf("find istio.io/api: %v", err)
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "kubernetes", "customresourcedefinitions.gen.yaml")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("istio CRDs: %v", err)
	}
	return p
}

// renderIstiod renders Istio's own istio-discovery chart and returns its
// ConfigMaps and its MutatingWebhookConfiguration.
func renderIstiod(t *testing.T, dir string) ([]*corev1.ConfigMap, *admissionregistrationv1.MutatingWebhookConfiguration) {
	t.Helper()
	out, err := exec.Command(filepath.Join(dir, "helm"), "template", "istiod", filepath.Join(dir, "istio-discovery"), "-n", "istio-system").Output()
	if err != nil {
		t.Fatalf("helm template istiod: %v", err)
	}
	var cms []*corev1.ConfigMap
	var mwc *admissionregistrationv1.MutatingWebhookConfiguration
	docs := strings.Split(string(out), "\n---")
	for _, d := range docs {
		var head struct {
			Kind string `json:"kind"`
		}
		if err := sigsyaml.Unmarshal([]byte(d), &head); err != nil {
			t.Fatalf("decode rendered chart: %v", err)
		}
		switch head.Kind {
		case "ConfigMap":
			var cm corev1.ConfigMap
			if err := sigsyaml.Unmarshal([]byte(d), &cm); err != nil {
				t.Fatal(err)
			}
			cms = append(cms, &cm)
		case "MutatingWebhookConfiguration":
			mwc = &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err := sigsyaml.Unmarshal([]byte(d), mwc); err != nil {
				t.Fatal(err)
			}
		}
	}
	if mwc == nil || len(cms) == 0 {
		t.Fatalf("rendered chart has no injector ConfigMap or MutatingWebhookConfiguration")
	}
	return cms, mwc
}

// startIstiod runs pilot-discovery on 127.0.0.1 as ../shared/notes/istiod.md
// says: ConfigMaps first, REVISION=default, ISTIOD_CUSTOM_HOST=127.0.0.1, the
// chart's webhook configuration pointed at its HTTPS port.
func startIstiod(t *testing.T, c *harness.Cluster) {
	t.Helper()
	dir, err := harness.AssetDir("istio", "pilot-discovery", "helm", "istio-discovery/Chart.yaml")
	if err != nil {
		t.Fatalf("istiod: %v", err)
	}
	ctx := context.Background()
	cms, mwc := renderIstiod(t, dir)
	createNamespace(t, c.Client, "istio-system", nil, nil)
	for _, cm := range cms {
		if err := c.Client.Create(ctx, cm); err != nil {
			t.Fatalf("create configmap %s: %v", cm.Name, err)
		}
	}
	ports := make([]int, 6)
	for i := range ports {
		if ports[i], err = harness.FreePort(); err != nil {
			t.Fatal(err)
		}
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	cmd := exec.Command(filepath.Join(dir, "pilot-discovery"), "discovery",
		"--kubeconfig="+c.Kubeconfig,
		"--httpAddr="+addr(0), "--httpsAddr="+addr(1), "--grpcAddr="+addr(2), "--secureGRPCAddr="+addr(3),
		"--monitoringAddr="+addr(4), "--ctrlz_address=127.0.0.1", "--ctrlz_port="+strconv.Itoa(ports[5]))
	cmd.Env = append(os.Environ(), "ISTIOD_CUSTOM_HOST=127.0.0.1", "REVISION=default", "POD_NAMESPACE=istio-system")
	cmd.Dir = t.TempDir()
	logPath := filepath.Join(t.TempDir(), "istiod.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pilot-discovery: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("istiod log (tail):\n%s", b)
		}
	})
	waitFor(t, "istiod /ready", func() bool {
		select {
		case <-done:
			t.Fatalf("pilot-discovery exited")
		default:
		}
		resp, err := http.Get("http://" + addr(0) + "/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	for i := range mwc.Webhooks {
		cc := &mwc.Webhooks[i].ClientConfig
		path := "/inject"
		if cc.Service != nil && cc.Service.Path != nil {
			path = *cc.Service.Path
		}
		cc.Service, cc.URL, cc.CABundle = nil, ptr.To("https://"+addr(1)+path), nil
	}
	if err := c.Client.Create(ctx, mwc); err != nil {
		t.Fatalf("create istio webhook configuration: %v", err)
	}
	waitFor(t, "istiod to patch its caBundle", func() bool {
		var got admissionregistrationv1.MutatingWebhookConfiguration
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(mwc), &got); err != nil {
			return false
		}
		for _, w := range got.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return false
			}
		}
		return true
	})
}

func hasIstioProxy(p *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			if c.Name == "istio-proxy" {
				return true
			}
		}
	}
	return false
}

// TestIstioInjectorFollowsDecision runs the real Istio injector (istiod) behind
// meshshift's shipped mutating configuration: pods decided sidecar come back
// with istio-proxy injected by istiod, pods decided ambient, ambient-waypoint,
// cilium or none without it. Then the same with meshshift's configuration
// renamed to sort after istio-sidecar-injector: the API server calls Istio
// first, and injection no longer follows the decision.
func TestIstioInjectorFollowsDecision(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs the real control plane and istiod; run without -short")
	}
	c := harness.Start(t, harness.Options{CRDPaths: []string{istioCRDs(t)}})
	startIstiod(t, c)
	ctx := context.Background()

	t.Run("shipped name sorts first", func(t *testing.T) {
		webhooktest.Start(t, c, webhooktest.Options{})
		for _, m := range v1alpha1.Modes {
			ns := "first-" + string(m)
			createNamespace(t, c.Client, ns, nil, map[string]string{v1alpha1.AnnotationMode: string(m)})
			pod := newPod("app", ns, map[string]string{"app": "web"}, nil)
			if err := c.Client.Create(ctx, pod); err != nil {
				t.Fatalf("create pod in %s: %v", ns, err)
			}
			checkLabels(t, pod, m)
			if got, want := hasIstioProxy(pod), m == v1alpha1.ModeSidecar; got != want {
				t.Errorf("mode %s: istio-proxy injected = %v, want %v (init %d, containers %d)", m, got, want, len(pod.Spec.InitContainers), len(pod.Spec.Containers))
			}
		}
	})

	t.Run("renamed to sort after istio", func(t *testing.T) {
		const late = "zz-meshshift-mutating"
		if late < istioInjectorName {
			t.Fatalf("%s must sort after %s for this case", late, istioInjectorName)
		}
		webhooktest.Start(t, c, webhooktest.Options{MutatingName: late})
		createNamespace(t, c.Client, "late-sidecar", nil, map[string]string{v1alpha1.AnnotationMode: "sidecar"})
		pod := newPod("app", "late-sidecar", nil, nil)
		if err := c.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		checkLabels(t, pod, v1alpha1.ModeSidecar) // meshshift still decided sidecar ...
		if hasIstioProxy(pod) {
			t.Errorf("istio-proxy injected although meshshift's configuration sorts after Istio's; this case must show the order matters")
		}
	})
}
