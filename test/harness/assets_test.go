package harness_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshshift/meshshift/test/harness"
)

// TestAssetScriptReusesCache runs hack/assets.sh a second time, as `make test`
// does: with the binaries cached it must rebuild nothing, return in seconds, and
// name the same folder the harness computes.
func TestAssetScriptReusesCache(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built control-plane assets; run without -short (make test)")
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kube", "kwok", "containerd", "istio"} {
		want, err := harness.AssetDir(name)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var stderr bytes.Buffer
		cmd := exec.Command(filepath.Join(root, "hack", "assets.sh"), name)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("hack/assets.sh %s: %v", name, err)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("hack/assets.sh %s printed %q, harness computes %q", name, got, want)
		}
		if !strings.Contains(stderr.String(), "cached in") {
			t.Errorf("hack/assets.sh %s rebuilt instead of reusing the cache:\n%s", name, stderr.String())
		}
		t.Logf("hack/assets.sh %s reused %s in %v", name, want, time.Since(start).Round(time.Millisecond))
	}
}
