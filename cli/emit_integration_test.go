package cli

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/migrator/l7policy"
	"github.com/meshshift/meshshift/test/harness"
)

func moduleDir(t testing.TB, mod string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod).Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", mod, err)
	}
	return strings.TrimSpace(string(out))
}

// TestEmittedPoliciesAgainstIstio stores the l7-move dump in a real API
// server with Istio's and the Gateway API's CRDs, reads it back as plan
// --cluster does, and checks the emitted files: every copy and admit policy
// passes a server-side dry-run create, every narrowed original a dry-run
// update; applied for real (with the waypoint Gateway), Istio's own
// analyzers (istioctl analyze) report no Error; and each narrowed original
// restored with l7policy.Restore is stored with the original spec, byte for
// byte.
func TestEmittedPoliciesAgainstIstio(t *testing.T) {
	c := harness.Start(t, harness.Options{CRDPaths: []string{
		filepath.Join(moduleDir(t, "istio.io/api"), "kubernetes", "customresourcedefinitions.gen.yaml"),
		filepath.Join(moduleDir(t, "sigs.k8s.io/gateway-api"), "config", "crd", "standard"),
	}})
	if _, err := harness.IstioctlPath(); err != nil {
		t.Fatalf("istioctl: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	objs, err := LoadFiles([]string{filepath.Join("testdata", "dumps", "l7-move.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	for _, kinds := range [][]string{{"Namespace"}, {"Service", "Deployment", "AuthorizationPolicy", "RequestAuthentication"}} {
		for _, o := range objs {
			if !slices.Contains(kinds, o.U.GetKind()) {
				continue
			}
			u := o.U.DeepCopy()
			unstructured.RemoveNestedField(u.Object, "metadata", "resourceVersion")
			if err := c.Client.Create(ctx, u); err != nil {
				t.Fatalf("create %s: %v", o.Ref(), err)
			}
		}
	}
	// The L4 ALLOW names namespace ops as a caller: Istio's analyzers want it to exist.
	ops := &unstructured.Unstructured{Object: map[string]interface{}{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]interface{}{"name": "ops"}}}
	if err := c.Client.Create(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if msgs, hasError, err := c.Analyze(ctx); err != nil || hasError {
		t.Fatalf("istioctl analyze of the originals: error %v, messages %v; want no Error before anything moves", err, msgs)
	}
	co, err := LoadCluster(ctx, c.Config)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := Build(co.Objects)
	if err != nil {
		t.Fatal(err)
	}
	inv.GatewayAPICRDs = co.GatewayAPI
	ps, err := ProposePolicies(inv, &Options{Target: meshv1alpha1.ModeAmbientWaypoint, Ztunnel: ptr.To(true), Now: goldenNow}, "to-waypoint")
	if err != nil {
		t.Fatal(err)
	}
	files, err := EmitPolicies(ps)
	if err != nil {
		t.Fatal(err)
	}
	originals := map[string]string{} // "<Kind>/<ns>/<name>" -> spec JSON as stored
	var toApply []*unstructured.Unstructured
	dry := client.DryRunAll
	for _, f := range files {
		if !strings.HasSuffix(f.Path, ".yaml") {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(f.Data, &u.Object); err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		if !l7policy.IsNarrowed(u) {
			if err := c.Client.Create(ctx, u.DeepCopy(), dry); err != nil {
				t.Errorf("dry-run create %s: %v", f.Path, err)
			}
			toApply = append(toApply, u)
			continue
		}
		cur := &unstructured.Unstructured{}
		cur.SetGroupVersionKind(u.GroupVersionKind())
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(u), cur); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(cur.Object["spec"])
		originals[u.GetKind()+"/"+u.GetNamespace()+"/"+u.GetName()] = string(b)
		u.SetResourceVersion(cur.GetResourceVersion())
		if err := c.Client.Update(ctx, u.DeepCopy(), dry); err != nil {
			t.Errorf("dry-run update %s: %v", f.Path, err)
		}
		toApply = append(toApply, u)
	}
	// The dry-run checks the CRDs' schema and rules: a copy that kept its
	// selector beside targetRefs is refused.
	bad := toApply[0].DeepCopy()
	if err := unstructured.SetNestedStringMap(bad.Object, map[string]string{"app": "checkout"}, "spec", "selector", "matchLabels"); err != nil {
		t.Fatal(err)
	}
	if _, ok := bad.Object["spec"].(map[string]interface{})["targetRefs"]; !ok {
		t.Fatalf("first emitted object %s is not a targetRefs copy", bad.GetName())
	}
	if err := c.Client.Create(ctx, bad, dry); err == nil {
		t.Errorf("dry-run create of a copy with both selector and targetRefs: no error")
	} else {
		t.Logf("refused as it must be: %v", err)
	}
	if len(originals) != 3 || len(toApply) != 8 {
		t.Fatalf("%d narrowed originals and %d objects in %d files; want 3 and 8", len(originals), len(toApply), len(files))
	}
	if t.Failed() {
		return
	}

	// Applied for real, next to the waypoint the copies are attached through.
	gw := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: shop
  labels: {istio.io/waypoint-for: service}
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - {name: mesh, port: 15008, protocol: HBONE}
`), &gw.Object); err != nil {
		t.Fatal(err)
	}
	if err := c.Client.Create(ctx, gw); err != nil {
		t.Fatalf("create waypoint: %v", err)
	}
	for _, u := range toApply {
		var err error
		if l7policy.IsNarrowed(u) {
			err = c.Client.Update(ctx, u)
		} else {
			err = c.Client.Create(ctx, u)
		}
		if err != nil {
			t.Fatalf("apply %s/%s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	msgs, hasError, err := c.Analyze(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("istioctl analyze: %v", msgs)
	if hasError {
		t.Errorf("istioctl analyze reports an error with the emitted policies applied: %v", msgs)
	}

	// Rollback: each narrowed original, restored, is stored with its
	// original spec, byte for byte.
	for ref, want := range originals {
		parts := strings.Split(ref, "/")
		cur := &unstructured.Unstructured{}
		cur.SetAPIVersion("security.istio.io/v1")
		cur.SetKind(parts[0])
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: parts[1], Name: parts[2]}, cur); err != nil {
			t.Fatal(err)
		}
		if !l7policy.IsNarrowed(cur) {
			t.Fatalf("%s: stored without %s", ref, l7policy.AnnotationOriginal)
		}
		r, err := l7policy.Restore(cur)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Client.Update(ctx, r); err != nil {
			t.Fatalf("restore %s: %v", ref, err)
		}
		back := &unstructured.Unstructured{}
		back.SetGroupVersionKind(cur.GroupVersionKind())
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(cur), back); err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(back.Object["spec"])
		if string(got) != want || l7policy.IsNarrowed(back) {
			t.Errorf("%s restored:\n got %s\nwant %s", ref, got, want)
		}
	}
}
