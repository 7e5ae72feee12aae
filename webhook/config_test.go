package webhook_test

import (
	"sort"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshshift/meshshift/webhook"
	"github.com/meshshift/meshshift/webhook/webhooktest"
)

// istioInjectorName is the name of Istio's MutatingWebhookConfiguration (its
// istio-discovery chart, revision default).
const istioInjectorName = "istio-sidecar-injector"

// TestShippedConfigurations pins what config/webhook/manifests.yaml promises.
func TestShippedConfigurations(t *testing.T) {
	mut, val, err := webhooktest.LoadConfigurations()
	if err != nil {
		t.Fatal(err)
	}
	if mut.Name != webhook.DefaultMutatingConfigName || val.Name != webhook.DefaultValidatingConfigName {
		t.Errorf("names %q, %q; want the Default*ConfigName constants %q, %q", mut.Name, val.Name, webhook.DefaultMutatingConfigName, webhook.DefaultValidatingConfigName)
	}
	// The API server calls mutating webhooks in the order of their
	// configuration names; Istio's injector must see meshshift's labels.
	names := []string{istioInjectorName, mut.Name}
	sort.Strings(names)
	if names[0] != mut.Name {
		t.Errorf("mutating configuration %q sorts after %q; it must sort first", mut.Name, istioInjectorName)
	}
	wantSkipped := map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true, "istio-system": true, webhook.DefaultNamespace: true}
	type common struct {
		name     string
		fp       *admissionregistrationv1.FailurePolicyType
		se       *admissionregistrationv1.SideEffectClass
		timeout  *int32
		versions []string
		cc       admissionregistrationv1.WebhookClientConfig
		nsSel    *metav1.LabelSelector
		rules    []admissionregistrationv1.RuleWithOperations
	}
	var all []common
	for _, w := range mut.Webhooks {
		all = append(all, common{w.Name, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.ClientConfig, w.NamespaceSelector, w.Rules})
	}
	for _, w := range val.Webhooks {
		all = append(all, common{w.Name, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.ClientConfig, w.NamespaceSelector, w.Rules})
	}
	paths := map[string]bool{}
	for _, w := range all {
		if w.fp == nil || *w.fp != admissionregistrationv1.Ignore {
			t.Errorf("%s: failurePolicy must be Ignore", w.name)
		}
		if w.se == nil || *w.se != admissionregistrationv1.SideEffectClassNone {
			t.Errorf("%s: sideEffects must be None", w.name)
		}
		if w.timeout == nil || *w.timeout < 1 || time.Duration(*w.timeout)*time.Second > 3*time.Second {
			t.Errorf("%s: timeoutSeconds must be 1-3", w.name)
		}
		if len(w.versions) != 1 || w.versions[0] != "v1" {
			t.Errorf("%s: admissionReviewVersions must be [v1]", w.name)
		}
		if w.cc.Service == nil || w.cc.Service.Path == nil || w.cc.Service.Name != webhook.DefaultServiceName || w.cc.Service.Namespace != webhook.DefaultNamespace {
			t.Errorf("%s: clientConfig must name service %s/%s with a path", w.name, webhook.DefaultNamespace, webhook.DefaultServiceName)
		} else {
			paths[*w.cc.Service.Path] = true
		}
		namespaced := false
		for _, r := range w.rules {
			namespaced = namespaced || (r.Scope != nil && *r.Scope == admissionregistrationv1.NamespacedScope) || r.Resources[0] == "namespaces"
		}
		if !namespaced {
			continue
		}
		skipped := map[string]bool{}
		if w.nsSel != nil {
			for _, e := range w.nsSel.MatchExpressions {
				if e.Key == "kubernetes.io/metadata.name" && e.Operator == metav1.LabelSelectorOpNotIn {
					for _, v := range e.Values {
						skipped[v] = true
					}
				}
			}
		}
		for ns := range wantSkipped {
			if !skipped[ns] {
				t.Errorf("%s: namespaceSelector must skip %s", w.name, ns)
			}
		}
	}
	for _, p := range []string{webhook.PathMutatePod, webhook.PathValidatePod, webhook.PathValidateNamespace, webhook.PathValidateDataplanePolicy, webhook.PathValidateMeshMigration} {
		if !paths[p] {
			t.Errorf("no webhook serves path %s", p)
		}
	}
}
