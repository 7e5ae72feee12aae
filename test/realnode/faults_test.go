package realnode_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/test/image"
	"github.com/meshshift/meshshift/test/realnode"
)

// TestFaults injects faults into meshshift on a real node, one after the
// other on one installation: the webhook's outage, the manager killed
// mid-wave, and the agent lost during a bake.
func TestFaults(t *testing.T) {
	c := harness.Start(t, harness.Options{RealNode: &harness.NodeOptions{Meshshift: true}})
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	if _, err := realnode.Setup(ctx, t, c, t.Logf); err != nil {
		t.Fatal(err)
	}
	t.Run("manager-outage", func(t *testing.T) { testManagerOutage(ctx, t, c) })
	t.Run("manager-killed-mid-wave", func(t *testing.T) { testManagerKilled(ctx, t, c) })
	t.Run("agent-lost-during-bake", func(t *testing.T) { testAgentLost(ctx, t, c) })
}

// scaleManager sets the manager Deployment's replicas and waits until that
// many manager pods run, all Ready (zero: none left at all).
func scaleManager(ctx context.Context, t *testing.T, cl client.Client, n int32) {
	t.Helper()
	dep := &appsv1.Deployment{}
	if err := cl.Get(ctx, client.ObjectKey{Namespace: realnode.Namespace, Name: "meshshift-manager"}, dep); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(dep.DeepCopy())
	dep.Spec.Replicas = ptr.To(n)
	if err := cl.Patch(ctx, dep, patch); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods := managerPods(ctx, t, cl)
		ready := 0
		for _, p := range pods {
			if isReady(&p) {
				ready++
			}
		}
		return len(pods) == int(n) && ready == int(n), nil
	})
	if err != nil {
		t.Fatalf("scale the manager to %d: %v", n, err)
	}
}

func managerPods(ctx context.Context, t *testing.T, cl client.Client) []corev1.Pod {
	var pods corev1.PodList
	if err := cl.List(ctx, &pods, client.InNamespace(realnode.Namespace), client.MatchingLabels{"app.kubernetes.io/component": "manager"}); err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return p.DeletionTimestamp == nil
		}
	}
	return false
}

// testManagerOutage: with the manager scaled to zero, pods are still created
// (failurePolicy Ignore); once it is back, each pod admitted without a
// decision gets a MissedDecision event and the gauge counts them.
func testManagerOutage(ctx context.Context, t *testing.T, c *harness.Cluster) {
	scaleManager(ctx, t, c.Client, 0)
	ns := "outage"
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "app"}},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](1),
					Containers:                    []corev1.Container{{Name: "app", Image: image.TestAppTag, ImagePullPolicy: corev1.PullNever, Args: []string{"server", "--drain=0s"}}},
				},
			},
		},
	}
	created := time.Now()
	if err := c.Client.Create(ctx, dep); err != nil {
		t.Fatalf("create a Deployment while the webhook is down: %v", err)
	}
	if err := realnode.WaitPodsReady(ctx, c.Client, ns, 2); err != nil {
		t.Fatalf("pods were not created while the webhook was down: %v", err)
	}
	t.Logf("2 pods Ready %v after their Deployment was created with no manager running", time.Since(created).Round(time.Millisecond))
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if _, ok := p.Annotations[meshv1alpha1.AnnotationDecision]; ok {
			t.Fatalf("pod %s has a decision although no manager ran", p.Name)
		}
	}
	back := time.Now()
	scaleManager(ctx, t, c.Client, 2)
	want := map[string]bool{}
	for _, p := range pods.Items {
		want[p.Name] = true
	}
	var gauge float64
	err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		var evs eventsv1.EventList
		if err := c.Client.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return false, nil
		}
		seen := 0
		for _, e := range evs.Items {
			if e.Reason == "MissedDecision" && want[e.Regarding.Name] {
				seen++
			}
		}
		gauge = 0
		for _, mp := range managerPods(ctx, t, c.Client) {
			if v, err := scrapeGauge("http://"+mp.Status.PodIP+":8080/metrics", "meshshift_webhook_missed_decisions"); err == nil && v > gauge {
				gauge = v
			}
		}
		return seen >= len(want) && gauge >= float64(len(want)), nil
	})
	if err != nil {
		t.Fatalf("missed decisions not reported after the manager came back: %v (gauge %v)", err, gauge)
	}
	t.Logf("manager back: %d MissedDecision events and meshshift_webhook_missed_decisions=%v within %v", len(want), gauge, time.Since(back).Round(time.Second))
	if err := c.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
}

