package realnode_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/test/realnode"
)

// TestInstall installs meshshift from the shipped default overlay (image
// from make image) on a real node: the manager pods serve the webhooks
// through their Service, the agent pod runs with the shipped securityContext
// and serves its metrics on its pod IP.
func TestInstall(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := realnode.Render(root, t.TempDir(), realnode.Options{ManagerArgs: []string{"--capabilities=ztunnel"}})
	if err != nil {
		t.Fatal(err)
	}
	c := harness.Start(t, harness.Options{RealNode: &harness.NodeOptions{Meshshift: true}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	if err := realnode.Apply(ctx, c.Client, objs); err != nil {
		t.Fatal(err)
	}
	if err := realnode.WaitReady(ctx, c); err != nil {
		t.Fatal(err)
	}
	t.Logf("meshshift installed and answering in %v", time.Since(start).Round(time.Millisecond))
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods, client.InNamespace(realnode.Namespace), client.MatchingLabels{"app.kubernetes.io/component": "agent"}); err != nil || len(pods.Items) != 1 {
		t.Fatalf("agent pods: %d (%v), want 1", len(pods.Items), err)
	}
	agent := pods.Items[0]
	sc := agent.Spec.Containers[0].SecurityContext
	if sc == nil || sc.Privileged == nil || *sc.Privileged {
		t.Errorf("agent container is privileged or unset: %+v", sc)
	}
	resp, err := http.Get("http://" + agent.Status.PodIP + ":9990/metrics")
	if err != nil {
		t.Fatalf("agent metrics: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(b), "meshshift_agent_cgroups_tracked") {
		t.Errorf("agent metrics lack meshshift_agent_cgroups_tracked:\n%.2000s", b)
	}
}
