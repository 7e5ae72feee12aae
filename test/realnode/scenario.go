package realnode

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/test/image"
)

// The scenario's namespaces: two waves and the load client's own namespace,
// which no wave touches (so the client never restarts and its counts cover
// every request).
const (
	HealthyNS  = "shop-a"
	BreakingNS = "shop-b"
	LoadNS     = "load"
	// TargetMode is the migration's target, the mode shop-b's app breaks under.
	TargetMode = "ambient"
	// MigrationName is the MeshMigration's name.
	MigrationName = "to-ambient"
	// RPS is the load client's rate to each namespace's Service.
	RPS = 40
)

// Workload is the test app deployed for the scenario.
type Workload struct {
	// ServiceIPs are the server Services' ClusterIPs by namespace.
	ServiceIPs map[string]string
}

// serverDeployment is the test app's server: it answers 500 for half of
// its requests while its own meshshift.io/dataplane label is faultMode.
func serverDeployment(ns, faultMode string) *appsv1.Deployment {
	args := []string{"server", "--drain=8s"}
	if faultMode != "" {
		args = append(args, "--fault-mode="+faultMode, "--fault-share=0.5")
	}
	labels := map[string]string{"app": "server"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "server"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](15),
					Containers: []corev1.Container{{
						Name: "server", Image: image.TestAppTag, ImagePullPolicy: corev1.PullNever, Args: args,
						Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
							FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						// A TCP probe: kubelet's probes send no HTTP request the
						// agent would count beside the load client's.
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1},
						VolumeMounts:   []corev1.VolumeMount{{Name: "podinfo", MountPath: "/etc/podinfo"}},
					}},
					Volumes: []corev1.Volume{{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
						Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}},
					}}}},
				},
			},
		},
	}
}

// Deploy creates the namespaces, the servers with their Services, and the
// load client sending RPS requests a second to each Service (a new
// connection per request), and waits for every pod to be Ready.
func Deploy(ctx context.Context, cl client.Client) (*Workload, error) {
	w := &Workload{ServiceIPs: map[string]string{}}
	for _, ns := range []string{HealthyNS, BreakingNS, LoadNS} {
		if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return nil, fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	for ns, fault := range map[string]string{HealthyNS: "", BreakingNS: TargetMode} {
		// Both servers carry the fault switch's flag only where it may trip.
		if err := cl.Create(ctx, serverDeployment(ns, fault)); err != nil {
			return nil, fmt.Errorf("create server in %s: %w", ns, err)
		}
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "server"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "server"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		}
		if err := cl.Create(ctx, svc); err != nil {
			return nil, fmt.Errorf("create service in %s: %w", ns, err)
		}
		w.ServiceIPs[ns] = svc.Spec.ClusterIP
	}
	if err := WaitPodsReady(ctx, cl, HealthyNS, 2); err != nil {
		return nil, err
	}
	if err := WaitPodsReady(ctx, cl, BreakingNS, 2); err != nil {
		return nil, err
	}
	targets := "http://" + w.ServiceIPs[HealthyNS] + "/,http://" + w.ServiceIPs[BreakingNS] + "/"
	load := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: LoadNS, Name: "load"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "load"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "load"}},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](1),
					Containers: []corev1.Container{{
						Name: "load", Image: image.TestAppTag, ImagePullPolicy: corev1.PullNever,
						Args:  []string{"load", "--targets=" + targets, fmt.Sprintf("--rps=%d", RPS), "--new-conn"},
						Ports: []corev1.ContainerPort{{Name: "counts", ContainerPort: 8081}},
					}},
				},
			},
		},
	}
	if err := cl.Create(ctx, load); err != nil {
		return nil, fmt.Errorf("create load client: %w", err)
	}
	return w, WaitPodsReady(ctx, cl, LoadNS, 1)
}

