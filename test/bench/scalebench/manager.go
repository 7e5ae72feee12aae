package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/webhook/webhooktest"
)

// loadNamespace holds the pods of the webhook latency run and the probes.
const loadNamespace = "scale-load"

// binary is the built meshshift.
type binary struct {
	dir, path string
}

// buildManager builds cmd/meshshift as it ships (no race detector, no
// debug flags) into a temporary folder.
func buildManager(ctx context.Context) (binary, error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return binary{}, err
	}
	dir, err := os.MkdirTemp("", "meshshift-scalebench-")
	if err != nil {
		return binary{}, fmt.Errorf("create build folder: %w", err)
	}
	b := binary{dir: dir, path: filepath.Join(dir, "meshshift")}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", b.path, "./cmd/meshshift")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return binary{}, fmt.Errorf("build meshshift: %w\n%s", err, out)
	}
	return b, nil
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// servingCert writes tls.crt and tls.key for 127.0.0.1 into dir and returns
// the CA bundle that verifies them.
func servingCert(dir string) ([]byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ca key: %w", err)
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scalebench-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign ca: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate serving key: %w", err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode serving key: %w", err)
	}
	if err := writeFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})); err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), nil
}

// shippedEnv is the manager container's environment in
// config/manager/manager.yaml (GOGC, GOMEMLIMIT).
func shippedEnv(root string) ([]string, error) {
	path := filepath.Join(root, "config", "manager", "manager.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manager manifest: %w", err)
	}
	var out []string
	for _, doc := range bytes.Split(raw, []byte("\n---")) {
		var d appsv1.Deployment
		if err := yaml.Unmarshal(doc, &d); err != nil || d.Kind != "Deployment" {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "manager" {
				for _, e := range c.Env {
					if e.ValueFrom == nil {
						out = append(out, e.Name+"="+e.Value)
					}
				}
			}
		}
	}
	return out, nil
}

// manager is one running `meshshift manager` process.
type manager struct {
	cmd                           *exec.Cmd
	started                       time.Time
	metricsURL, pprofURL, logPath string
	done                          chan struct{}
}

// webhookPort is where every manager of a run serves; the configurations
// are installed once. webhookCA verifies its serving certificate.
var (
	webhookPort int
	webhookCA   []byte
)

func (e *env) installWebhook(ctx context.Context) error {
	if webhookPort != 0 {
		return nil
	}
	port, err := harness.FreePort()
	if err != nil {
		return err
	}
	dir := filepath.Join(e.c.Dir, "webhook-certs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create cert folder: %w", err)
	}
	bundle, err := servingCert(dir)
	if err != nil {
		return err
	}
	if _, _, err := webhooktest.InstallConfigurations(ctx, e.cl, port, "", bundle); err != nil {
		return err
	}
	webhookPort, webhookCA = port, bundle
	return nil
}

// startManager runs the built binary as the shipped Deployment does (its
// GOGC and GOMEMLIMIT), with a fixed capability list (kwok nodes run no
// ztunnel DaemonSet) and no traffic source (no node agents).
func (e *env) startManager(ctx context.Context, b binary, name string) (*manager, error) {
	if err := e.installWebhook(ctx); err != nil {
		return nil, err
	}
	ports := make([]int, 3)
	for i := range ports {
		p, err := harness.FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	genv, err := shippedEnv(e.root)
	if err != nil {
		return nil, err
	}
	m := &manager{
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0]),
		pprofURL:   fmt.Sprintf("http://127.0.0.1:%d/debug/pprof", ports[2]),
		logPath:    filepath.Join(e.c.Dir, "manager-"+name+".log"),
		done:       make(chan struct{}),
	}
	logf, err := os.Create(m.logPath)
	if err != nil {
		return nil, fmt.Errorf("create manager log: %w", err)
	}
	m.cmd = exec.Command(b.path, "manager",
		"--kubeconfig="+e.managerKubeconfig,
		"--namespace="+"meshshift-system",
		"--metrics-bind-address="+fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"--health-probe-bind-address="+fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--pprof-bind-address="+fmt.Sprintf("127.0.0.1:%d", ports[2]),
		"--webhook-bind-address="+fmt.Sprintf("127.0.0.1:%d", webhookPort),
		"--cert-mode=cert-manager", "--cert-dir="+filepath.Join(e.c.Dir, "webhook-certs"),
		"--migrator-username="+managerUser,
		"--capabilities=ztunnel", "--traffic-source=none",
	)
	m.cmd.Env = append(os.Environ(), genv...)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	m.started = time.Now()
	if err := m.cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start manager: %w", err)
	}
	go func() { _ = m.cmd.Wait(); _ = logf.Close(); close(m.done) }()
	return m, nil
}

func (m *manager) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

func (m *manager) logTail() string {
	b, _ := os.ReadFile(m.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// stop ends the manager (SIGTERM, SIGKILL after 10 s).
func (m *manager) stop() {
	if m.exited() {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// waitDecides returns the time from exec until a dry-run pod create comes
// back decided: the webhook serves and its caches are synced (before that it
// admits pods undecided).
func (m *manager) waitDecides(ctx context.Context, e *env) (time.Duration, error) {
	for {
		if m.exited() {
			return 0, fmt.Errorf("manager exited:\n%s", m.logTail())
		}
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: loadNamespace},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "c"}}}}
		if err := e.cl.Create(ctx, p, client.DryRunAll); err == nil {
			if _, ok := p.Annotations[v1alpha1.AnnotationDecision]; ok {
				return time.Since(m.started), nil
			}
		}
		if time.Since(m.started) > 3*time.Minute {
			return 0, fmt.Errorf("manager decided no pod within 3m:\n%s", m.logTail())
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// rssMiB is the process's resident set.
func (m *manager) rssMiB() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read manager status: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", rest, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("no VmRSS in the manager's status")
}

func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: %s", url, resp.Status)
	}
	return b, nil
}

type memory struct {
	rssMiB, heapMiB, heapBeforeMiB float64
}

// memory waits settle for the first reconciles, reads the RSS
// and the heap in use, then forces a collection (the heap profile's gc=1,
// written to the file profile when not empty) and reads the heap in use again.
func (m *manager) memory(ctx context.Context, settle time.Duration, profile string) (memory, error) {
	var out memory
	select {
	case <-ctx.Done():
		return out, ctx.Err()
	case <-time.After(settle):
	}
	var err error
	if out.rssMiB, err = m.rssMiB(); err != nil {
		return out, err
	}
	if out.heapBeforeMiB, err = m.gauge(ctx, "go_memstats_heap_inuse_bytes"); err != nil {
		return out, err
	}
	heap, err := get(ctx, m.pprofURL+"/heap?gc=1")
	if err != nil {
		return out, err
	}
	if profile != "" {
		if err := writeFile(profile, heap); err != nil {
			return out, err
		}
	}
	if out.heapMiB, err = m.gauge(ctx, "go_memstats_heap_inuse_bytes"); err != nil {
		return out, err
	}
	out.heapBeforeMiB /= 1 << 20
	out.heapMiB /= 1 << 20
	return out, nil
}
