package config_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/webhook"
)

// applyFile creates every object of a multi-document manifest.
func applyFile(t *testing.T, c client.Client, path string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := c.Create(context.Background(), u); err != nil {
			t.Fatalf("create %s %s from %s: %v", u.GetKind(), u.GetName(), path, err)
		}
		out = append(out, u)
	}
	return out
}

func webhookConfigs(name string) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	wh := func() (admissionregistrationv1.WebhookClientConfig, *admissionregistrationv1.SideEffectClass) {
		return admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:9/" + name)}, ptr.To(admissionregistrationv1.SideEffectClassNone)
	}
	cc, se := wh()
	m := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "m.example.com", ClientConfig: cc, SideEffects: se,
			AdmissionReviewVersions: []string{"v1"}, FailurePolicy: ptr.To(admissionregistrationv1.Ignore)}}}
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "v.example.com", ClientConfig: cc, SideEffects: se,
			AdmissionReviewVersions: []string{"v1"}, FailurePolicy: ptr.To(admissionregistrationv1.Ignore)}}}
	return m, v
}

// TestManagerMayUpdateOnlyItsOwnWebhookConfigurations installs the shipped
// RBAC (config/rbac, which the Helm chart uses as is) in a real API server
// and acts as the manager's ServiceAccount (impersonation): it can read and
// update the caBundle of meshshift's own webhook configurations — the way
// the manager's certificate code does, get then update — and can neither
// read nor change Istio's injector and validator.
func TestManagerMayUpdateOnlyItsOwnWebhookConfigurations(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	c := harness.Start(t, harness.Options{})
	ctx := context.Background()
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: webhook.DefaultNamespace}}); err != nil {
		t.Fatal(err)
	}
	roles := applyFile(t, c.Client, filepath.Join(root, "config", "rbac", "role.yaml"))
	applyFile(t, c.Client, filepath.Join(root, "config", "rbac", "role_binding.yaml"))

	// The names in the role are the manager's defaults.
	var names []string
	for _, u := range roles {
		if u.GetKind() != "ClusterRole" {
			continue
		}
		var cr rbacv1.ClusterRole
		b, _ := u.MarshalJSON()
		if err := yaml.Unmarshal(b, &cr); err != nil {
			t.Fatal(err)
		}
		for _, r := range cr.Rules {
			if slices.Contains(r.APIGroups, "admissionregistration.k8s.io") {
				if len(r.ResourceNames) == 0 {
					t.Errorf("rule %v grants webhook configurations without resourceNames", r)
				}
				names = append(names, r.ResourceNames...)
			}
		}
	}
	for _, n := range []string{webhook.DefaultMutatingConfigName, webhook.DefaultValidatingConfigName} {
		if !slices.Contains(names, n) {
			t.Errorf("the manager's ClusterRole does not name its own webhook configuration %s (names %v)", n, names)
		}
	}

	for _, name := range []string{webhook.DefaultMutatingConfigName, "istio-sidecar-injector"} {
		m, _ := webhookConfigs(name)
		if err := c.Client.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{webhook.DefaultValidatingConfigName, "istio-validator-istio-system"} {
		_, v := webhookConfigs(name)
		if err := c.Client.Create(ctx, v); err != nil {
			t.Fatal(err)
		}
	}

	cfg := rest.CopyConfig(c.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + webhook.DefaultNamespace + ":meshshift-manager",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + webhook.DefaultNamespace, "system:authenticated"},
	}
	sa, err := client.New(cfg, client.Options{Scheme: c.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	bundle := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")

	// Its own: get, change the caBundle, update.
	var own admissionregistrationv1.MutatingWebhookConfiguration
	if err := sa.Get(ctx, client.ObjectKey{Name: webhook.DefaultMutatingConfigName}, &own); err != nil {
		t.Fatalf("the manager cannot read its own mutating configuration: %v", err)
	}
	own.Webhooks[0].ClientConfig.CABundle = bundle
	if err := sa.Update(ctx, &own); err != nil {
		t.Fatalf("the manager cannot update the caBundle of its own mutating configuration: %v", err)
	}
	var ownV admissionregistrationv1.ValidatingWebhookConfiguration
	if err := sa.Get(ctx, client.ObjectKey{Name: webhook.DefaultValidatingConfigName}, &ownV); err != nil {
		t.Fatalf("the manager cannot read its own validating configuration: %v", err)
	}
	ownV.Webhooks[0].ClientConfig.CABundle = bundle
	if err := sa.Update(ctx, &ownV); err != nil {
		t.Fatalf("the manager cannot update the caBundle of its own validating configuration: %v", err)
	}
	var check admissionregistrationv1.MutatingWebhookConfiguration
	if err := c.Client.Get(ctx, client.ObjectKey{Name: webhook.DefaultMutatingConfigName}, &check); err != nil || string(check.Webhooks[0].ClientConfig.CABundle) != string(bundle) {
		t.Errorf("own caBundle not stored: %v", err)
	}

	// Istio's: no read, no update, no patch.
	var istio admissionregistrationv1.MutatingWebhookConfiguration
	if err := sa.Get(ctx, client.ObjectKey{Name: "istio-sidecar-injector"}, &istio); !apierrors.IsForbidden(err) {
		t.Errorf("reading istio-sidecar-injector: %v, want Forbidden", err)
	}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: "istio-sidecar-injector"}, &istio); err != nil {
		t.Fatal(err)
	}
	istio.Webhooks[0].ClientConfig.CABundle = bundle
	if err := sa.Update(ctx, &istio); !apierrors.IsForbidden(err) {
		t.Errorf("updating istio-sidecar-injector: %v, want Forbidden", err)
	}
	patch := client.RawPatch(types.JSONPatchType, []byte(`[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Fail"}]`))
	if err := sa.Patch(ctx, &istio, patch); !apierrors.IsForbidden(err) {
		t.Errorf("patching istio-sidecar-injector: %v, want Forbidden", err)
	}
	var istioV admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Client.Get(ctx, client.ObjectKey{Name: "istio-validator-istio-system"}, &istioV); err != nil {
		t.Fatal(err)
	}
	istioV.Webhooks[0].ClientConfig.CABundle = bundle
	if err := sa.Update(ctx, &istioV); !apierrors.IsForbidden(err) {
		t.Errorf("updating istio-validator-istio-system: %v, want Forbidden", err)
	}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: "istio-sidecar-injector"}, &check); err != nil || len(check.Webhooks[0].ClientConfig.CABundle) != 0 ||
		*check.Webhooks[0].FailurePolicy != admissionregistrationv1.Ignore {
		t.Errorf("istio-sidecar-injector changed: %v %+v", err, check.Webhooks[0])
	}
}
