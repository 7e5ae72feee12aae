package config_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/meshshift/meshshift/cli"
	"github.com/meshshift/meshshift/test/harness"
)

// kustomize renders a kustomization folder of config/ with the kustomize library.
func kustomize(t *testing.T, root, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, "config", dir))
	if err != nil {
		t.Fatalf("kustomize build config/%s: %v", dir, err)
	}
	b, err := m.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build config/%s: %v", dir, err)
	}
	return parse(t, "kustomize build config/"+dir, b)
}

// helmBinary is the helm CLI that hack/assets.sh istio builds from helm's module.
func helmBinary(t *testing.T) string {
	t.Helper()
	dir, err := harness.AssetDir("istio", "helm")
	if err != nil {
		t.Fatalf("helm is needed to render the chart: %v", err)
	}
	return filepath.Join(dir, "helm")
}

// helmTemplate renders config/helm/meshshift with `helm template`.
func helmTemplate(t *testing.T, root string, set ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", "meshshift", filepath.Join(root, "config", "helm", "meshshift"),
		"--namespace", "meshshift-system", "--include-crds"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(helmBinary(t), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, &stderr)
	}
	return parse(t, "helm template", out)
}

func parse(t *testing.T, what string, b []byte) []*unstructured.Unstructured {
	t.Helper()
	objs, err := cli.ParseManifests(what, b)
	if err != nil {
		t.Fatalf("parse the output of %s: %v", what, err)
	}
	if len(objs) == 0 {
		t.Fatalf("%s rendered nothing", what)
	}
	return cli.Unstructured(objs)
}

func key(u *unstructured.Unstructured) string {
	return u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
}

// byKey indexes objects, leaving out the Namespace (Helm's namespace comes
// from --create-namespace, not from the chart).
func byKey(objs []*unstructured.Unstructured) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, u := range objs {
		if u.GetKind() == "Namespace" {
			continue
		}
		out[key(u)] = u.Object
	}
	return out
}

func keys(m map[string]map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestHelmRendersTheKustomizeObjects proves the chart renders exactly the
// objects of the kustomize overlays: default against the chart's defaults,
// cert-manager against certManager.enabled=true.
func TestHelmRendersTheKustomizeObjects(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the helm asset (make assets); run without -short")
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		overlay string
		set     []string
	}{
		{"default", nil},
		{"cert-manager", []string{"certManager.enabled=true"}},
	} {
		t.Run(tc.overlay, func(t *testing.T) {
			k := byKey(kustomize(t, root, tc.overlay))
			h := byKey(helmTemplate(t, root, tc.set...))
			if diff := cmp.Diff(keys(k), keys(h)); diff != "" {
				t.Fatalf("objects of kustomize config/%s (-) and helm (+) differ:\n%s", tc.overlay, diff)
			}
			for _, name := range keys(k) {
				if diff := cmp.Diff(k[name], h[name]); diff != "" {
					t.Errorf("%s differs between kustomize config/%s (-) and helm (+):\n%s", name, tc.overlay, diff)
				}
			}
			if len(k) < 15 {
				t.Errorf("only %d objects rendered: %v", len(k), keys(k))
			}
		})
	}
	// The switches really switch: no agent, no Prometheus objects.
	h := byKey(helmTemplate(t, root, "agent.enabled=false", "prometheus.enabled=false"))
	for _, name := range keys(h) {
		if strings.Contains(name, "agent") || strings.HasPrefix(name, "ServiceMonitor") || strings.HasPrefix(name, "PrometheusRule") {
			t.Errorf("agent.enabled=false prometheus.enabled=false still renders %s", name)
		}
	}
}

