package migrator

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// A policy is compiled once per resourceVersion: an update takes effect at
// the next step, a deleted policy no longer governs, and a policy that does
// not compile is skipped as before.
func TestPolicyForFollowsUpdates(t *testing.T) {
	ctx := context.Background()
	dp := &meshv1alpha1.DataplanePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "fleet", UID: "fleet-uid"},
		Spec:       meshv1alpha1.DataplanePolicySpec{DefaultMode: meshv1alpha1.RuleMode(meshv1alpha1.ModeAmbient)},
	}
	r, _ := newTestReconciler(t, signals.Capabilities{}, nil, dp)
	ns := map[string]string{"team": "a"}

	if got := r.policyFor(ctx, ns); got.Name() != "fleet" || got.DefaultMode() != meshv1alpha1.RuleMode(meshv1alpha1.ModeAmbient) {
		t.Fatalf("policy %s default %s, want fleet ambient", got.Name(), got.DefaultMode())
	}
	first := r.policyFor(ctx, ns)
	if again := r.policyFor(ctx, ns); again != first {
		t.Errorf("unchanged policy compiled again")
	}

	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(dp), dp); err != nil {
		t.Fatal(err)
	}
	dp.Spec.DefaultMode = meshv1alpha1.RuleMode(meshv1alpha1.ModeSidecar)
	if err := r.Client.Update(ctx, dp); err != nil {
		t.Fatal(err)
	}
	if got := r.policyFor(ctx, ns); got.DefaultMode() != meshv1alpha1.RuleMode(meshv1alpha1.ModeSidecar) {
		t.Errorf("after the update: default %s, want sidecar", got.DefaultMode())
	}

	dp.Spec.Rules = []meshv1alpha1.Rule{{Name: "broken", When: "workload.labels[", Mode: meshv1alpha1.RuleMode(meshv1alpha1.ModeAmbient)}}
	if err := r.Client.Update(ctx, dp); err != nil {
		t.Fatal(err)
	}
	if got := r.policyFor(ctx, ns); got.Name() == "fleet" {
		t.Errorf("a policy that does not compile still governs")
	}

	if err := r.Client.Delete(ctx, dp); err != nil {
		t.Fatal(err)
	}
	if got := r.policyFor(ctx, ns); got.Name() == "fleet" {
		t.Errorf("a deleted policy still governs")
	}
	if n := len(r.compiledPolicies); n != 0 {
		t.Errorf("%d compiled policies kept after the delete", n)
	}
}
