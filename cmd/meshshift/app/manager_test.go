package app_test

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

	"github.com/meshshift/meshshift/test/harness"
)

// buildMeshshift builds the binary once per test into a temporary folder.
func buildMeshshift(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "meshshift")
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/meshshift")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build meshshift: %v\n%s", err, out)
	}
	return bin
}

func TestVersionPrintsVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; run without -short")
	}
	out, err := exec.Command(buildMeshshift(t), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("meshshift version: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "meshshift v") {
		t.Fatalf("meshshift version printed %q, want it to start with \"meshshift v\"", out)
	}
}

// TestManagerServesHealthAndStopsOnSIGTERM runs the real binary against the
// real API server: /healthz and /readyz answer, metrics are served, and
// SIGTERM ends it cleanly.
func TestManagerServesHealthAndStopsOnSIGTERM(t *testing.T) {
	c := harness.Start(t, harness.Options{})
	bin := buildMeshshift(t)
	probe, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	webhookPort, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "manager",
		"--kubeconfig", c.Kubeconfig,
		"--health-probe-bind-address", "127.0.0.1:"+strconv.Itoa(probe),
		"--metrics-bind-address", "127.0.0.1:"+strconv.Itoa(metrics),
		// /readyz includes the webhook server, ready once its certificate
		// is in the Secret of --namespace.
		"--webhook-bind-address", "127.0.0.1:"+strconv.Itoa(webhookPort),
		"--namespace", "default",
	)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "manager.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("manager log:\n%s", b)
		}
	})

	base := "http://127.0.0.1:" + strconv.Itoa(probe)
	for _, path := range []string{"/healthz", "/readyz"} {
		waitOK(t, base+path, done)
	}
	waitOK(t, "http://127.0.0.1:"+strconv.Itoa(metrics)+"/metrics", done)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("manager exited with %v after SIGTERM, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("manager still running 30s after SIGTERM")
	}
}

func waitOK(t *testing.T, url string, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-done:
			t.Fatalf("manager exited (%v) before %s answered", err, url)
		case <-ctx.Done():
			t.Fatalf("%s did not answer 200 within 30s (last error %v)", url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
