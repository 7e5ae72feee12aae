package webhook

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// TestCertManagerRenewal walks the fake clock through a serving certificate
// renewal, a CA renewal (old CA kept in the bundle, serving certificate moved
// after the propagation delay) and the old CA's expiry.
func TestCertManagerRenewal(t *testing.T) {
	ctx := context.Background()
	mut := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "m"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "a.meshshift.io", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1")}}}}
	val := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "v"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "b.meshshift.io"}, {Name: "c.meshshift.io"}}}
	cl := fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(mut, val).Build()
	clk := fixedClock()
	m := &CertManager{Client: cl, Reader: cl, Namespace: "meshshift-system", SecretName: "cert",
		DNSNames: []string{"meshshift-webhook.meshshift-system.svc"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		MutatingConfigName: "m", ValidatingConfigName: "v",
		CAValidity: 300 * time.Hour, CertValidity: 30 * time.Hour, CAPropagationDelay: time.Hour, Clock: clk, Log: logr.Discard()}

	if _, err := m.GetCertificate(nil); err == nil {
		t.Fatal("GetCertificate before Ensure returned a certificate")
	}
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	leaf1 := m.Current()
	if leaf1 == nil || leaf1.DNSNames[0] != "meshshift-webhook.meshshift-system.svc" || !leaf1.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Fatalf("serving certificate %+v lacks the names", leaf1)
	}
	bundle := func() []byte {
		var s corev1.Secret
		if err := cl.Get(ctx, client.ObjectKey{Namespace: "meshshift-system", Name: "cert"}, &s); err != nil {
			t.Fatal(err)
		}
		return s.Data[SecretKeyCABundle]
	}
	checkBundles := func() {
		t.Helper()
		b := bundle()
		var gm admissionregistrationv1.MutatingWebhookConfiguration
		var gv admissionregistrationv1.ValidatingWebhookConfiguration
		_ = cl.Get(ctx, client.ObjectKey{Name: "m"}, &gm)
		_ = cl.Get(ctx, client.ObjectKey{Name: "v"}, &gv)
		if !bytes.Equal(gm.Webhooks[0].ClientConfig.CABundle, b) || !bytes.Equal(gv.Webhooks[0].ClientConfig.CABundle, b) || !bytes.Equal(gv.Webhooks[1].ClientConfig.CABundle, b) {
			t.Errorf("caBundle of the configurations is not the secret's bundle")
		}
	}
	checkBundles()
	cas := func() int { c, _ := parseCerts(bundle()); return len(c) }

	// Nothing is due after 10h: same certificate.
	clk.Step(10 * time.Hour)
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if m.Current().SerialNumber.Cmp(leaf1.SerialNumber) != 0 {
		t.Fatal("renewed a certificate with two thirds of its life left")
	}
	// After 21h less than a third of its 30h is left: renewed, same CA.
	clk.Step(11 * time.Hour)
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	leaf2 := m.Current()
	if leaf2.SerialNumber.Cmp(leaf1.SerialNumber) == 0 || !bytes.Equal(leaf2.AuthorityKeyId, leaf1.AuthorityKeyId) {
		t.Fatal("serving certificate not renewed from the same CA")
	}
	// Checked every 5h: past two thirds of the CA's 300h a new CA joins the
	// bundle; the serving certificate stays on the old CA (renewals due in
	// the meantime wait) until the propagation delay has passed.
	for i := 0; cas() < 2; i++ {
		if i > 60 {
			t.Fatal("CA never renewed")
		}
		clk.Step(5 * time.Hour)
		if err := m.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
	}
	checkBundles()
	if !bytes.Equal(m.Current().AuthorityKeyId, leaf1.AuthorityKeyId) {
		t.Fatal("serving certificate moved to the new CA before the API server could trust it")
	}
	clk.Step(2 * time.Hour)
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(m.Current().AuthorityKeyId, leaf1.AuthorityKeyId) {
		t.Fatal("serving certificate did not move to the new CA after the propagation delay")
	}
	// Once the old CA expires it leaves the bundle.
	clk.Step(120 * time.Hour)
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if cas() != 1 {
		t.Fatalf("bundle has %d CAs after the old CA expired, want 1", cas())
	}
	checkBundles()
}
