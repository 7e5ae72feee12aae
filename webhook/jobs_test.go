package webhook

import (
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
)

func job(name string, cronJob string) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "batch", UID: "uid-" + types.UID(name)}}
	if cronJob != "" {
		j.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: cronJob, UID: "cron-uid", Controller: ptr.To(true)}}
	}
	return j
}

// TestPodMutatorKeysCronJobPodsOnTheCronJob: the pods of every run (Job) of
// one CronJob get one answer while only traffic changes, though the Job
// controller labels each run's pods differently; a Job of its own, and a Job
// the cache does not hold, are keyed on the Job.
func TestPodMutatorKeysCronJobPodsOnTheCronJob(t *testing.T) {
	dp := &v1alpha1.DataplanePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "busy", Generation: 1},
		Spec: v1alpha1.DataplanePolicySpec{DefaultMode: "sidecar", Rules: []v1alpha1.Rule{{
			Name: "quiet", When: "traffic.available && !traffic.stale && traffic.requestRate < 10.0", Mode: "ambient",
		}}},
	}
	rate := 1.0
	in := testInputs(t, []*v1alpha1.DataplanePolicy{dp}, ns("batch", nil, nil))
	in.Jobs = fake.NewClientBuilder().WithScheme(testScheme()).
		WithObjects(job("report-29000000", "report"), job("report-29000060", "report"), job("migrate", "")).Build()
	in.Traffic = func() *signals.TrafficSnapshot {
		return &signals.TrafficSnapshot{Workloads: map[signals.WorkloadKey]signals.WorkloadTraffic{
			{Namespace: "batch", Name: "report"}:  {RequestRate: rate, Window: 60e9, SampleTime: fixedNow},
			{Namespace: "batch", Name: "migrate"}: {RequestRate: rate, Window: 60e9, SampleTime: fixedNow},
		}}
	}
	in.Clock = fixedClock()
	in.Stabilizer = policies.NewStabilizer(16)
	m := &PodMutator{Inputs: in}
	decide := func(jobName string) any {
		t.Helper()
		pod := testPod("", "batch", map[string]string{"app": "report",
			"batch.kubernetes.io/controller-uid": "uid-" + jobName, "controller-uid": "uid-" + jobName,
			"batch.kubernetes.io/job-name": jobName, "job-name": jobName}, nil)
		pod.GenerateName = jobName + "-"
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: jobName, UID: "u", Controller: ptr.To(true)}}
		resp := handle(m, request(admissionv1.Create, "Pod", "pods", "batch", mustJSON(t, pod), nil))
		if !resp.Allowed {
			t.Fatalf("not allowed: %+v", resp.Result)
		}
		for _, p := range patchOps(t, resp.Patch) {
			if p.Path == "/metadata/annotations" {
				return p.Value.(map[string]any)[v1alpha1.AnnotationDecision]
			}
		}
		t.Fatalf("no annotations in patch %s", resp.Patch)
		return nil
	}
	if got := decide("report-29000000"); got != "ambient/rule:quiet" {
		t.Fatalf("first run's pod: decision %v, want ambient/rule:quiet", got)
	}
	rate = 50 // busy now: decided afresh, the rule would not match
	if got := decide("report-29000000"); got != "ambient/rule:quiet" {
		t.Errorf("first run's second pod: decision %v, want the run's ambient/rule:quiet", got)
	}
	if got := decide("report-29000060"); got != "ambient/rule:quiet" {
		t.Errorf("next run's pod: decision %v, want the CronJob's ambient/rule:quiet", got)
	}
	if got := decide("migrate"); got != "sidecar/policy-default" {
		t.Errorf("a Job of its own: decision %v, want sidecar/policy-default (decided for itself, traffic busy)", got)
	}
	if got := decide("report-29000120"); got != "sidecar/policy-default" {
		t.Errorf("a run the cache does not hold yet: decision %v, want sidecar/policy-default (keyed on its Job)", got)
	}
	if n := in.Stabilizer.Len(); n != 3 {
		t.Errorf("remembered owners: %d, want 3 (CronJob report, Job migrate, Job report-29000120)", n)
	}
	in.Jobs = nil
	in.Stabilizer = policies.NewStabilizer(16)
	decide("report-29000000")
	decide("report-29000060")
	if n := in.Stabilizer.Len(); n != 2 {
		t.Errorf("without a Job reader: %d remembered owners, want 2 (each run keyed on its Job)", n)
	}
}

func TestWithoutKeys(t *testing.T) {
	m := map[string]string{"app": "a", "job-name": "j"}
	got := withoutKeys(m, perRunLabels)
	if len(got) != 1 || got["app"] != "a" || len(m) != 2 {
		t.Errorf("withoutKeys: got %v, source now %v", got, m)
	}
	plain := map[string]string{"app": "a"}
	if got := withoutKeys(plain, perRunLabels); len(got) != 1 {
		t.Errorf("withoutKeys without the keys: %v", got)
	}
}
