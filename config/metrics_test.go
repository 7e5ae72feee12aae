package config_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/meshshift/meshshift/test/harness"
)

var metricRe = regexp.MustCompile(`meshshift_[a-z0-9_]+`)

// definedMetrics are the meshshift_ metric names the Go code registers.
func definedMetrics(t *testing.T, root string) map[string]bool {
	t.Helper()
	defined := map[string]bool{}
	def := regexp.MustCompile(`"(meshshift_[a-z0-9_]+)"`)
	for _, dir := range []string{"webhook", "migrator", "bpf", "signals"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range def.FindAllStringSubmatch(string(b), -1) {
				defined[m[1]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return defined
}

// TestDashboardAndAlertsUseRealMetrics checks that the Grafana dashboard is
// valid JSON and that every meshshift_ metric it and the PrometheusRule query
// is one the code defines (histograms may add _bucket, _sum, _count).
func TestDashboardAndAlertsUseRealMetrics(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	defined := definedMetrics(t, root)
	if len(defined) < 10 {
		t.Fatalf("found only %d metric definitions in the code: %v", len(defined), defined)
	}
	b, err := os.ReadFile(filepath.Join(root, "config", "grafana", "meshshift-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	rules, err := os.ReadFile(filepath.Join(root, "config", "prometheus", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]string{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range metricRe.FindAllString(tg.Expr, -1) {
				used[m] = "dashboard panel " + p.Title
			}
		}
	}
	for _, m := range metricRe.FindAllString(string(rules), -1) {
		used[m] = "config/prometheus/rules.yaml"
	}
	var names []string
	for m := range used {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		base := m
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if !defined[base] && strings.HasSuffix(base, suf) {
				base = strings.TrimSuffix(base, suf)
			}
		}
		if !defined[base] {
			t.Errorf("%s queries %s, which no meshshift code defines", used[m], m)
		}
	}
	if len(names) < 10 {
		t.Errorf("the dashboard and alerts use only %d metrics: %v", len(names), names)
	}
}
