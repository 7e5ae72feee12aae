package config_test

import (
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/meshshift/meshshift/test/harness"
)

// TestManagerGCFitsItsMemoryLimit: the manager's Go runtime settings (GOGC
// raised for the webhook's latency, webhookbench runs with them) come with
// a soft memory limit under the container's limit, leaving room for what the
// Go heap does not count.
func TestManagerGCFitsItsMemoryLimit(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var dep *appsv1.Deployment
	for _, u := range kustomize(t, root, "default") {
		if u.GetKind() == "Deployment" && strings.HasSuffix(u.GetName(), "manager") {
			dep = &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, dep); err != nil {
				t.Fatal(err)
			}
		}
	}
	if dep == nil {
		t.Fatal("no manager Deployment in config/default")
	}
	c := dep.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if gogc, err := strconv.Atoi(env["GOGC"]); err != nil || gogc < 100 {
		t.Errorf("GOGC %q: want an integer of at least 100 (the default)", env["GOGC"])
	}
	soft, err := resource.ParseQuantity(strings.TrimSuffix(env["GOMEMLIMIT"], "B"))
	if err != nil {
		t.Fatalf("GOMEMLIMIT %q: %v", env["GOMEMLIMIT"], err)
	}
	hard := c.Resources.Limits.Memory()
	if hard.IsZero() || soft.Value() > hard.Value()*85/100 {
		t.Errorf("GOMEMLIMIT %s is over 85%% of the container's memory limit %s", soft.String(), hard.String())
	}
}
