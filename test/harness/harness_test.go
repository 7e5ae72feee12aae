package harness_test

import (
	"context"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshshift/meshshift/test/harness"
)

// TestDeploymentRollsUnderKwok is the smoke test of the machinery the
// migrator's end-to-end tests stand on: a Deployment's pods become Ready on
// kwok nodes, and a restartedAt change replaces them with new, Ready pods.
func TestDeploymentRollsUnderKwok(t *testing.T) {
	c := harness.Start(t, harness.Options{ControllerManager: true, Scheduler: true, KwokNodes: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	nodes, err := c.NodeNames(ctx)
	if err != nil || len(nodes) != 2 {
		t.Fatalf("kwok nodes = %v (err %v), want 2", nodes, err)
	}
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "cart"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "cart", Image: "cart:1"}}},
			},
		},
	}
	if err := c.Client.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	first := waitReadyPods(ctx, t, c, 3, nil)
	t.Logf("pods ready: %v", first)

	start := time.Now()
	patch := client.MergeFrom(dep.DeepCopy())
	dep.Spec.Template.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": time.Now().Format(time.RFC3339)}
	if err := c.Client.Patch(ctx, dep, patch); err != nil {
		t.Fatal(err)
	}
	second := waitReadyPods(ctx, t, c, 3, first)
	t.Logf("rolled in %v: %v", time.Since(start).Round(time.Millisecond), second)
}

// waitReadyPods waits until the cart Deployment has exactly want pods, all
// Ready, scheduled on a node, and none of them named in old.
func waitReadyPods(ctx context.Context, t *testing.T, c *harness.Cluster, want int, old []string) []string {
	t.Helper()
	oldSet := map[string]bool{}
	for _, n := range old {
		oldSet[n] = true
	}
	var names []string
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		var pods corev1.PodList
		if err := c.Client.List(ctx, &pods, client.InNamespace("shop"), client.MatchingLabels{"app": "cart"}); err != nil {
			return false, err
		}
		names = names[:0]
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil || oldSet[p.Name] || p.Spec.NodeName == "" || !podReady(&p) {
				return false, nil
			}
			names = append(names, p.Name)
		}
		return len(names) == want, nil
	})
	if err != nil {
		t.Fatalf("wait for %d new Ready pods (old %v, now %v): %v", want, old, names, err)
	}
	sort.Strings(names)
	return names
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
