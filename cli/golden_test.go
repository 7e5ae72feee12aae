package cli

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// sample is one cluster dump under testdata/dumps, planned together with the
// istio-system dump (istiod and ztunnel: the cluster serves ambient, not
// Cilium), and the mode a migration of it would move to.
type sample struct {
	name   string
	file   string
	target meshv1alpha1.Mode
	// precheck is the target precheck checks (default target, else ambient).
	precheck meshv1alpha1.Mode
}

var samples = []sample{
	{"bookinfo", "bookinfo.yaml", meshv1alpha1.ModeAmbient, ""},
	{"batch", "batch.yaml", meshv1alpha1.ModeAmbient, ""},
	{"storefront", "storefront.yaml", meshv1alpha1.ModeAmbient, ""},
	{"egress", "egress.yaml", meshv1alpha1.ModeAmbient, ""},
	{"l7-deny", "l7-deny.yaml", meshv1alpha1.ModeAmbient, ""},
	{"windows", "windows.yaml", meshv1alpha1.ModeAmbient, ""},
	// The namespace asks for Cilium itself: decided as it is.
	{"cilium", "cilium.yaml", "", meshv1alpha1.ModeCilium},
}

func (s sample) files() []string {
	return []string{filepath.Join("testdata", "dumps", s.file), filepath.Join("testdata", "dumps", "istio-system.yaml")}
}

func (s sample) command(verb string, target meshv1alpha1.Mode, extra ...string) string {
	args := append([]string{"meshshift", verb}, extra...)
	for _, f := range s.files() {
		args = append(args, "-f", f)
	}
	if target != "" {
		args = append(args, "--target", string(target))
	}
	return "$ " + strings.Join(args, " ") + "\n"
}

// goldenNow is the clock of every golden run.
var goldenNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// checkGolden compares got with testdata/golden/<name>.golden, or writes it
// with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (go test ./cli -run Golden -update writes it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}

// stderr is what the command prints on stderr besides errors: notes and the
// objects skipped.
func stderr(inv *Inventory) string {
	var b strings.Builder
	for _, n := range inv.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	for _, s := range inv.Skipped {
		fmt.Fprintf(&b, "skipped: %s\n", s)
	}
	return b.String()
}

func loadSample(t *testing.T, s sample) *Inventory {
	t.Helper()
	objs, err := LoadFiles(s.files())
	if err != nil {
		t.Fatalf("load %s: %v", s.name, err)
	}
	inv, err := Build(objs)
	if err != nil {
		t.Fatalf("build %s: %v", s.name, err)
	}
	return inv
}

// TestGoldenSamples plans each sample dump as it is and toward its target,
// prechecks it, and explains each of its workloads, against golden files.
func TestGoldenSamples(t *testing.T) {
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			inv := loadSample(t, s)
			targets := []meshv1alpha1.Mode{""}
			if s.target != "" {
				targets = append(targets, s.target)
			}
			for _, target := range targets {
				var out bytes.Buffer
				o := &Options{Target: target, Now: goldenNow}
				if err := PrintPlan(&out, FormatTable, BuildPlan(inv, o)); err != nil {
					t.Fatal(err)
				}
				name := "plan-" + s.name
				if target != "" {
					name += "-" + string(target)
				}
				checkGolden(t, name, s.command("plan", target)+"--- stdout\n"+out.String()+"--- stderr\n"+stderr(inv))
			}
			var out bytes.Buffer
			pt := s.precheck
			if pt == "" {
				pt = s.target
			}
			r := Precheck(inv, &Options{Target: pt, Now: goldenNow}, false)
			if err := PrintPrecheck(&out, FormatTable, r); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "precheck-"+s.name, s.command("precheck", pt)+"--- stdout\n"+out.String()+"--- stderr\n"+stderr(inv))
			for _, w := range inv.Workloads {
				if w.Namespace == "istio-system" {
					continue
				}
				e, err := Explain(inv, w.Namespace, w.Name, &Options{Target: s.target, Now: goldenNow})
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				if err := PrintExplanation(&out, FormatTable, e); err != nil {
					t.Fatal(err)
				}
				checkGolden(t, "explain-"+s.name+"-"+w.Namespace+"-"+w.Name,
					s.command("explain", s.target, w.Key())+"--- stdout\n"+out.String()+"--- stderr\n"+stderr(inv))
			}
		})
	}
}