// thirdPartyCRDs are the Prometheus Operator's and cert-manager's CRD files,
// from the modules pinned in test/assets/crds.
func thirdPartyCRDs(t *testing.T, root string) []string {
	t.Helper()
	dir := filepath.Join(root, "test", "assets", "crds")
	dl := exec.Command("go", "mod", "download")
	dl.Dir = dir
	if out, err := dl.CombinedOutput(); err != nil {
		t.Fatalf("go mod download in test/assets/crds: %v\n%s", err, out)
	}
	mod := func(path string) string {
		cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", path)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil || len(bytes.TrimSpace(out)) == 0 {
			t.Fatalf("find module %s: %v %s", path, err, out)
		}
		return string(bytes.TrimSpace(out))
	}
	prom := filepath.Join(mod("github.com/prometheus-operator/prometheus-operator"), "example", "prometheus-operator-crd")
	cm := filepath.Join(mod("github.com/cert-manager/cert-manager"), "deploy", "crds")
	return []string{
		filepath.Join(prom, "monitoring.coreos.com_servicemonitors.yaml"),
		filepath.Join(prom, "monitoring.coreos.com_prometheusrules.yaml"),
		filepath.Join(cm, "cert-manager.io_issuers.yaml"),
		filepath.Join(cm, "cert-manager.io_certificates.yaml"),
	}
}

// TestRenderingsPassServerSideDryRun applies every rendering (kustomize
// default and cert-manager, Helm with and without cert-manager) to the real
// API server with a server-side dry run, with the Prometheus Operator's and
// cert-manager's real CRDs installed, so the manifests are proven valid.
func TestRenderingsPassServerSideDryRun(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if testing.Short() {
		t.Skip("needs the real control plane; run without -short")
	}
	c := harness.Start(t, harness.Options{CRDPaths: thirdPartyCRDs(t, root)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The namespace exists for real: a dry run cannot create objects in a
	// namespace that was only dry-run created.
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "meshshift-system"}}); err != nil {
		t.Fatal(err)
	}
	a, err := cli.NewApplier(c.Config, "meshshift-packaging-test")
	if err != nil {
		t.Fatal(err)
	}
	a.DryRun = true
	renderings := map[string][]*unstructured.Unstructured{
		"kustomize config/default":      kustomize(t, root, "default"),
		"kustomize config/cert-manager": kustomize(t, root, "cert-manager"),
		"helm template":                 helmTemplate(t, root),
		"helm template certManager":     helmTemplate(t, root, "certManager.enabled=true"),
	}
	samples, err := cli.LoadFiles([]string{filepath.Join(root, "config", "samples", "meshmigration.yaml"),
		filepath.Join(root, "config", "samples", "dataplanepolicy.yaml"), filepath.Join(root, "policies", "default-policy.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	renderings["config/samples and the default policy"] = cli.Unstructured(samples)
	for name, objs := range renderings {
		if err := a.Apply(ctx, objs); err != nil {
			t.Errorf("%s does not pass a server-side dry run:\n%v", name, err)
		}
	}

	// The dry run does validate: a broken manager Deployment and a
	// ServiceMonitor with a field its schema lacks are refused.
	for _, u := range renderings["kustomize config/default"] {
		var broken *unstructured.Unstructured
		switch key(u) {
		case "Deployment meshshift-system/meshshift-manager":
			broken = u.DeepCopy()
			if err := unstructured.SetNestedField(broken.Object, int64(-1), "spec", "replicas"); err != nil {
				t.Fatal(err)
			}
		case "ServiceMonitor meshshift-system/meshshift-manager":
			broken = u.DeepCopy()
			if err := unstructured.SetNestedField(broken.Object, "yes", "spec", "endpoints"); err != nil {
				t.Fatal(err)
			}
		default:
			continue
		}
		if err := a.ApplyOne(ctx, broken); err == nil {
			t.Errorf("a broken %s passed the dry run", key(u))
		} else {
			t.Logf("refused as it should be: %v", err)
		}
	}
	// Nothing was persisted by the dry runs.
	var deps unstructured.UnstructuredList
	deps.SetAPIVersion("apps/v1")
	deps.SetKind("DeploymentList")
	if err := c.Client.List(ctx, &deps); err != nil {
		t.Fatal(err)
	}
	if len(deps.Items) != 0 {
		t.Errorf("the dry run persisted %d Deployment(s)", len(deps.Items))
	}
}
