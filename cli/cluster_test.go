package cli

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/test/harness"
)

// TestLoadClusterReadsEveryWorkloadKind stores the batch and storefront
// sample dumps in a real API server, first without Argo Rollouts' CRD (the
// Rollouts cannot be stored; the kind is reported as not served), then with
// it: plan --cluster reads the CronJobs, Jobs, the ReplicationController and
// the Rollouts, and decides them as plan -f does (with ztunnel assumed: the
// API server runs no DaemonSet).
func TestLoadClusterReadsEveryWorkloadKind(t *testing.T) {
	c := harness.Start(t, harness.Options{})
	ctx := context.Background()
	var offline []Object
	for _, f := range []string{"batch.yaml", "storefront.yaml"} {
		objs, err := LoadFiles([]string{filepath.Join("testdata", "dumps", f)})
		if err != nil {
			t.Fatal(err)
		}
		offline = append(offline, objs...)
	}
	create := func(kinds ...string) {
		t.Helper()
		for _, o := range offline {
			if !slices.Contains(kinds, o.U.GetKind()) {
				continue
			}
			u := &unstructured.Unstructured{Object: o.U.DeepCopy().Object}
			unstructured.RemoveNestedField(u.Object, "metadata", "resourceVersion")
			unstructured.RemoveNestedField(u.Object, "metadata", "uid")
			unstructured.RemoveNestedField(u.Object, "metadata", "ownerReferences")
			unstructured.RemoveNestedField(u.Object, "status")
			if err := c.Client.Create(ctx, u); err != nil {
				t.Fatalf("create %s: %v", o.Ref(), err)
			}
		}
	}
	create("Namespace")
	create("CronJob", "Deployment", "ReplicationController")

	co, err := LoadCluster(ctx, c.Config)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(co.Missing, "Rollout.argoproj.io") {
		t.Errorf("kinds not served %v, want Rollout.argoproj.io among them", co.Missing)
	}

	if _, err := envtest.InstallCRDs(c.Config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join("testdata", "crds", "argo-rollouts.yaml")}, ErrorIfPathMissing: true}); err != nil {
		t.Fatal(err)
	}
	create("Rollout")
	co, err = LoadCluster(ctx, c.Config)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(co.Missing, "Rollout.argoproj.io") {
		t.Error("Rollout reported not served after its CRD was installed")
	}
	inv, err := Build(co.Objects)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range BuildPlan(inv, &Options{Target: meshv1alpha1.ModeAmbient, Ztunnel: ptr.To(true)}).Rows {
		got[r.Namespace+"/"+r.Workload] = r.Kind + " " + string(r.Mode) + " " + r.CurrentMode
	}
	want := map[string]string{
		"batch/nightly-report":   "CronJob ambient sidecar",
		"batch/cache-warmer":     "CronJob ambient none",
		"storefront/storefront":  "Rollout ambient sidecar",
		"storefront/checkout":    "Rollout ambient sidecar",
		"storefront/legacy-cart": "ReplicationController ambient sidecar",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plan --cluster (-want +got):\n%s", diff)
	}
}
