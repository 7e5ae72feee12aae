package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/migrator/l7policy"
)

var l7MoveSample = sample{"l7-move", "l7-move.yaml", meshv1alpha1.ModeAmbientWaypoint, ""}

// emitted renders the files of plan --emit-policies for the l7-move dump.
func emitted(t *testing.T) (*Inventory, []*NamespacePolicies, []EmittedFile) {
	t.Helper()
	inv := loadSample(t, l7MoveSample)
	ps, err := ProposePolicies(inv, &Options{Target: meshv1alpha1.ModeAmbientWaypoint, Now: goldenNow}, DefaultEmitMigration)
	if err != nil {
		t.Fatal(err)
	}
	files, err := EmitPolicies(ps)
	if err != nil {
		t.Fatal(err)
	}
	return inv, ps, files
}

// TestGoldenEmitPolicies: the files plan --emit-policies writes for a
// namespace whose L7 policies move, and for blocked ones.
func TestGoldenEmitPolicies(t *testing.T) {
	inv, _, files := emitted(t)
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "=== %s\n%s", filepath.ToSlash(f.Path), f.Data)
	}
	checkGolden(t, "emit-policies-l7-move", l7MoveSample.command("plan", l7MoveSample.target, "--emit-policies", "DIR")+
		"--- files\n"+b.String()+"--- stderr\n"+stderr(inv))

	// What the files must say, whatever the golden holds.
	want := []string{
		"shop/copy.authorizationpolicy.checkout-api-meshshift.yaml",
		"shop/narrowed.authorizationpolicy.checkout-api.yaml",
		"shop/copy.requestauthentication.checkout-jwt-meshshift.yaml",
		"shop/narrowed.requestauthentication.checkout-jwt.yaml",
		"shop/admit.authorizationpolicy.checkout-callers-meshshift-admit.yaml",
		"shop/blocked.txt",
		"legacy/blocked.txt",
	}
	got := map[string]string{}
	for _, f := range files {
		got[filepath.ToSlash(f.Path)] = string(f.Data)
	}
	for _, w := range want {
		if _, ok := got[w]; !ok {
			t.Errorf("no file %s; files: %v", w, keys(got))
		}
	}
	for p, d := range got {
		if strings.HasSuffix(p, ".yaml") && !strings.HasPrefix(d, "# ") {
			t.Errorf("%s does not start with a comment naming its source", p)
		}
		if strings.Contains(d, "resourceVersion") {
			t.Errorf("%s carries a resourceVersion", p)
		}
	}
	if !strings.Contains(got["shop/blocked.txt"], "reports-read") || !strings.Contains(got["shop/blocked.txt"], "no Service selects") {
		t.Errorf("shop/blocked.txt: %s", got["shop/blocked.txt"])
	}
	if !strings.Contains(got["legacy/blocked.txt"], "namespace-wide") {
		t.Errorf("legacy/blocked.txt: %s", got["legacy/blocked.txt"])
	}
	if !strings.Contains(got["shop/copy.authorizationpolicy.checkout-api-meshshift.yaml"], "testdata/dumps/l7-move.yaml:") {
		t.Error("the copy's comment does not name the source file")
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestEmitPoliciesRestores: each emitted narrowed original restores to the
// original read, byte for byte.
func TestEmitPoliciesRestores(t *testing.T) {
	_, ps, _ := emitted(t)
	n := 0
	for _, np := range ps {
		for _, m := range np.Plan.Moves {
			r, err := l7policy.Restore(m.Narrowed)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := objectYAML(m.Source)
			b, _ := objectYAML(r)
			if !bytes.Equal(a, b) {
				t.Errorf("restored %s:\n%s\nwant\n%s", m.Source.GetName(), b, a)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no moves")
	}
}

func TestWritePoliciesRefusesToOverwrite(t *testing.T) {
	_, _, files := emitted(t)
	dir := t.TempDir()
	if err := WritePolicies(dir, files); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, files[0].Path))
	if err != nil || !bytes.Equal(b, files[0].Data) {
		t.Fatalf("read back %s: %v", files[0].Path, err)
	}
	if err := WritePolicies(dir, files); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second write: err = %v, want a refusal", err)
	}
}
