package config_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/meshshift/meshshift/test/harness"
)

// TestDockerfileBuildsAStaticBinary runs the Dockerfile's go build line (no
// Docker engine is needed) and checks the result is static: no program
// interpreter, no shared libraries, as the distroless static base requires.
// It also pins the Dockerfile's other promises: multi-stage, nonroot base.
func TestDockerfileBuildsAStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; run without -short")
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"AS build", "CGO_ENABLED=0", "FROM gcr.io/distroless/static-debian12:nonroot", "USER 65532:65532",
		`ENTRYPOINT ["/usr/local/bin/meshshift"]`} {
		if !strings.Contains(string(df), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	ldflags := regexp.MustCompile(`-ldflags "([^"]+)"`).FindStringSubmatch(string(df))
	if ldflags == nil {
		t.Fatal("no -ldflags in the Dockerfile's go build")
	}
	bin := filepath.Join(t.TempDir(), "meshshift")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", strings.ReplaceAll(ldflags[1], "${VERSION}", "v0.0.0-test"), "-o", bin, "./cmd/meshshift")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build as the Dockerfile does: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a program interpreter: it is dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (%v)", libs, err)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "meshshift v0.0.0-test") {
		t.Errorf("meshshift version: %q %v, want the version stamped by the Dockerfile's ldflags", out, err)
	}
}