// scrapeGauge reads one unlabelled sample of a Prometheus text exposition.
func scrapeGauge(url, name string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("%s has no sample %s", url, name)
}

// leaderPod is the manager pod holding the leader lease.
func leaderPod(ctx context.Context, t *testing.T, cl client.Client) *corev1.Pod {
	t.Helper()
	var lease coordinationv1.Lease
	if err := cl.Get(ctx, client.ObjectKey{Namespace: realnode.Namespace, Name: "meshshift-manager.meshshift.io"}, &lease); err != nil {
		t.Fatalf("leader lease: %v", err)
	}
	holder := ptr.Deref(lease.Spec.HolderIdentity, "")
	for _, p := range managerPods(ctx, t, cl) {
		if strings.HasPrefix(holder, p.Name+"_") || holder == p.Name {
			return &p
		}
	}
	t.Fatalf("no manager pod holds the lease (holder %q)", holder)
	return nil
}

// killContainer SIGKILLs a pod's first container through containerd; kubelet restarts it.
func killContainer(ctx context.Context, t *testing.T, c *harness.Cluster, p *corev1.Pod) {
	t.Helper()
	if len(p.Status.ContainerStatuses) == 0 {
		t.Fatalf("pod %s has no container status", p.Name)
	}
	id := strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://")
	if _, err := c.Node.Ctr(ctx, "tasks", "kill", "--signal", "SIGKILL", id); err != nil {
		t.Fatalf("kill container of %s: %v", p.Name, err)
	}
}

// testManagerKilled SIGKILLs the leading manager's container when the wave
// flips, and again during the bake: the wave still ends Promoted, and every
// pod of its namespace runs in the target mode (nothing half-flipped).
func testManagerKilled(ctx context.Context, t *testing.T, c *harness.Cluster) {
	mm := realnode.Migration()
	mm.Name = "killed-mid-wave"
	mm.Spec.Waves = mm.Spec.Waves[:1] // the healthy namespace
	if err := c.Client.Create(ctx, mm); err != nil {
		t.Fatal(err)
	}
	killedAt := map[meshv1alpha1.WavePhase]bool{}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		var cur meshv1alpha1.MeshMigration
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(mm), &cur); err != nil || len(cur.Status.Waves) == 0 {
			return false, nil
		}
		ph := cur.Status.Waves[0].Phase
		switch {
		case (ph == meshv1alpha1.WaveFlipping || ph == meshv1alpha1.WaveRestarting) && !killedAt["flip"]:
			killedAt["flip"] = true
			killContainer(ctx, t, c, leaderPod(ctx, t, c.Client))
			t.Logf("killed the leading manager in phase %s", ph)
		case ph == meshv1alpha1.WaveBaking && !killedAt["bake"]:
			killedAt["bake"] = true
			killContainer(ctx, t, c, leaderPod(ctx, t, c.Client))
			t.Logf("killed the leading manager in phase %s", ph)
		case ph == meshv1alpha1.WavePromoted || ph == meshv1alpha1.WaveRolledBack || ph == meshv1alpha1.WaveFailed:
			t.Logf("wave ended %s: %s", ph, cur.Status.Waves[0].Message)
			if ph != meshv1alpha1.WavePromoted {
				return false, fmt.Errorf("wave ended %s, want Promoted", ph)
			}
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("migration with the manager killed mid-wave: %v", err)
	}
	if !killedAt["flip"] || !killedAt["bake"] {
		t.Errorf("the manager was killed at %v, want at the flip and during the bake", killedAt)
	}
	if err := realnode.WaitPodsReady(ctx, c.Client, realnode.HealthyNS, 2); err != nil {
		t.Fatal(err)
	}
	var ns corev1.Namespace
	if err := c.Client.Get(ctx, client.ObjectKey{Name: realnode.HealthyNS}, &ns); err != nil {
		t.Fatal(err)
	}
	if got := ns.Annotations[meshv1alpha1.AnnotationMode]; got != realnode.TargetMode {
		t.Errorf("namespace %s has mode annotation %q after the wave was promoted, want %s (half-flipped)", ns.Name, got, realnode.TargetMode)
	}
	// A pod re-created while the killed manager's webhook endpoint still took
	// calls is admitted without a decision (failurePolicy Ignore): the design
	// reports it (MissedDecision event) rather than blocking pod creation.
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods, client.InNamespace(realnode.HealthyNS)); err != nil {
		t.Fatal(err)
	}
	missed := map[string]bool{}
	for _, p := range pods.Items {
		got := p.Labels[meshv1alpha1.LabelDataplane]
		_, decided := p.Annotations[meshv1alpha1.AnnotationDecision]
		switch {
		case got == realnode.TargetMode:
		case !decided:
			missed[p.Name] = true
		default:
			t.Errorf("pod %s was decided %q after the wave was promoted, want %s (half-flipped)", p.Name, got, realnode.TargetMode)
		}
	}
	if len(missed) == 0 {
		return
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		var evs eventsv1.EventList
		if err := c.Client.List(ctx, &evs, client.InNamespace(realnode.HealthyNS)); err != nil {
			return false, nil
		}
		reported := 0
		for _, e := range evs.Items {
			if e.Reason == "MissedDecision" && missed[e.Regarding.Name] {
				reported++
			}
		}
		return reported >= len(missed), nil
	})
	if err != nil {
		t.Errorf("pods %v were admitted without a decision while the manager was killed and never reported: %v", missed, err)
	}
	t.Logf("pods admitted without a decision while the manager was down, reported as MissedDecision: %v (the promoted wave still holds them)", missed)
}

