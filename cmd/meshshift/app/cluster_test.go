package app_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshshift/meshshift/cli"
	"github.com/meshshift/meshshift/cmd/meshshift/app"
	"github.com/meshshift/meshshift/test/harness"
)

// moduleDir is a Go module's folder in the module cache.
func moduleDir(t *testing.T, root, path string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", path)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("find module %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

// TestPlanClusterMatchesOffline applies config/samples/demo to the real API
// server (with Istio's and Gateway API's real CRDs, so the samples are checked
// against their schemas) and checks that plan --cluster decides exactly what
// plan -f decides offline, and that precheck --cluster sees the blockers.
func TestPlanClusterMatchesOffline(t *testing.T) {
	root := chdirRoot(t)
	if testing.Short() {
		t.Skip("needs the real control plane; run without -short")
	}
	// Nodes and controllers, so the samples' ztunnel DaemonSet runs: that is
	// how plan --cluster knows the cluster serves ambient.
	c := harness.Start(t, harness.Options{CRDPaths: []string{
		filepath.Join(moduleDir(t, root, "istio.io/api"), "kubernetes", "customresourcedefinitions.gen.yaml"),
		filepath.Join(moduleDir(t, root, "sigs.k8s.io/gateway-api"), "config", "crd", "standard"),
	}, ControllerManager: true, Scheduler: true, KwokNodes: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs, err := cli.LoadFiles([]string{demo})
	if err != nil {
		t.Fatal(err)
	}
	a, err := cli.NewApplier(c.Config, "meshshift-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, cli.Unstructured(objs)); err != nil {
		t.Fatalf("apply config/samples/demo: %v", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var ds appsv1.DaemonSet
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "istio-system", Name: "ztunnel"}, &ds); err != nil {
			return false, err
		}
		return ds.Status.NumberReady > 0, nil
	})
	if err != nil {
		t.Fatalf("ztunnel never ready: %v", err)
	}

	decisions := func(args ...string) []map[string]any {
		t.Helper()
		code, out, errOut := run(t, args...)
		if code != app.ExitOK {
			t.Fatalf("meshshift %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		var rows []map[string]any
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("meshshift %s: %v", strings.Join(args, " "), err)
		}
		for _, r := range rows {
			delete(r, "policy") // "demo/0" offline, "demo/1" once the API server set a generation
		}
		return rows
	}
	offline := decisions("plan", "-f", demo, "--target", "ambient", "-o", "json")
	live := decisions("plan", "--cluster", "--kubeconfig", c.Kubeconfig, "--target", "ambient", "-o", "json")
	if diff := cmp.Diff(offline, live); diff != "" {
		t.Errorf("plan --cluster differs from plan -f (-offline +cluster):\n%s", diff)
	}

	code, out, _ := run(t, "precheck", "--cluster", "--kubeconfig", c.Kubeconfig)
	if code != app.ExitBlocked {
		t.Errorf("precheck --cluster: exit %d, want %d\n%s", code, app.ExitBlocked, out)
	}
	for _, want := range []string{"deny-all-trap", "shop/cart", "envoy-filter", "payments/payments-api", "2 blocker(s), 0 warning(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("precheck --cluster lacks %q (the Gateway API CRDs are installed, so no warning):\n%s", want, out)
		}
	}
	code, out, errOut := run(t, "explain", "search/search", "--cluster", "--kubeconfig", c.Kubeconfig, "--target", "ambient")
	if code != app.ExitOK || !strings.Contains(out, "decided: ambient-waypoint by feature-requires-waypoint") {
		t.Errorf("explain --cluster: exit %d\n%s%s", code, out, errOut)
	}
}
