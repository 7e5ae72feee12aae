package e2e_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshshift/meshshift/migrator/l7policy"
)

// TestProtectionViolations shows the invariant check used by the policy
// migration scenarios finds each kind of violation, and none in a protected
// state, on states built by hand (no cluster).
func TestProtectionViolations(t *testing.T) {
	pod := func(name string, ambient bool) corev1.Pod {
		l := map[string]string{"app": app, "meshshift.io/dataplane": "sidecar"}
		if ambient {
			l = map[string]string{"app": app, "meshshift.io/dataplane": "ambient-waypoint", "istio.io/dataplane-mode": "ambient",
				"sidecar.istio.io/inject": "false", "istio.io/use-waypoint": "waypoint"}
		}
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: l}}
	}
	svc := func(waypoint string) corev1.Service {
		s := corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: app}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app}}}
		if waypoint != "" {
			s.Labels = map[string]string{"istio.io/use-waypoint": waypoint}
		}
		return s
	}
	narrowed := func(selector, annotate bool) unstructured.Unstructured {
		u := l7Policies("ns")[0].DeepCopy()
		if selector {
			_ = unstructured.SetNestedStringMap(u.Object, map[string]string{"app": app, "meshshift.io/dataplane": "sidecar"}, "spec", "selector", "matchLabels")
		}
		if annotate {
			u.SetAnnotations(map[string]string{l7policy.AnnotationOriginal: `{"spec":{}}`})
		}
		return *u
	}
	copyOf := func() unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{
			"targetRefs": []any{map[string]any{"group": "", "kind": "Service", "name": app}}}}}
		u.SetGroupVersionKind(authzGVK)
		u.SetNamespace("ns")
		u.SetName("web-allow-meshshift")
		u.SetLabels(map[string]string{l7policy.LabelMigration: "m"})
		u.SetAnnotations(map[string]string{l7policy.AnnotationSource: "AuthorizationPolicy/ns/web-allow"})
		return *u
	}
	keys := []string{"AuthorizationPolicy/web-allow"}
	cases := []struct {
		name string
		st   protectionState
		want []string // parts of the violations, in order; none means protected
	}{
		{"sidecar pods under the original", protectionState{pods: []corev1.Pod{pod("a", false)},
			policies: []unstructured.Unstructured{*l7Policies("ns")[0]}, services: []corev1.Service{svc("")}}, nil},
		{"mid-restart, protected", protectionState{pods: []corev1.Pod{pod("a", false), pod("b", true)},
			policies: []unstructured.Unstructured{narrowed(true, true), copyOf()}, services: []corev1.Service{svc("waypoint")},
			gateways: map[string]bool{"waypoint": true}}, nil},
		{"ambient pod under the un-narrowed original", protectionState{pods: []corev1.Pod{pod("b", true)},
			policies: []unstructured.Unstructured{*l7Policies("ns")[0], copyOf()}, services: []corev1.Service{svc("waypoint")},
			gateways: map[string]bool{"waypoint": true}}, []string{"ztunnel would enforce it"}},
		{"ambient pod and no copy", protectionState{pods: []corev1.Pod{pod("b", true)},
			policies: []unstructured.Unstructured{narrowed(true, true)}, services: []corev1.Service{svc("waypoint")},
			gateways: map[string]bool{"waypoint": true}}, []string{"no targetRefs copy"}},
		{"copy without a programmed waypoint", protectionState{pods: []corev1.Pod{pod("a", false)},
			policies: []unstructured.Unstructured{narrowed(true, true), copyOf()}, services: []corev1.Service{svc("waypoint")},
			gateways: map[string]bool{"waypoint": false}}, []string{"no waypoint is programmed"}},
		{"sidecar pod unlabelled under a narrowed original", protectionState{pods: []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "c", Labels: map[string]string{"app": app}}}},
			policies: []unstructured.Unstructured{narrowed(true, true)}}, []string{"is not selected by"}},
		{"half-narrowed", protectionState{pods: []corev1.Pod{pod("a", false)},
			policies: []unstructured.Unstructured{narrowed(false, true)}}, []string{"half-narrowed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := protectionViolations(&c.st, keys)
			if len(got) != len(c.want) {
				t.Fatalf("violations %q, want %d matching %q", got, len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("violation %q, want it to say %q", got[i], w)
				}
			}
		})
	}
}