// testAgentLost removes the agent during a healthy wave's bake (its
// DaemonSet no longer matches the node, so it is not recreated): the gate
// goes inconclusive and the wave is not promoted in twice its bake time,
// which it would be with data.
func testAgentLost(ctx context.Context, t *testing.T, c *harness.Cluster) {
	mm := realnode.Migration()
	mm.Name = "agent-lost"
	// The healthy namespace (promoted to ambient before) moves on to none: a
	// wave that a gate with data promotes after its bake.
	mm.Spec.TargetMode = meshv1alpha1.ModeNone
	mm.Spec.Waves = []meshv1alpha1.WaveSpec{{Name: "agent-lost", Namespaces: []string{realnode.HealthyNS}}}
	mm.Spec.Gate.InconclusiveLimit = 1000
	bake := 20 * time.Second
	mm.Spec.BakeTime = &metav1.Duration{Duration: bake}
	if err := c.Client.Create(ctx, mm); err != nil {
		t.Fatal(err)
	}
	ds := &appsv1.DaemonSet{}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		var cur meshv1alpha1.MeshMigration
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(mm), &cur); err != nil || len(cur.Status.Waves) == 0 {
			return false, nil
		}
		return cur.Status.Waves[0].Phase == meshv1alpha1.WaveBaking, nil
	})
	if err != nil {
		t.Fatalf("wave never baked: %v", err)
	}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: realnode.Namespace, Name: "meshshift-agent"}, ds); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(ds.DeepCopy())
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"meshshift.io/test-no-agent": "true"}
	if err := c.Client.Patch(ctx, ds, patch); err != nil {
		t.Fatal(err)
	}
	lost := time.Now()
	t.Logf("agent removed during the bake")
	// Twice the bake time without the agent: never promoted, inconclusive checks counted.
	var last meshv1alpha1.WaveStatus
	deadline := lost.Add(2*bake + mm.Spec.Gate.Window.Duration)
	for time.Now().Before(deadline) {
		var cur meshv1alpha1.MeshMigration
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(mm), &cur); err != nil {
			t.Fatal(err)
		}
		last = cur.Status.Waves[0]
		if last.Phase == meshv1alpha1.WavePromoted {
			t.Fatalf("wave promoted %v after the agent was lost: %s", time.Since(lost).Round(time.Second), last.Message)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%v without the agent: wave %s, %d inconclusive checks in a row: %s", time.Since(lost).Round(time.Second), last.Phase, last.Inconclusive, last.Message)
	if last.Inconclusive == 0 {
		t.Errorf("no inconclusive check counted while the agent was missing (phase %s: %s)", last.Phase, last.Message)
	}
}
