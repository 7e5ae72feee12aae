package policies

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshshift/meshshift/api/v1alpha1"
)

func TestSet(t *testing.T) {
	s := NewSet()
	dp := &v1alpha1.DataplanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "shop", Generation: 1},
		Spec: v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeAmbient),
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shop"}}}}
	if errs := s.Upsert(dp); errs != nil {
		t.Fatal(errs)
	}
	p := s.For(map[string]string{"team": "shop"})
	if p.Name() != "shop" || p.Generation() != 1 {
		t.Fatalf("For: %s/%d", p.Name(), p.Generation())
	}
	if s.Upsert(dp); s.For(map[string]string{"team": "shop"}) != p {
		t.Error("the same generation was compiled again")
	}
	bad := dp.DeepCopy()
	bad.Generation = 2
	bad.Spec.Rules = []v1alpha1.Rule{{Name: "x", When: "nope(", Mode: "none"}}
	if errs := s.Upsert(bad); len(errs) != 1 || errs[0].Field != "spec.rules[0].when" {
		t.Fatalf("bad generation: %v", errs)
	}
	if got := s.For(map[string]string{"team": "shop"}); got != p || len(s.Errors("shop")) != 1 {
		t.Error("the last good generation must stay in force, with the errors reported")
	}
	good := dp.DeepCopy()
	good.Generation = 3
	good.Spec.DefaultMode = v1alpha1.RuleMode(v1alpha1.ModeNone)
	if errs := s.Upsert(good); errs != nil || s.For(map[string]string{"team": "shop"}).DefaultMode() != v1alpha1.RuleMode(v1alpha1.ModeNone) || s.Errors("shop") != nil {
		t.Error("generation 3 not in force")
	}
	if got := s.For(map[string]string{"team": "other"}); got != Builtin() {
		t.Errorf("other namespace: %s", got.Name())
	}
	s.Delete("shop")
	if _, ok := s.Get("shop"); ok || s.For(map[string]string{"team": "shop"}) != Builtin() {
		t.Error("delete")
	}
}
