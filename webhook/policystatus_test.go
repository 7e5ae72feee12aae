package webhook

import (
	"context"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/meshshift/meshshift/api/v1alpha1"
)

func statusPolicy(gen int64, when []string, conds ...metav1.Condition) *v1alpha1.DataplanePolicy {
	dp := &v1alpha1.DataplanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: gen}}
	for i, w := range when {
		dp.Spec.Rules = append(dp.Spec.Rules, v1alpha1.Rule{Name: "r" + string(rune('a'+i)), When: w, Mode: "ambient"})
	}
	if len(conds) > 0 {
		dp.Status = v1alpha1.DataplanePolicyStatus{ObservedGeneration: gen - 1, Conditions: conds}
	}
	return dp
}

func TestPolicyStatusReconciler(t *testing.T) {
	earlier := metav1.NewTime(fixedNow.Add(-1e12))
	ready := func(gen int64, msg string) metav1.Condition {
		return metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonCompiled,
			Message: msg, ObservedGeneration: gen, LastTransitionTime: earlier}
	}
	notReady := func(gen int64, msg string) metav1.Condition {
		return metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonInvalidRules,
			Message: msg, ObservedGeneration: gen, LastTransitionTime: earlier}
	}
	const badCEL = "spec.rules[1].when: Invalid value: CEL: "
	cases := []struct {
		name       string
		dp         *v1alpha1.DataplanePolicy // nil: not found
		wantCond   metav1.Condition          // LastTransitionTime is checked separately
		wantMsg    string                    // prefix of the condition message
		wantTime   metav1.Time
		wantWrites int
		wantEvent  string
	}{
		{name: "not found"},
		{name: "valid, no status yet", dp: statusPolicy(1, []string{"traffic.available", "workload.hostNetwork"}),
			wantCond: ready(1, ""), wantMsg: "2 rules compiled", wantTime: metav1.NewTime(fixedNow), wantWrites: 1},
		{name: "one rule", dp: statusPolicy(1, []string{"traffic.available"}),
			wantCond: ready(1, ""), wantMsg: "1 rule compiled", wantTime: metav1.NewTime(fixedNow), wantWrites: 1},
		{name: "no rules", dp: statusPolicy(1, nil),
			wantCond: ready(1, ""), wantMsg: "0 rules compiled", wantTime: metav1.NewTime(fixedNow), wantWrites: 1},
		{name: "invalid, no status yet", dp: statusPolicy(1, []string{"traffic.available", "workload.nosuch =="}),
			wantCond: notReady(1, ""), wantMsg: badCEL, wantTime: metav1.NewTime(fixedNow), wantWrites: 1,
			wantEvent: "Warning InvalidRules policy is not in force: " + badCEL},
		{name: "ready to invalid", dp: statusPolicy(2, []string{"traffic.available", "1 + 'a'"}, ready(1, "2 rules compiled")),
			wantCond: notReady(2, ""), wantMsg: badCEL, wantTime: metav1.NewTime(fixedNow), wantWrites: 1,
			wantEvent: "Warning InvalidRules policy is not in force: " + badCEL},
		{name: "invalid to other invalid: written, no second event", dp: statusPolicy(3, []string{"true", "x"}, notReady(2, "old")),
			wantCond: notReady(3, ""), wantMsg: badCEL, wantTime: earlier, wantWrites: 1},
		{name: "invalid to valid", dp: statusPolicy(3, []string{"true"}, notReady(2, "old")),
			wantCond: ready(3, ""), wantMsg: "1 rule compiled", wantTime: metav1.NewTime(fixedNow), wantWrites: 1},
		{name: "new generation, same result: observedGeneration written", dp: statusPolicy(5, []string{"true"}, ready(4, "1 rule compiled")),
			wantCond: ready(5, ""), wantMsg: "1 rule compiled", wantTime: earlier, wantWrites: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			writes := 0
			countWrites := interceptor.Funcs{
				SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
					writes++
					return c.SubResource(sub).Patch(ctx, obj, p, opts...)
				},
				SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
					writes++
					return c.SubResource(sub).Update(ctx, obj, opts...)
				},
			}
			b := fake.NewClientBuilder().WithScheme(testScheme()).WithStatusSubresource(&v1alpha1.DataplanePolicy{}).WithInterceptorFuncs(countWrites)
			if tc.dp != nil {
				b = b.WithObjects(tc.dp)
			}
			c := b.Build()
			rec := events.NewFakeRecorder(10)
			r := &PolicyStatusReconciler{Client: c, Recorder: rec, Clock: fixedClock()}
			req := ctrl.Request{NamespacedName: types.NamespacedName{Name: "p"}}

			// The second reconcile sees the status the first wrote: no write, no event.
			for range 2 {
				if _, err := r.Reconcile(context.Background(), req); err != nil {
					t.Fatalf("reconcile: %v", err)
				}
			}
			if writes != tc.wantWrites {
				t.Errorf("status writes = %d, want %d", writes, tc.wantWrites)
			}
			var got []string
			for len(rec.Events) > 0 {
				got = append(got, <-rec.Events)
			}
			switch {
			case tc.wantEvent == "" && len(got) > 0:
				t.Errorf("events = %q, want none", got)
			case tc.wantEvent != "" && (len(got) != 1 || !strings.HasPrefix(got[0], tc.wantEvent)):
				t.Errorf("events = %q, want one starting %q", got, tc.wantEvent)
			}
			if tc.dp == nil {
				return
			}
			var dp v1alpha1.DataplanePolicy
			if err := c.Get(context.Background(), req.NamespacedName, &dp); err != nil {
				t.Fatal(err)
			}
			if dp.Status.ObservedGeneration != tc.dp.Generation {
				t.Errorf("observedGeneration = %d, want %d", dp.Status.ObservedGeneration, tc.dp.Generation)
			}
			if len(dp.Status.Conditions) != 1 {
				t.Fatalf("conditions = %+v, want one Ready", dp.Status.Conditions)
			}
			cond := meta.FindStatusCondition(dp.Status.Conditions, ConditionReady)
			if diff := cmp.Diff(tc.wantCond, *cond, cmpopts.IgnoreFields(metav1.Condition{}, "Message", "LastTransitionTime")); diff != "" {
				t.Errorf("Ready condition (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(cond.Message, tc.wantMsg) {
				t.Errorf("message = %q, want prefix %q", cond.Message, tc.wantMsg)
			}
			if !cond.LastTransitionTime.Equal(&tc.wantTime) {
				t.Errorf("lastTransitionTime = %v, want %v", cond.LastTransitionTime, tc.wantTime)
			}
		})
	}
}

