package app_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshshift/meshshift/cmd/meshshift/app"
	"github.com/meshshift/meshshift/test/harness"
)

var update = flag.Bool("update", false, "rewrite the golden files of the offline CLI tests")

const demo = "config/samples/demo"

// offlineCases run plan, explain and precheck on config/samples with no
// cluster; each compares stdout and stderr with testdata/golden/<name>.golden.
var offlineCases = []struct {
	name string
	args []string
	code int
}{
	{"plan-table-as-is", []string{"plan", "-f", demo}, app.ExitOK},
	{"plan-table-ambient", []string{"plan", "-f", demo, "--target", "ambient"}, app.ExitOK},
	{"plan-json-ambient", []string{"plan", "-f", demo, "--target", "ambient", "-o", "json"}, app.ExitOK},
	{"plan-yaml-ambient-one-ns", []string{"plan", "-f", demo, "--target", "ambient", "-n", "catalog", "-o", "yaml"}, app.ExitOK},
	{"plan-traffic", []string{"plan", "-f", demo, "--traffic", "config/samples/traffic.yaml", "--now", "2026-11-26T12:01:00Z"}, app.ExitOK},
	{"plan-no-ztunnel", []string{"plan", "-f", demo, "--target", "ambient", "--ztunnel=false", "-n", "catalog"}, app.ExitOK},
	{"plan-emit-migration", []string{"plan", "-f", demo, "--target", "ambient", "--emit-migration", "to-ambient"}, app.ExitOK},
	{"explain-cart-trap", []string{"explain", "shop/cart", "-f", demo, "--target", "ambient"}, app.ExitOK},
	{"explain-search-waypoint", []string{"explain", "search/search", "-f", demo, "--target", "ambient"}, app.ExitOK},
	{"explain-catalog-db-rule", []string{"explain", "catalog/catalog-db", "-f", demo, "--traffic", "config/samples/traffic.yaml", "--now", "2026-11-26T12:01:00Z"}, app.ExitOK},
	{"explain-payments-json", []string{"explain", "payments/payments-api", "-f", demo, "--target", "ambient", "-o", "json"}, app.ExitOK},
	{"explain-istiod-excluded", []string{"explain", "istio-system/istiod", "-f", demo}, app.ExitOK},
	{"explain-unknown-workload", []string{"explain", "shop/nope", "-f", demo}, app.ExitError},
	{"precheck-table", []string{"precheck", "-f", demo}, app.ExitBlocked},
	{"precheck-json", []string{"precheck", "-f", demo, "-o", "json"}, app.ExitBlocked},
	{"precheck-catalog-ready", []string{"precheck", "-f", demo, "-n", "catalog"}, app.ExitOK},
	{"precheck-cilium-missing", []string{"precheck", "-f", demo, "-n", "catalog", "--target", "cilium"}, app.ExitBlocked},
	{"report-traffic", []string{"report", "-f", demo, "--traffic", "config/samples/traffic.yaml", "--now", "2026-11-26T12:01:00Z"}, app.ExitOK},
	{"report-yaml-no-traffic", []string{"report", "-f", demo, "-o", "yaml", "-n", "shop"}, app.ExitOK},
	{"bad-unknown-field", []string{"plan", "-f", "cmd/meshshift/app/testdata/bad/unknown-field.yaml"}, app.ExitError},
	{"bad-wrong-type", []string{"plan", "-f", "cmd/meshshift/app/testdata/bad/wrong-type.yaml"}, app.ExitError},
	{"bad-no-name", []string{"plan", "-f", "cmd/meshshift/app/testdata/bad/no-name.yaml"}, app.ExitError},
	{"bad-istio-unknown-field", []string{"plan", "-f", "cmd/meshshift/app/testdata/bad/istio-unknown-field.yaml"}, app.ExitSkipped},
	{"bad-policy-cel", []string{"plan", "-f", "cmd/meshshift/app/testdata/bad/bad-policy.yaml"}, app.ExitError},
	{"bad-version", []string{"plan", "-f", "cmd/meshshift/app/testdata/bad/bad-version.yaml"}, app.ExitError},
	{"bad-not-yaml", []string{"precheck", "-f", "cmd/meshshift/app/testdata/bad/not-yaml.yaml"}, app.ExitError},
	{"bad-all-reported", []string{"plan", "-f", "cmd/meshshift/app/testdata/bad"}, app.ExitError},
	// A cluster dump with an object Istio cannot read: planned without it, exit 3;
	// precheck's blockers (exit 2) win over a skipped object.
	{"dump-skipped-plan", []string{"plan", "-f", "cli/testdata/dumps/bookinfo.yaml", "-f", "cli/testdata/dumps/istio-system.yaml", "--target", "ambient"}, app.ExitSkipped},
	{"dump-skipped-precheck-blocked", []string{"precheck", "-f", "cli/testdata/dumps/bookinfo.yaml", "-f", "cli/testdata/dumps/l7-deny.yaml", "-f", "cli/testdata/dumps/istio-system.yaml"}, app.ExitBlocked},
	{"bad-output-flag", []string{"plan", "-f", demo, "-o", "xml"}, app.ExitError},
	{"bad-target-flag", []string{"plan", "-f", demo, "--target", "linkerd"}, app.ExitError},
	{"bad-no-source", []string{"plan"}, app.ExitError},
}

