package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// IstioctlPath is istioctl, built by hack/assets.sh istio (make assets) from
// the pinned istio.io/istio module in test/assets/istio, beside
// pilot-discovery and under the same cache key.
func IstioctlPath() (string, error) {
	dir, err := AssetDir("istio", "istioctl")
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "istioctl"), nil
}

// AnalyzeMessage is one message of `istioctl analyze -o json`.
type AnalyzeMessage struct {
	// Code is Istio's message code, e.g. IST0101.
	Code string `json:"code"`
	// Level is Error, Warning or Info.
	Level string `json:"level"`
	// Origin names the object, e.g. "AuthorizationPolicy shop/checkout".
	Origin           string `json:"origin"`
	Reference        string `json:"reference,omitempty"`
	Message          string `json:"message"`
	DocumentationURL string `json:"documentationUrl,omitempty"`
}

func (m AnalyzeMessage) String() string {
	return fmt.Sprintf("%s [%s] (%s) %s", m.Level, m.Code, m.Origin, m.Message)
}

// analyzeFoundIssues is istioctl's exit code when analyze found a message at
// or above --failure-threshold (istioctl's AnalyzerFoundIssuesError).
const analyzeFoundIssues = 79

// Analyze runs Istio's own analyzers, `istioctl analyze --all-namespaces
// -o json`, against the cluster's API server and returns every message
// (Info and up) and whether any is an Error. istioctl reads only the
// cluster's admin kubeconfig (--kubeconfig; KUBECONFIG is set to the same
// file), runs with HOME set to a fresh folder under the cluster's scratch
// folder (no user config, no cache) and no proxy variables, so it talks to
// nothing but the test's API server on 127.0.0.1. It is the oracle the
// migrator's integration tests call after each wave step: no Error where
// meshshift claims the state is valid.
func (c *Cluster) Analyze(ctx context.Context) ([]AnalyzeMessage, bool, error) {
	bin, err := IstioctlPath()
	if err != nil {
		return nil, false, err
	}
	if c.Kubeconfig == "" {
		return nil, false, errors.New("istioctl analyze: the cluster has no kubeconfig")
	}
	home, err := os.MkdirTemp(c.Dir, "istioctl-home-")
	if err != nil {
		return nil, false, fmt.Errorf("istioctl analyze: create home: %w", err)
	}
	defer os.RemoveAll(home)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "analyze", "--all-namespaces", "--output", "json",
		"--output-threshold", "Info", "--failure-threshold", "Error", "--color=false",
		"--kubeconfig", c.Kubeconfig, "--timeout", "60s")
	cmd.Dir = home
	cmd.Env = []string{"HOME=" + home, "KUBECONFIG=" + c.Kubeconfig, "PATH=/usr/bin:/bin", "TERM=dumb"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var exit *exec.ExitError
	if runErr != nil && !(errors.As(runErr, &exit) && exit.ExitCode() == analyzeFoundIssues) {
		return nil, false, fmt.Errorf("istioctl analyze: %w: %s", runErr, strings.TrimSpace(stderr.String()))
	}
	msgs, err := parseAnalyze(stdout.Bytes())
	if err != nil {
		return nil, false, fmt.Errorf("istioctl analyze: %w (stderr: %s)", err, strings.TrimSpace(stderr.String()))
	}
	hasError := false
	for _, m := range msgs {
		hasError = hasError || m.Level == "Error"
	}
	if runErr != nil && !hasError {
		return msgs, false, fmt.Errorf("istioctl analyze exited %d without an Error message: %s", analyzeFoundIssues, strings.TrimSpace(stderr.String()))
	}
	return msgs, hasError, nil
}

// parseAnalyze reads analyze's JSON output: a list of messages, or nothing
// when there are none.
func parseAnalyze(b []byte) ([]AnalyzeMessage, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, nil
	}
	var msgs []AnalyzeMessage
	if err := json.Unmarshal(b, &msgs); err != nil {
		return nil, fmt.Errorf("decode json output: %w", err)
	}
	return msgs, nil
}
