package harness_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/meshshift/meshshift/test/harness"
)

func istioCRDs(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api").Output()
	if err != nil {
		t.Fatalf("find istio.io/api: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "kubernetes", "customresourcedefinitions.gen.yaml")
}

// TestAnalyzeReportsErrors shows the oracle can fail: Istio's analyzers find
// no Error in a namespace with a valid AuthorizationPolicy, and report one
// (IST0101, referenced resource not found) once a VirtualService names a
// Gateway that does not exist.
func TestAnalyzeReportsErrors(t *testing.T) {
	c := harness.Start(t, harness.Options{CRDPaths: []string{istioCRDs(t)}})
	if _, err := harness.IstioctlPath(); err != nil {
		t.Fatalf("istioctl: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, ns := range []string{"istio-system", "shop"} {
		if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	create := func(y string) {
		t.Helper()
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(y), &u.Object); err != nil {
			t.Fatal(err)
		}
		if err := c.Client.Create(ctx, u); err != nil {
			t.Fatalf("create %s: %v", u.GetName(), err)
		}
	}
	create(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: checkout, namespace: shop}
spec:
  selector: {matchLabels: {app: checkout}}
  rules:
  - to: [{operation: {methods: [GET]}}]
`)
	start := time.Now()
	msgs, hasError, err := c.Analyze(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("analyze took %v: %v", time.Since(start).Round(time.Millisecond), msgs)
	if hasError {
		t.Fatalf("valid objects: analyze reports an error: %v", msgs)
	}
	create(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: shop}
spec:
  hosts: [checkout.shop.svc.cluster.local]
  gateways: [no-such-gateway]
  http:
  - route:
    - destination: {host: checkout.shop.svc.cluster.local}
`)
	msgs, hasError, err = c.Analyze(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range msgs {
		found = found || (m.Level == "Error" && m.Code == "IST0101" && strings.Contains(m.Origin, "broken"))
	}
	t.Logf("with the broken VirtualService: %v", msgs)
	if !hasError || !found {
		t.Fatalf("VirtualService with a missing gateway: hasError %v, messages %v; want an IST0101 Error on it", hasError, msgs)
	}
}