// chdirRoot runs the test from the repository root, so manifests are named
// by their repository paths in the output.
func chdirRoot(t *testing.T) string {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	return root
}

func TestOfflineGolden(t *testing.T) {
	root := chdirRoot(t)
	for _, tc := range offlineCases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := app.Run(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("meshshift %s: exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(tc.args, " "), code, tc.code, &stdout, &stderr)
			}
			got := "$ meshshift " + strings.Join(tc.args, " ") + "\n--- stdout\n" + stdout.String() + "--- stderr\n" + stderr.String()
			path := filepath.Join(root, "cmd", "meshshift", "app", "testdata", "golden", tc.name+".golden")
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
				t.Fatalf("read golden file (run with -update to write it): %v", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("output differs from %s (-want +got):\n%s", path, diff)
			}
		})
	}
}

// TestPlanJSONContract checks the keys the issue promises in plan -o json, on
// the samples, and the decisions the demo relies on.
func TestPlanJSONContract(t *testing.T) {
	chdirRoot(t)
	var stdout, stderr bytes.Buffer
	if code := app.Run([]string{"plan", "-f", demo, "--target", "ambient", "-o", "json"}, &stdout, &stderr); code != app.ExitOK {
		t.Fatalf("exit %d: %s", code, &stderr)
	}
	var rows []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("plan -o json is not a JSON array of objects: %v\n%s", err, &stdout)
	}
	if len(rows) != 9 {
		t.Fatalf("got %d rows, want the 9 workloads of the samples", len(rows))
	}
	modes := map[string]string{}
	for _, r := range rows {
		for _, k := range []string{"namespace", "workload", "kind", "mode", "rule", "reason"} {
			if s, ok := r[k].(string); !ok || s == "" {
				t.Errorf("row %v: key %q missing or empty", r, k)
			}
		}
		modes[r["namespace"].(string)+"/"+r["workload"].(string)] = r["mode"].(string) + " " + r["rule"].(string)
	}
	want := map[string]string{
		"catalog/catalog-api":   "ambient namespace-annotation",
		"catalog/catalog-db":    "ambient namespace-annotation",
		"search/search":         "ambient-waypoint feature-requires-waypoint",
		"shop/cart":             "sidecar feature-deny-all-trap",
		"shop/frontend":         "ambient namespace-annotation",
		"payments/payments-api": "sidecar feature-requires-sidecar",
		"payments/ledger":       "ambient namespace-annotation",
		"istio-system/istiod":   "none exclude-namespace",
		"istio-system/ztunnel":  "none exclude-namespace",
	}
	if diff := cmp.Diff(want, modes); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
}
