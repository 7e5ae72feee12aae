package harness_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/test/image"
)

// TestRealNode starts a real node, runs the test app on it and checks that
// pods serve traffic by pod IP and through a ClusterIP Service (from the
// host and from another pod), that the app's fault switch follows its own
// dataplane label, and that once the cluster is stopped nothing of the node
// is left on the machine: processes, mounts, cgroups, bridge, nftables
// tables, routes, host paths, ip_forward.
func TestRealNode(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs a real node (containerd, kubelet, kube-proxy from the assets); run without -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("a real node needs root")
	}
	// Other test binaries may run real nodes too: look while none runs.
	var before map[string]bool
	var forward []byte
	if err := harness.WithNodeLock(func() {
		before = harness.HostPathsPresent()
		forward, _ = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	}); err != nil {
		t.Fatal(err)
	}
	t.Run("pods", testNodePods)
	if err := harness.WithNodeLock(func() {
		if left := harness.Leftovers(); len(left) > 0 {
			t.Errorf("left behind after the cluster stopped:\n  %s", strings.Join(left, "\n  "))
		}
		if diff := cmp.Diff(before, harness.HostPathsPresent()); diff != "" {
			t.Errorf("host paths changed (-before +after):\n%s", diff)
		}
		if after, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(after) != string(forward) {
			t.Errorf("ip_forward = %q after the test, want %q as before", after, forward)
		}
	}); err != nil {
		t.Fatal(err)
	}
}

func testNodePods(t *testing.T) {
	start := time.Now()
	c := harness.Start(t, harness.Options{RealNode: &harness.NodeOptions{}})
	for _, p := range c.Node.Phases() {
		t.Logf("phase %-10s %v", p.Name, p.Took.Round(time.Millisecond))
	}
	t.Logf("real node ready in %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	ns := "web"
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	mustCreate(ctx, t, c, serverDeployment(ns, "web", 2, nil, ""))
	mustCreate(ctx, t, c, serverDeployment(ns, "broken", 1, map[string]string{"meshshift.io/dataplane": "ambient"}, "ambient"))
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	mustCreate(ctx, t, c, svc)
	web := waitPods(ctx, t, c, ns, "web", 2)
	broken := waitPods(ctx, t, c, ns, "broken", 1)
	t.Logf("3 pods ready %v after their Deployments were created", time.Since(created).Round(time.Millisecond))

	for _, p := range web {
		if !hasTokenVolume(&p) {
			t.Errorf("pod %s has no service account token volume (ServiceAccount admission is off?)", p.Name)
		}
		pod, code := get(t, "http://"+p.Status.PodIP+":8080/")
		if code != http.StatusOK || pod != p.Name {
			t.Errorf("GET pod %s by IP %s: %d from %q, want 200 from itself", p.Name, p.Status.PodIP, code, pod)
		}
	}
	// kube-proxy programs the Service a moment after its endpoints are ready.
	var pod string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		var code int
		pod, code = tryGet("http://" + svc.Spec.ClusterIP + "/")
		return code == http.StatusOK, nil
	})
	if err != nil || !strings.HasPrefix(pod, "web-") {
		t.Errorf("GET ClusterIP %s from the host: answered by %q (%v), want 200 from a web pod", svc.Spec.ClusterIP, pod, err)
	}
	// The fault switch: the broken pod carries the label it breaks under.
	fails := 0
	for range 20 {
		if _, code := get(t, "http://"+broken[0].Status.PodIP+":8080/"); code == http.StatusInternalServerError {
			fails++
		}
	}
	if fails != 10 {
		t.Errorf("broken pod answered %d of 20 requests with 500, want 10 (fault share 0.5)", fails)
	}

	// From another pod, through the ClusterIP (kube-proxy's DNAT back onto the bridge).
	load := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "load", Labels: map[string]string{"app": "load"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []corev1.Container{{
				Name: "load", Image: image.TestAppTag, ImagePullPolicy: corev1.PullNever,
				Args: []string{"load", "--targets=http://" + svc.Spec.ClusterIP + "/", "--rps=50"},
			}},
		},
	}
	mustCreate(ctx, t, c, load)
	lp := waitPods(ctx, t, c, ns, "load", 1)[0]
	var counts map[string]struct {
		Requests uint64 `json:"requests"`
		Failed   uint64 `json:"failed"`
		PerPod   map[string]struct {
			Requests uint64 `json:"requests"`
		} `json:"perPod"`
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		resp, err := http.Get("http://" + lp.Status.PodIP + ":8081/counts")
		if err != nil {
			return false, nil
		}
		defer func() { _ = resp.Body.Close() }()
		if err := json.NewDecoder(resp.Body).Decode(&counts); err != nil {
			return false, err
		}
		for _, ct := range counts {
			return ct.Requests >= 50, nil
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("the load pod never counted 50 answers through the ClusterIP: %v (counts %+v)", err, counts)
	}
	webNames := map[string]bool{web[0].Name: true, web[1].Name: true}
	for target, ct := range counts {
		if ct.Failed > 0 {
			t.Errorf("load pod: %d of its requests to %s failed", ct.Failed, target)
		}
		for pod := range ct.PerPod {
			if !webNames[pod] {
				t.Errorf("load pod got an answer from %q through the web Service, want one of %v", pod, webNames)
			}
		}
		t.Logf("load pod through %s: %d answers from %d pod(s)", target, ct.Requests, len(ct.PerPod))
	}
}

