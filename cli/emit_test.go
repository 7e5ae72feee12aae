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

// TestGoldenExplainPolicyMove: explain shows the before and after of the
// policies that move for a workload, and the blocked ones for another.
func TestGoldenExplainPolicyMove(t *testing.T) {
	inv := loadSample(t, l7MoveSample)
	o := &Options{Target: l7MoveSample.target, Now: goldenNow}
	for _, key := range []string{"shop/checkout", "shop/reports", "legacy/billing"} {
		ns, name, _ := strings.Cut(key, "/")
		e, err := Explain(inv, ns, name, o)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := PrintExplanation(&out, FormatTable, e); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, "explain-l7-move-"+ns+"-"+name,
			l7MoveSample.command("explain", l7MoveSample.target, key)+"--- stdout\n"+out.String()+"--- stderr\n"+stderr(inv))
		pm := e.PolicyMove
		if pm == nil {
			t.Fatalf("%s: no policy move", key)
		}
		switch key {
		case "shop/checkout":
			var objs []string
			for _, c := range pm.Changes {
				objs = append(objs, c.Object)
				if c.Before == "" || len(c.After) != 2 {
					t.Errorf("%s: before %q, %d after objects; want the spec and 2", c.Object, c.Before, len(c.After))
				}
			}
			want := []string{"AuthorizationPolicy shop/checkout-admin-token", "AuthorizationPolicy shop/checkout-api",
				"RequestAuthentication shop/checkout-jwt", "AuthorizationPolicy shop/checkout-callers"}
			if strings.Join(objs, ";") != strings.Join(want, ";") {
				t.Errorf("changes %q, want %q", objs, want)
			}
		default:
			if len(pm.Changes) != 0 || len(pm.Blocked) != 1 {
				t.Errorf("%s: %d changes, blocked %q; want one blocked entry", key, len(pm.Changes), pm.Blocked)
			}
		}
	}
	// A workload without policies to move shows no section.
	inv = loadSample(t, samples[0])
	e, err := Explain(inv, "bookinfo", "details-v1", &Options{Target: l7MoveSample.target, Now: goldenNow})
	if err != nil {
		t.Fatal(err)
	}
	if e.PolicyMove != nil {
		t.Errorf("bookinfo/details-v1: policy move %+v, want none", e.PolicyMove)
	}
}
