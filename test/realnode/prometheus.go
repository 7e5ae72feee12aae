package realnode

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/meshshift/meshshift/test/harness"
)

// Prometheus is a Prometheus server scraping the node agents.
type Prometheus struct {
	// URL is its HTTP API on the node address, where the manager pods reach it.
	URL string
	// ScrapeInterval is how often it scrapes each agent.
	ScrapeInterval time.Duration
}

// prometheusConfig is the scrape the shipped ServiceMonitor meshshift-agent
// describes, written for a Prometheus without the operator: endpoints of
// the Service labelled app.kubernetes.io/name=meshshift,
// app.kubernetes.io/component=agent in meshshift-system, port "metrics",
// discovered through the API server (kubernetes_sd_configs) and scraped by
// pod IP. The interval is short so a test's gate sees changes quickly.
func prometheusConfig(apiServer, certDir string, interval time.Duration) string {
	return fmt.Sprintf(`global:
  scrape_interval: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
  - job_name: meshshift-agent
    kubernetes_sd_configs:
      - role: endpointslice
        api_server: %[2]s
        tls_config:
          ca_file: %[3]s/ca.crt
          cert_file: %[3]s/tls.crt
          key_file: %[3]s/tls.key
        namespaces:
          names: [%[4]s]
    relabel_configs:
      - source_labels: [__meta_kubernetes_service_label_app_kubernetes_io_name, __meta_kubernetes_service_label_app_kubernetes_io_component]
        regex: meshshift;agent
        action: keep
      - source_labels: [__meta_kubernetes_endpointslice_port_name]
        regex: metrics
        action: keep
`, interval, apiServer, certDir, Namespace)
}

// StartPrometheus starts Prometheus with prometheusConfig, listening on the
// node address, and stops it when t ends.
func StartPrometheus(t testing.TB, c *harness.Cluster, interval time.Duration) *Prometheus {
	t.Helper()
	// Debian's Prometheus (2.42) is built without kubernetes_sd_configs:
	// hack/assets.sh builds one from its Go module.
	assets, err := harness.AssetDir("prometheus", "prometheus")
	if err != nil {
		t.Fatalf("prometheus with Kubernetes service discovery: %v", err)
	}
	bin := filepath.Join(assets, "prometheus")
	dir := t.TempDir()
	u, err := c.Env.AddUser(envtest.User{Name: "prometheus", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("add prometheus user: %v", err)
	}
	cfg := u.Config()
	certDir := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"ca.crt": cfg.CAData, "tls.crt": cfg.CertData, "tls.key": cfg.KeyData} {
		if err := os.WriteFile(filepath.Join(certDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(prometheusConfig(cfg.Host, certDir, interval)), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(harness.NodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	addr := net.JoinHostPort(harness.NodeIP, strconv.Itoa(port))
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	p := &Prometheus{URL: "http://" + addr, ScrapeInterval: interval}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		resp, err := http.Get(p.URL + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Fatalf("prometheus exited:\n%s", b)
		case <-ctx.Done():
			t.Fatalf("prometheus never became ready at %s", p.URL)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
