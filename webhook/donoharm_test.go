package webhook_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/webhook/webhooktest"
)

// meshView is what the mesh makes of a pod: every label and annotation
// outside meshshift.io/, and the names of its containers after admission.
type meshView struct {
	labels, annotations map[string]string
	containers          []string
}

func viewOf(p *corev1.Pod) meshView {
	v := meshView{labels: map[string]string{}, annotations: map[string]string{}}
	for k, val := range p.Labels {
		if !strings.HasPrefix(k, "meshshift.io/") {
			v.labels[k] = val
		}
	}
	for k, val := range p.Annotations {
		// Istio's injector writes its status with generated content; what
		// matters is that it did, which the containers show.
		if !strings.HasPrefix(k, "meshshift.io/") && k != "sidecar.istio.io/status" && !strings.HasPrefix(k, "kubectl.kubernetes.io/") {
			v.annotations[k] = val
		}
	}
	for _, c := range p.Spec.InitContainers {
		v.containers = append(v.containers, "init:"+c.Name)
	}
	for _, c := range p.Spec.Containers {
		v.containers = append(v.containers, c.Name)
	}
	return v
}

func (v meshView) String() string {
	return fmt.Sprintf("labels %v annotations %v containers %v", v.labels, v.annotations, v.containers)
}

func (v meshView) equal(o meshView) bool {
	return maps.Equal(v.labels, o.labels) && maps.Equal(v.annotations, o.annotations) && slices.Equal(v.containers, o.containers)
}

// TestIstioDoNoHarm is the do-no-harm rule against the real Istio injector:
// installing meshshift's shipped webhook configuration, with no
// DataplanePolicy and then with the shipped default policy, changes nothing
// the mesh does with a new pod. Each pod is created first without meshshift,
// then with it; both must come back with the same mesh labels and the same
// containers: (a) an unlabelled namespace gets no sidecar, (b) an ambient
// namespace stays ambient, (c) an istio-injection=enabled namespace and (d)
// an istio.io/rev namespace get their sidecar — and the pod-level labels
// teams set (inject true/false, dataplane-mode none) keep their effect.
func TestIstioDoNoHarm(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs the real control plane and istiod; run without -short")
	}
	c := harness.Start(t, harness.Options{CRDPaths: []string{istioCRDs(t)}})
	startIstiod(t, c)
	ctx := context.Background()

	namespaces := []struct {
		name   string
		labels map[string]string
	}{
		{"a-plain", nil},
		{"b-ambient", map[string]string{"istio.io/dataplane-mode": "ambient"}},
		{"c-injection", map[string]string{"istio-injection": "enabled"}},
		{"d-revision", map[string]string{"istio.io/rev": "default"}},
	}
	podLabels := []map[string]string{
		{"app": "web"},
		{"app": "web", "sidecar.istio.io/inject": "true"},
		{"app": "web", "sidecar.istio.io/inject": "false"},
		{"app": "web", "istio.io/dataplane-mode": "none"},
	}
	for _, ns := range namespaces {
		createNamespace(t, c.Client, ns.name, ns.labels, nil)
	}
	create := func(t *testing.T, name, ns string, labels map[string]string) *corev1.Pod {
		t.Helper()
		p := newPod(name, ns, maps.Clone(labels), nil)
		if err := c.Client.Create(ctx, p); err != nil {
			t.Fatalf("create pod %s/%s: %v", ns, name, err)
		}
		return p
	}

	// Without meshshift: what Istio alone does.
	before := map[string]meshView{}
	for _, ns := range namespaces {
		for i, l := range podLabels {
			p := create(t, fmt.Sprintf("before-%d", i), ns.name, l)
			before[fmt.Sprintf("%s/%d", ns.name, i)] = viewOf(p)
		}
	}
	// The premise: Istio injects in (c) and (d) and for inject=true, not in (a) or (b).
	for key, want := range map[string]bool{"a-plain/0": false, "a-plain/1": true, "b-ambient/0": false,
		"c-injection/0": true, "c-injection/2": false, "d-revision/0": true} {
		if got := slices.Contains(before[key].containers, "istio-proxy") || slices.Contains(before[key].containers, "init:istio-proxy"); got != want {
			t.Fatalf("without meshshift, %s: istio-proxy injected = %v, want %v (%s)", key, got, want, before[key])
		}
	}

	webhooktest.Start(t, c, webhooktest.Options{})
	compare := func(t *testing.T, prefix, wantPolicy string) {
		for _, ns := range namespaces {
			for i, l := range podLabels {
				key := fmt.Sprintf("%s/%d", ns.name, i)
				p := create(t, fmt.Sprintf("%s-%d", prefix, i), ns.name, l)
				if got := p.Annotations["meshshift.io/policy"]; !strings.HasPrefix(got, wantPolicy+"/") {
					t.Errorf("%s: decided by policy %q, want %s (decision %q)", key, got, wantPolicy, p.Annotations["meshshift.io/decision"])
				}
				if got := viewOf(p); !got.equal(before[key]) {
					t.Errorf("%s with meshshift (%s):\n  got  %s\n  want %s", key, p.Annotations["meshshift.io/reason"], got, before[key])
				}
			}
		}
	}
	t.Run("no DataplanePolicy", func(t *testing.T) { compare(t, "builtin", "builtin") })

	t.Run("shipped default policy", func(t *testing.T) {
		dp, err := policies.DefaultPolicy()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Client.Create(ctx, dp); err != nil {
			t.Fatalf("create the shipped default policy: %v", err)
		}
		waitFor(t, "the default policy in force", func() bool {
			p := newPod("probe", "a-plain", map[string]string{"app": "probe"}, nil)
			if err := c.Client.Create(ctx, p, client.DryRunAll); err != nil {
				return false
			}
			return strings.HasPrefix(p.Annotations["meshshift.io/policy"], dp.Name+"/")
		})
		compare(t, "default", dp.Name)
	})
}