// TestPolicyStatusUnchanged: a policy whose status already says what the
// reconciler would write is not written.
func TestPolicyStatusUnchanged(t *testing.T) {
	dp := statusPolicy(2, []string{"true", "traffic.stale"})
	dp.Status = v1alpha1.DataplanePolicyStatus{ObservedGeneration: 2, Conditions: []metav1.Condition{{
		Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonCompiled, Message: "2 rules compiled",
		ObservedGeneration: 2, LastTransitionTime: metav1.NewTime(fixedNow.Add(-1e12)),
	}}}
	writes := 0
	c := fake.NewClientBuilder().WithScheme(testScheme()).WithStatusSubresource(&v1alpha1.DataplanePolicy{}).WithObjects(dp).
		WithInterceptorFuncs(interceptor.Funcs{
			SubResourcePatch: func(context.Context, client.Client, string, client.Object, client.Patch, ...client.SubResourcePatchOption) error {
				writes++
				return nil
			},
			SubResourceUpdate: func(context.Context, client.Client, string, client.Object, ...client.SubResourceUpdateOption) error {
				writes++
				return nil
			},
		}).Build()
	r := &PolicyStatusReconciler{Client: c, Recorder: events.NewFakeRecorder(1), Clock: fixedClock()}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: "p"}}); err != nil {
		t.Fatal(err)
	}
	if writes != 0 {
		t.Errorf("status writes = %d, want 0", writes)
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdefghij", 8, "abcd ..."},
		{"ab\u00e9\u00e9\u00e9", 7, "ab ..."}, // é is 2 bytes: no cut inside it
	} {
		if got := truncate(tc.in, tc.n); got != tc.want || len(got) > tc.n {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestPolicyStoreCompilesOncePerGeneration: the status reconciler gets the
// store's result for a generation the store compiled (the spec is not looked
// at again), compiles a generation the store has not seen itself, and never
// changes what the admission path uses.
func TestPolicyStoreCompilesOncePerGeneration(t *testing.T) {
	s := NewPolicyStore(logr.Discard())
	dp := &v1alpha1.DataplanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: 1},
		Spec: v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeAmbient),
			Rules: []v1alpha1.Rule{{Name: "web", When: `workload.labels["app"] == "web"`, Mode: "sidecar"}}}}
	s.Upsert(dp)
	if ps := s.Policies(); len(ps) != 1 || ps[0].Generation() != 1 {
		t.Fatalf("policies after upsert: %v", ps)
	}
	bad := dp.DeepCopy()
	bad.Spec.Rules[0].When = "workload.labels[" // does not compile
	if errs := s.Compile(bad); len(errs) != 0 {
		t.Fatalf("generation 1 was compiled by the store; Compile compiled again: %v", errs)
	}
	bad.Generation = 2
	if errs := s.Compile(bad); len(errs) == 0 {
		t.Fatal("generation 2 (not seen by the store) compiled without errors")
	}
	if ps := s.Policies(); len(ps) != 1 || ps[0].Generation() != 1 {
		t.Fatalf("Compile changed what the admission path uses: %v", ps)
	}
	s.Upsert(bad)
	if ps := s.Policies(); len(ps) != 0 {
		t.Fatalf("an invalid generation is still in force: %v", ps)
	}
	s.Delete("p")
	if errs := s.Compile(dp); len(errs) != 0 {
		t.Fatalf("after delete, generation 1 compiled with errors: %v", errs)
	}
}
