package e2e_test

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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshshift/meshshift/test/harness"
)

// istioCRDs is the file of Istio's CRDs in the istio.io/api module.
func istioCRDs(t *testing.T) string {
	t.Helper()
	p := filepath.Join(moduleDir(t, "istio.io/api"), "kubernetes", "customresourcedefinitions.gen.yaml")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("istio CRDs: %v", err)
	}
	return p
}

// startIstiod runs Istio's control plane (pilot-discovery) against the
// cluster, with the ConfigMaps of Istio's own istio-discovery chart created
// first (they hold the waypoint's deployment template), rendered and run with
// Istio's ambient profile. Its sidecar injector
// is not registered: the scenarios here need istiod's Gateway API
// controllers (GatewayClasses, the waypoint's Deployment and Service, Gateway
// status), not injection. It is stopped when the test ends; its log tail is
// printed when the test failed.
func startIstiod(t *testing.T, c *harness.Cluster) {
	t.Helper()
	dir, err := harness.AssetDir("istio", "pilot-discovery", "helm", "istio-discovery/Chart.yaml")
	if err != nil {
		t.Fatalf("istiod: %v", err)
	}
	ctx := context.Background()
	out, err := exec.Command(filepath.Join(dir, "helm"), "template", "istiod", filepath.Join(dir, "istio-discovery"), "-n", "istio-system",
		"--set", "profile=ambient").Output()
	if err != nil {
		t.Fatalf("helm template istiod: %v", err)
	}
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}); err != nil {
		t.Fatal(err)
	}
	for _, d := range strings.Split(string(out), "\n---") {
		var head struct {
			Kind string `json:"kind"`
		}
		if err := sigsyaml.Unmarshal([]byte(d), &head); err != nil {
			t.Fatalf("decode rendered chart: %v", err)
		}
		if head.Kind != "ConfigMap" {
			continue
		}
		cm := &corev1.ConfigMap{}
		if err := sigsyaml.Unmarshal([]byte(d), cm); err != nil {
			t.Fatal(err)
		}
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
	cmd.Env = append(os.Environ(), "ISTIOD_CUSTOM_HOST=127.0.0.1", "REVISION=default", "POD_NAMESPACE=istio-system",
		// Ambient mode: istiod then serves the istio-waypoint GatewayClass.
		"PILOT_ENABLE_AMBIENT=true")
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
		if t.Failed() || os.Getenv("MESHSHIFT_E2E_LOG") != "" {
			b, _ := os.ReadFile(logPath)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("istiod log (tail):\n%s", b)
		}
	})
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		select {
		case <-done:
			t.Fatalf("pilot-discovery exited")
		default:
		}
		resp, err := http.Get("http://" + addr(0) + "/ready")
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("istiod never ready: %v", err)
	}
}