func serverDeployment(ns, name string, replicas int32, podLabels map[string]string, faultMode string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	for k, v := range podLabels {
		labels[k] = v
	}
	args := []string{"server", "--drain=0s"}
	if faultMode != "" {
		args = append(args, "--fault-mode="+faultMode, "--fault-share=0.5")
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](1),
					Containers: []corev1.Container{{
						Name: "server", Image: image.TestAppTag, ImagePullPolicy: corev1.PullNever, Args: args,
						Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
							FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
						Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
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

func mustCreate(ctx context.Context, t *testing.T, c *harness.Cluster, obj client.Object) {
	t.Helper()
	if err := c.Client.Create(ctx, obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// waitPods waits for want Ready pods labelled app=name and returns them.
func waitPods(ctx context.Context, t *testing.T, c *harness.Cluster, ns, name string, want int) []corev1.Pod {
	t.Helper()
	var ready []corev1.Pod
	var last string
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		var pods corev1.PodList
		if err := c.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": name}); err != nil {
			return false, err
		}
		ready = ready[:0]
		last = ""
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && podReady(&p) && p.Status.PodIP != "" {
				ready = append(ready, p)
			}
			last += fmt.Sprintf(" %s:%s", p.Name, p.Status.Phase)
			for _, cs := range p.Status.ContainerStatuses {
				if cs.State.Waiting != nil {
					last += "(" + cs.State.Waiting.Reason + ": " + cs.State.Waiting.Message + ")"
				}
			}
		}
		return len(ready) == want, nil
	})
	if err != nil {
		t.Fatalf("wait for %d ready %s pods: %v; pods:%s", want, name, err, last)
	}
	return ready
}

func hasTokenVolume(p *corev1.Pod) bool {
	for _, v := range p.Spec.Volumes {
		if strings.HasPrefix(v.Name, "kube-api-access-") && v.Projected != nil {
			return true
		}
	}
	return false
}

// get sends one GET and returns the answering pod (X-Pod) and status code.
func get(t *testing.T, url string) (string, int) {
	t.Helper()
	pod, code := tryGet(url)
	if code == 0 {
		t.Errorf("GET %s: %s", url, pod)
	}
	return pod, code
}

// tryGet is get without failing: on a transport error it returns the error
// text and code 0.
func tryGet(url string) (string, int) {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return err.Error(), 0
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("X-Pod"), resp.StatusCode
}

// TestRealNodeFailedStartLeavesNothing: a node whose start fails half-way
// (containerd runs, the network is up, an image tarball is bad) is removed
// by Stop like a running one, and StartE names the failure.
func TestRealNodeFailedStartLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs a real node (containerd, kubelet, kube-proxy from the assets); run without -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("a real node needs root")
	}
	bad := filepath.Join(t.TempDir(), "bad.tar")
	if err := os.WriteFile(bad, []byte("not a tarball"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := harness.StartE(ctx, harness.Options{RealNode: &harness.NodeOptions{Images: []string{bad}}})
	if c == nil {
		t.Fatalf("StartE returned no cluster to stop (err %v)", err)
	}
	if stopErr := c.Stop(); stopErr != nil {
		t.Errorf("stop a half-started node: %v", stopErr)
	}
	if err == nil || !strings.Contains(err.Error(), "bad.tar") {
		t.Errorf("StartE with a bad image tarball: %v, want an error naming it", err)
	}
	if err := harness.WithNodeLock(func() {
		if left := harness.Leftovers(); len(left) > 0 {
			t.Errorf("left behind after a failed start:\n  %s", strings.Join(left, "\n  "))
		}
	}); err != nil {
		t.Fatal(err)
	}
}