// WaitPodsReady waits until namespace ns has exactly want pods, all Ready
// and none terminating.
func WaitPodsReady(ctx context.Context, cl client.Client, ns string, want int) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		var pods corev1.PodList
		if err := cl.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return false, err
		}
		ready := 0
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
					ready++
				}
			}
		}
		last = fmt.Sprintf("%d pods, %d ready", len(pods.Items), ready)
		return len(pods.Items) == want && ready == want, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %d ready pods in %s: %w (%s)", want, ns, err, last)
	}
	return nil
}

// Gate is the scenario's SLO gate: the built-in errorRate and latencyP99
// SLIs (the node agent's series, the shipped queries) with absolute limits
// (p99 against a loose 1 s: a busy 2-core test machine has 100 ms spikes),
// checked every 5 s over a 15 s window. One failing check breaches: with
// N checks the rollback starts up to N intervals after the data shows the
// breach, and the scenario asserts it starts within two.
func Gate() *meshv1alpha1.GateSpec {
	return &meshv1alpha1.GateSpec{
		Interval: &metav1.Duration{Duration: 5 * time.Second}, Window: &metav1.Duration{Duration: 15 * time.Second},
		FailuresToBreach: 1, InconclusiveLimit: 20,
		SLIs: []meshv1alpha1.SLI{
			{Name: "errorRate", Max: "0.05", MinSample: 100},
			{Name: "latencyP99", Max: "1", MinSample: 100},
		},
	}
}

// Migration moves shop-a, then shop-b, to the target mode, baking each wave
// for 20 s, rolling back on breach.
func Migration() *meshv1alpha1.MeshMigration {
	return &meshv1alpha1.MeshMigration{
		ObjectMeta: metav1.ObjectMeta{Name: MigrationName},
		Spec: meshv1alpha1.MeshMigrationSpec{
			TargetMode: TargetMode,
			Waves: []meshv1alpha1.WaveSpec{
				{Name: "healthy", Namespaces: []string{HealthyNS}},
				{Name: "breaking", Namespaces: []string{BreakingNS}},
			},
			BakeTime:     &metav1.Duration{Duration: 20 * time.Second},
			ReadyTimeout: &metav1.Duration{Duration: 2 * time.Minute},
			Gate:         Gate(),
			Rollback:     &meshv1alpha1.RollbackPolicy{Automatic: ptr.To(true)},
		},
	}
}

// ClientCounts are the load client's own counts for one target.
type ClientCounts struct {
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors5xx"`
	Failed   uint64 `json:"failed"`
}

// LoadClient is the running load client pod.
type LoadClient struct{ url string }

// FindLoadClient finds the load client pod's counts endpoint by pod IP.
func FindLoadClient(ctx context.Context, cl client.Client) (*LoadClient, error) {
	var pods corev1.PodList
	if err := cl.List(ctx, &pods, client.InNamespace(LoadNS), client.MatchingLabels{"app": "load"}); err != nil {
		return nil, fmt.Errorf("list load client pods: %w", err)
	}
	if len(pods.Items) != 1 || pods.Items[0].Status.PodIP == "" {
		return nil, fmt.Errorf("want one running load client pod, found %d", len(pods.Items))
	}
	return &LoadClient{url: "http://" + pods.Items[0].Status.PodIP + ":8081"}, nil
}

// Counts returns the client's counts by target Service IP.
func (l *LoadClient) Counts(ctx context.Context, w *Workload) (map[string]ClientCounts, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.url+"/counts", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read load client counts: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	var byTarget map[string]ClientCounts
	if err := json.NewDecoder(resp.Body).Decode(&byTarget); err != nil {
		return nil, fmt.Errorf("decode load client counts: %w", err)
	}
	out := map[string]ClientCounts{}
	for ns, ip := range w.ServiceIPs {
		out[ns] = byTarget["http://"+ip+"/"]
	}
	return out, nil
}

// Pause stops (pause true) or restarts the load.
func (l *LoadClient) Pause(ctx context.Context, pause bool) error {
	path := "/resume"
	if pause {
		path = "/pause"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("load client %s: %w", path, err)
	}
	return resp.Body.Close()
}
