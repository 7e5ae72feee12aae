package webhook_test

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/webhook"
	"github.com/meshshift/meshshift/webhook/webhooktest"
)

// TestIntegrationCronJobRunsShareOneDecision: the real Job controller creates
// the pods of a CronJob's runs through the real API server and the webhook.
// A policy rule reads traffic, which the stability rule leaves out on purpose;
// between two runs the CronJob's traffic changes so that a fresh decision
// would differ. The second run's pod still gets the first run's answer: one
// decision per CronJob. A Job of its own, created then, is decided afresh.
func TestIntegrationCronJobRunsShareOneDecision(t *testing.T) {
	c := harness.Start(t, harness.Options{ControllerManager: true})
	var rate atomic.Uint64
	rate.Store(math.Float64bits(1))
	traffic := func() *signals.TrafficSnapshot {
		now := time.Now()
		r := math.Float64frombits(rate.Load())
		return &signals.TrafficSnapshot{Time: now, Workloads: map[signals.WorkloadKey]signals.WorkloadTraffic{
			{Namespace: "batch", Name: "report"}:  {RequestRate: r, Window: time.Minute, SampleTime: now},
			{Namespace: "batch", Name: "migrate"}: {RequestRate: r, Window: time.Minute, SampleTime: now},
		}}
	}
	webhooktest.Start(t, c, webhooktest.Options{Webhook: webhook.Options{Traffic: traffic}})
	ctx := context.Background()
	createNamespace(t, c.Client, "batch", nil, nil)
	dp := &v1alpha1.DataplanePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "quiet-ambient"},
		Spec: v1alpha1.DataplanePolicySpec{DefaultMode: "sidecar", Rules: []v1alpha1.Rule{{
			Name: "quiet", When: "traffic.available && !traffic.stale && traffic.requestRate < 10.0", Mode: "ambient",
		}}},
	}
	if err := c.Client.Create(ctx, dp); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the policy to reach the webhook's cache", func() bool {
		p := newPod("probe", "batch", nil, nil)
		p.GenerateName, p.Name = "probe-", ""
		err := c.Client.Create(ctx, p, client.DryRunAll)
		return err == nil && p.Annotations[v1alpha1.AnnotationPolicy] != "" && p.Annotations[v1alpha1.AnnotationPolicy] != "builtin"
	})

	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "report"}},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "report", Image: "registry.example/report:1"}}},
	}
	cron := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "report", Namespace: "batch"},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", Suspend: ptr.To(true),
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}},
	}
	if err := c.Client.Create(ctx, cron); err != nil {
		t.Fatal(err)
	}
	// run creates a Job the way `kubectl create job --from=cronjob/report`
	// does (controlled by the CronJob), suspended until the webhook's Job
	// cache has had time to see it, and returns its pod's decision.
	run := func(name string, owned bool) string {
		t.Helper()
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "batch"},
			Spec: *cron.Spec.JobTemplate.Spec.DeepCopy()}
		job.Spec.Suspend = ptr.To(true)
		if owned {
			job.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: cron.Name, UID: cron.UID, Controller: ptr.To(true)}}
		}
		if err := c.Client.Create(ctx, job); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		p := client.MergeFrom(job.DeepCopy())
		job.Spec.Suspend = ptr.To(false)
		if err := c.Client.Patch(ctx, job, p); err != nil {
			t.Fatal(err)
		}
		var decision string
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			var pods corev1.PodList
			if err := c.Client.List(ctx, &pods, client.InNamespace("batch"), client.MatchingLabels{"batch.kubernetes.io/job-name": name}); err != nil {
				return false, err
			}
			if len(pods.Items) == 0 {
				return false, nil
			}
			decision = pods.Items[0].Annotations[v1alpha1.AnnotationDecision]
			return true, nil
		})
		if err != nil {
			t.Fatalf("no pod of Job %s: %v", name, err)
		}
		return decision
	}
	if got := run("report-manual-1", true); got != "ambient/rule:quiet" {
		t.Fatalf("first run's pod: decision %q, want ambient/rule:quiet", got)
	}
	rate.Store(math.Float64bits(50)) // busy: a fresh decision would be the default
	if got := run("report-manual-2", true); got != "ambient/rule:quiet" {
		t.Errorf("second run's pod: decision %q, want the CronJob's ambient/rule:quiet (one decision per CronJob)", got)
	}
	if got := run("migrate", false); got != "sidecar/policy-default" {
		t.Errorf("a Job of its own: decision %q, want sidecar/policy-default (decided afresh, traffic busy)", got)
	}
}
