package config_test

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/meshshift/meshshift/test/harness"
)

// managerHA is what a rendering ships for the manager's availability.
type managerHA struct {
	dep *appsv1.Deployment
	pdb *policyv1.PodDisruptionBudget
}

func managerHAOf(t *testing.T, objs []*unstructured.Unstructured) managerHA {
	t.Helper()
	var out managerHA
	for _, u := range objs {
		var into any
		switch {
		case u.GetKind() == "Deployment" && u.GetName() == "meshshift-manager":
			out.dep = &appsv1.Deployment{}
			into = out.dep
		case u.GetKind() == "PodDisruptionBudget" && u.GetName() == "meshshift-manager":
			out.pdb = &policyv1.PodDisruptionBudget{}
			into = out.pdb
		default:
			continue
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
			t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	if out.dep == nil {
		t.Fatal("no meshshift-manager Deployment rendered")
	}
	return out
}

// checkManagerHA: at least two replicas, leader election (the migrator runs
// on one; the webhooks on all), a PodDisruptionBudget of minAvailable 1 that
// selects the manager's pods, a preStop sleep (a deleted replica answers
// until the API server stops calling it), and a preferred anti-affinity by
// hostname over the same pods.
func checkManagerHA(t *testing.T, what string, ha managerHA) {
	t.Helper()
	dep := ha.dep
	podLabels := labels.Set(dep.Spec.Template.Labels)
	if r := dep.Spec.Replicas; r == nil || *r < 2 {
		t.Errorf("%s: manager replicas %v, want at least 2", what, r)
	}
	if args := dep.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--leader-elect") {
		t.Errorf("%s: manager args %v lack --leader-elect", what, args)
	}
	if ha.pdb == nil {
		t.Errorf("%s: no PodDisruptionBudget for the manager", what)
	} else {
		if ha.pdb.Namespace != dep.Namespace {
			t.Errorf("%s: PodDisruptionBudget in %q, the manager in %q", what, ha.pdb.Namespace, dep.Namespace)
		}
		if m := ha.pdb.Spec.MinAvailable; m == nil || m.IntValue() != 1 || ha.pdb.Spec.MaxUnavailable != nil {
			t.Errorf("%s: PodDisruptionBudget minAvailable %v maxUnavailable %v, want minAvailable 1 only", what, m, ha.pdb.Spec.MaxUnavailable)
		}
		if !selects(t, ha.pdb.Spec.Selector, podLabels) {
			t.Errorf("%s: PodDisruptionBudget selector %v does not select the manager's pods %v", what, ha.pdb.Spec.Selector, podLabels)
		}
	}
	// Deleted, a replica keeps serving until its endpoint has left the
	// Service, within the grace period.
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if g := dep.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	if lc := dep.Spec.Template.Spec.Containers[0].Lifecycle; lc == nil || lc.PreStop == nil || lc.PreStop.Sleep == nil ||
		lc.PreStop.Sleep.Seconds < 2 || lc.PreStop.Sleep.Seconds > grace/2 {
		t.Errorf("%s: manager container lifecycle %+v: want a preStop sleep of 2s to half the grace period (%ds)", what, lc, grace)
	}
	aff := dep.Spec.Template.Spec.Affinity
	if aff == nil || aff.PodAntiAffinity == nil {
		t.Errorf("%s: manager pods have no anti-affinity", what)
		return
	}
	if len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0 {
		t.Errorf("%s: required anti-affinity leaves a replica Pending on a one-node cluster; want preferred", what)
	}
	found := false
	for _, w := range aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		term := w.PodAffinityTerm
		if term.TopologyKey == corev1.LabelHostname && selects(t, term.LabelSelector, podLabels) && w.Weight > 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("%s: no preferred anti-affinity by %s over the manager's own pods: %+v", what, corev1.LabelHostname, aff.PodAntiAffinity)
	}
}

func selects(t *testing.T, s *metav1.LabelSelector, set labels.Set) bool {
	t.Helper()
	if s == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		t.Errorf("selector %v: %v", s, err)
		return false
	}
	return !sel.Empty() && sel.Matches(set)
}

// TestManagerIsHighlyAvailable checks the manager's availability settings in
// the kustomize default overlay and the Helm chart's defaults, and that the
// chart drops the budget for a single replica (a budget of minAvailable 1
// over one pod would block every node drain).
func TestManagerIsHighlyAvailable(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	checkManagerHA(t, "kustomize config/default", managerHAOf(t, kustomize(t, root, "default")))
	if testing.Short() {
		t.Skip("the Helm half needs the helm asset (make assets); run without -short")
	}
	checkManagerHA(t, "helm template", managerHAOf(t, helmTemplate(t, root)))
	one := managerHAOf(t, helmTemplate(t, root, "manager.replicas=1"))
	if one.pdb != nil {
		t.Errorf("helm template manager.replicas=1 renders a PodDisruptionBudget %s", strings.TrimSpace(one.pdb.Name))
	}
	if r := one.dep.Spec.Replicas; r == nil || *r != 1 {
		t.Errorf("helm template manager.replicas=1: replicas %v", r)
	}
}
