package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshshift/meshshift/test/harness"
)

// istioCRDs is the file of Istio's CRDs in the istio.io/api module (istiod
// watches them; the API server must serve them before it starts).
func istioCRDs() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api").Output()
	if err != nil {
		return "", fmt.Errorf("find module istio.io/api: %w", err)
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "kubernetes", "customresourcedefinitions.gen.yaml")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("istio crds: %w", err)
	}
	return p, nil
}

// istiod is the real Istio control plane (pilot-discovery from the istio
// asset) serving its sidecar injector to the bench's API server.
type istiod struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
	dir  string
}

// renderIstiod renders Istio's own istio-discovery chart and returns its
// ConfigMaps (the injector's templates and the mesh config) and its
// MutatingWebhookConfiguration.
func renderIstiod(assets string) ([]*corev1.ConfigMap, *admissionregistrationv1.MutatingWebhookConfiguration, error) {
	out, err := exec.Command(filepath.Join(assets, "helm"), "template", "istiod", filepath.Join(assets, "istio-discovery"), "-n", "istio-system").Output()
	if err != nil {
		return nil, nil, fmt.Errorf("helm template istiod: %w", err)
	}
	var cms []*corev1.ConfigMap
	var mwc *admissionregistrationv1.MutatingWebhookConfiguration
	for _, d := range strings.Split(string(out), "\n---") {
		var head struct {
			Kind string `json:"kind"`
		}
		if err := sigsyaml.Unmarshal([]byte(d), &head); err != nil {
			return nil, nil, fmt.Errorf("decode rendered istiod chart: %w", err)
		}
		switch head.Kind {
		case "ConfigMap":
			var cm corev1.ConfigMap
			if err := sigsyaml.Unmarshal([]byte(d), &cm); err != nil {
				return nil, nil, fmt.Errorf("decode istiod configmap: %w", err)
			}
			cms = append(cms, &cm)
		case "MutatingWebhookConfiguration":
			mwc = &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err := sigsyaml.Unmarshal([]byte(d), mwc); err != nil {
				return nil, nil, fmt.Errorf("decode istiod webhook configuration: %w", err)
			}
		}
	}
	if mwc == nil || len(cms) == 0 {
		return nil, nil, errors.New("rendered istiod chart has no injector configmap or webhook configuration")
	}
	return cms, mwc, nil
}

// startIstiod runs pilot-discovery on 127.0.0.1 against the cluster, as
// webhook's Istio tests do: the chart's ConfigMaps first (else istiod never
// injects), REVISION=default (the configuration's istio.io/rev, else istiod
// never patches its caBundle), ISTIOD_CUSTOM_HOST=127.0.0.1 (an IP SAN in
// its serving certificate), the chart's webhook configuration pointed at its
// HTTPS port. It returns once istiod answers /ready and the caBundle is in.
func startIstiod(ctx context.Context, c *harness.Cluster) (*istiod, error) {
	assets, err := harness.AssetDir("istio", "pilot-discovery", "helm", "istio-discovery/Chart.yaml")
	if err != nil {
		return nil, fmt.Errorf("istiod: %w", err)
	}
	cms, mwc, err := renderIstiod(assets)
	if err != nil {
		return nil, err
	}
	cl := c.Client
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}); err != nil {
		return nil, fmt.Errorf("create namespace istio-system: %w", err)
	}
	for _, cm := range cms {
		if err := cl.Create(ctx, cm); err != nil {
			return nil, fmt.Errorf("create configmap %s: %w", cm.Name, err)
		}
	}
	ports := make([]int, 6)
	for i := range ports {
		if ports[i], err = harness.FreePort(); err != nil {
			return nil, err
		}
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	dir, err := os.MkdirTemp("", "webhookbench-istiod-")
	if err != nil {
		return nil, fmt.Errorf("istiod folder: %w", err)
	}
	logf, err := os.Create(filepath.Join(dir, "istiod.log"))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("istiod log: %w", err)
	}
	cmd := exec.Command(filepath.Join(assets, "pilot-discovery"), "discovery",
		"--kubeconfig="+c.Kubeconfig,
		"--httpAddr="+addr(0), "--httpsAddr="+addr(1), "--grpcAddr="+addr(2), "--secureGRPCAddr="+addr(3),
		"--monitoringAddr="+addr(4), "--ctrlz_address=127.0.0.1", "--ctrlz_port="+strconv.Itoa(ports[5]))
	cmd.Env = append(os.Environ(), "ISTIOD_CUSTOM_HOST=127.0.0.1", "REVISION=default", "POD_NAMESPACE=istio-system")
	cmd.Dir = dir // empty: istiod reads its configuration from the ConfigMaps
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start pilot-discovery: %w", err)
	}
	d := &istiod{cmd: cmd, done: make(chan struct{}), log: logf, dir: dir}
	go func() { _ = cmd.Wait(); close(d.done) }()
	fail := func(err error) (*istiod, error) {
		d.stop()
		return nil, err
	}
	ready := func() bool {
		resp, err := http.Get("http://" + addr(0) + "/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if err := d.waitFor(ctx, "istiod /ready", ready); err != nil {
		return fail(err)
	}
	for i := range mwc.Webhooks {
		cc := &mwc.Webhooks[i].ClientConfig
		path := "/inject"
		if cc.Service != nil && cc.Service.Path != nil {
			path = *cc.Service.Path
		}
		cc.Service, cc.URL, cc.CABundle = nil, ptr.To("https://"+addr(1)+path), nil
	}
	if err := cl.Create(ctx, mwc); err != nil {
		return fail(fmt.Errorf("create istio webhook configuration: %w", err))
	}
	patched := func() bool {
		var got admissionregistrationv1.MutatingWebhookConfiguration
		if err := cl.Get(ctx, client.ObjectKeyFromObject(mwc), &got); err != nil {
			return false
		}
		for _, w := range got.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return false
			}
		}
		return true
	}
	if err := d.waitFor(ctx, "istiod to patch its caBundle", patched); err != nil {
		return fail(err)
	}
	return d, nil
}

// waitFor polls cond for up to 60 s, failing early when istiod exits.
func (d *istiod) waitFor(ctx context.Context, what string, cond func() bool) error {
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		select {
		case <-d.done:
			return fmt.Errorf("pilot-discovery exited while waiting for %s; log: %s", what, d.tail())
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", what, ctx.Err())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within 60s; log: %s", what, d.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

func (d *istiod) tail() string {
	b, _ := os.ReadFile(d.log.Name())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stop ends pilot-discovery (SIGTERM, then SIGKILL after 10 s) and removes
// its folder.
func (d *istiod) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	_ = d.log.Close()
	_ = os.RemoveAll(d.dir)
}
