package webhook_test

import (
	"context"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/webhook"
	"github.com/meshshift/meshshift/webhook/webhooktest"
)

// TestIntegrationPolicyStatus runs webhook.Setup's manager against the real
// API server with the admission configurations left out (as when a policy is
// written while the webhook is down): a valid policy gets Ready=True at
// generation 1; an update whose CEL the CRD schema accepts but the compiler
// rejects gets Ready=False naming spec.rules[1].when at generation 2, and a
// Warning Event.
func TestIntegrationPolicyStatus(t *testing.T) {
	c := harness.Start(t, harness.Options{})
	webhooktest.Start(t, c, webhooktest.Options{SkipInstall: true})
	ctx := context.Background()

	dp := &v1alpha1.DataplanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "status-test"}, Spec: v1alpha1.DataplanePolicySpec{
		Rules: []v1alpha1.Rule{
			{Name: "no-traffic", When: "!traffic.available", Mode: "current"},
			{Name: "busy", When: "traffic.requestRate > 100.0", Mode: "ambient"},
		},
	}}
	if err := c.Client.Create(ctx, dp); err != nil {
		t.Fatalf("create policy: %v", err)
	}
	got := waitPolicyStatus(t, c.Client, dp.Name, 1)
	checkReady(t, got, metav1.ConditionTrue, webhook.ReasonCompiled, "2 rules compiled")

	// A CEL syntax error: within the schema's length limits, so only the
	// compiler (and the validating webhook, not installed here) can refuse it.
	if err := c.Client.Get(ctx, client.ObjectKeyFromObject(dp), dp); err != nil {
		t.Fatal(err)
	}
	dp.Spec.Rules[1].When = "traffic.requestRate > "
	if err := c.Client.Update(ctx, dp); err != nil {
		t.Fatalf("update policy with a bad rule (the CRD schema should accept it): %v", err)
	}
	got = waitPolicyStatus(t, c.Client, dp.Name, 2)
	checkReady(t, got, metav1.ConditionFalse, webhook.ReasonInvalidRules, "spec.rules[1].when: Invalid value: CEL: ")
	if strings.Contains(got.Message, "spec.rules[0]") {
		t.Errorf("message names the valid rule 0: %q", got.Message)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		var evs eventsv1.EventList
		if err := c.Client.List(ctx, &evs, client.InNamespace(metav1.NamespaceDefault)); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range evs.Items {
			if e.Regarding.Name == dp.Name && e.Reason == webhook.ReasonInvalidRules && e.Type == "Warning" &&
				strings.Contains(e.Note, "spec.rules[1].when") {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Warning %s event for %s; events: %+v", webhook.ReasonInvalidRules, dp.Name, evs.Items)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPolicyStatus waits until the policy's status was computed for generation gen.
func waitPolicyStatus(t *testing.T, c client.Client, name string, gen int64) *metav1.Condition {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var dp v1alpha1.DataplanePolicy
		if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &dp); err != nil {
			t.Fatal(err)
		}
		if dp.Generation != gen {
			t.Fatalf("policy %s has generation %d, want %d", name, dp.Generation, gen)
		}
		if cond := meta.FindStatusCondition(dp.Status.Conditions, webhook.ConditionReady); cond != nil && dp.Status.ObservedGeneration == gen {
			if cond.ObservedGeneration != gen {
				t.Errorf("Ready observedGeneration = %d, want %d", cond.ObservedGeneration, gen)
			}
			return cond
		}
		if time.Now().After(deadline) {
			t.Fatalf("policy %s: status not computed for generation %d: %+v", name, gen, dp.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func checkReady(t *testing.T, cond *metav1.Condition, status metav1.ConditionStatus, reason, msgPrefix string) {
	t.Helper()
	if cond.Status != status || cond.Reason != reason || !strings.HasPrefix(cond.Message, msgPrefix) {
		t.Errorf("Ready = %s/%s %q, want %s/%s with message starting %q", cond.Status, cond.Reason, cond.Message, status, reason, msgPrefix)
	}
}
