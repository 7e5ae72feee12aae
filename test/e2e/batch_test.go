package e2e_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	meshshift "github.com/meshshift/meshshift/cmd/meshshift/app"
	"github.com/meshshift/meshshift/migrator"
)

// testJobsAndCronJobs: a wave over a namespace with a Deployment, a CronJob
// and a Job restarts the Deployment, completes without restarting or waiting
// for the CronJob and the Job, and says so in its status and in `meshshift
// status`; the CronJob's next run is admitted in the new mode.
func testJobsAndCronJobs(t *testing.T, e *env) {
	const ns = "batch-1"
	e.makeNamespaces(t, ns)
	ctx := context.Background()
	tmpl := func(app string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: app, Image: app + ":1"}}}}
	}
	cron := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "report", Namespace: ns},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", Suspend: ptr.To(true),
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl("report")}}}}
	// A long-running Job: its pod (Pending on kwok's nodes or running) never
	// completes during the test, so a wave that waited for it would not finish.
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "reindex", Namespace: ns},
		Spec: batchv1.JobSpec{Template: tmpl("reindex"), ActiveDeadlineSeconds: ptr.To[int64](3600)}}
	for _, o := range []client.Object{cron, job} {
		if err := e.cl.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	stop := e.startMigrator(t, migratorOpts{releaseLease: true})
	defer stop()
	start := time.Now()
	create(t, e, &meshv1alpha1.MeshMigration{
		ObjectMeta: metav1.ObjectMeta{Name: "batch"},
		Spec: meshv1alpha1.MeshMigrationSpec{
			TargetMode: meshv1alpha1.ModeAmbient,
			Namespaces: &meshv1alpha1.NamespaceTarget{Names: []string{ns}},
			BakeTime:   &metav1.Duration{Duration: 2 * time.Second},
			Gate:       gate(2, 10),
		},
	})
	mm := e.waitMigration(t, "batch", 60*time.Second, "Succeeded", condTrue(migrator.ConditionSucceeded))
	t.Logf("wave with a CronJob and a Job succeeded in %v", time.Since(start).Round(time.Millisecond))
	w := mm.Status.Waves[0]
	if w.Restarted != 1 || w.WaitingForNextRun != 2 {
		t.Errorf("wave status restarted %d, waitingForNextRun %d; want 1 (Deployment web) and 2 (CronJob report, Job reindex)", w.Restarted, w.WaitingForNextRun)
	}
	var gotCron batchv1.CronJob
	var gotJob batchv1.Job
	if err := e.cl.Get(ctx, client.ObjectKeyFromObject(cron), &gotCron); err != nil {
		t.Fatal(err)
	}
	if err := e.cl.Get(ctx, client.ObjectKeyFromObject(job), &gotJob); err != nil {
		t.Fatal(err)
	}
	if gotCron.Spec.JobTemplate.Spec.Template.Annotations[migrator.AnnotationRestartedAt] != "" ||
		gotJob.Spec.Template.Annotations[migrator.AnnotationRestartedAt] != "" {
		t.Error("the CronJob or the Job was restarted")
	}
	flippedTo(t, e, ns, meshv1alpha1.ModeAmbient)

	var out, errOut bytes.Buffer
	if code := meshshift.Run([]string{"status", "batch", "--kubeconfig", e.c.Kubeconfig}, &out, &errOut); code != meshshift.ExitOK {
		t.Fatalf("meshshift status batch: exit %d: %s", code, &errOut)
	}
	if want := "1 workload(s) restarted; 2 Job(s) and CronJob(s) wait for their next run"; !strings.Contains(out.String(), want) {
		t.Errorf("meshshift status batch does not say %q:\n%s", want, &out)
	}

	// The CronJob's next run (as `kubectl create job --from=cronjob/report`).
	next := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "report-next", Namespace: ns,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "report", UID: gotCron.UID, Controller: ptr.To(true)}}},
		Spec: *gotCron.Spec.JobTemplate.Spec.DeepCopy()}
	if err := e.cl.Create(ctx, next); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var pods corev1.PodList
		if err := e.cl.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"batch.kubernetes.io/job-name": "report-next"}); err != nil || len(pods.Items) == 0 {
			return false, err
		}
		if msg := modeLabelsOK(pods.Items[0].Labels, meshv1alpha1.ModeAmbient); msg != "" {
			t.Errorf("the CronJob's next run: %s", msg)
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("no pod of the CronJob's next run: %v", err)
	}
}
