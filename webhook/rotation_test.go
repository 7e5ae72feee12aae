package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/webhook"
	"github.com/meshshift/meshshift/webhook/webhooktest"
)

// TestCertificateRotationUnderLoad replaces the serving certificate three
// times and rotates the CA while pods are created from four workers: every
// create succeeds and every pod carries a decision. Since failurePolicy is
// Ignore, a failed webhook call would show as an undecided pod, not an error.
func TestCertificateRotationUnderLoad(t *testing.T) {
	c := harness.Start(t, harness.Options{})
	wh := webhooktest.Start(t, c, webhooktest.Options{Webhook: webhook.Options{
		CertCheckInterval: 200 * time.Millisecond, CAPropagationDelay: 2 * time.Second,
	}})
	ctx := context.Background()
	createNamespace(t, c.Client, "rot", nil, map[string]string{v1alpha1.AnnotationMode: "ambient"})
	certs := wh.Webhooks.Certs
	first := certs.Current()

	var created, undecided, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := newPod(fmt.Sprintf("w%d-%d", w, i), "rot", nil, nil)
				if err := c.Client.Create(ctx, p); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				created.Add(1)
				if _, ok := p.Annotations[v1alpha1.AnnotationDecision]; !ok {
					undecided.Add(1)
				}
			}
		}(w)
	}
	serials := map[string]bool{first.SerialNumber.String(): true}
	for i := 0; i < 3; i++ {
		time.Sleep(700 * time.Millisecond)
		if err := certs.Rotate(ctx); err != nil {
			t.Errorf("rotate: %v", err)
		}
		serials[certs.Current().SerialNumber.String()] = true
	}
	caBefore := first.AuthorityKeyId
	if err := certs.RotateCA(ctx); err != nil {
		t.Errorf("rotate CA: %v", err)
	}
	waitFor(t, "the serving certificate to move to the new CA", func() bool {
		return !bytes.Equal(certs.Current().AuthorityKeyId, caBefore)
	})
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	t.Logf("%d pods created during %d serving certificates and one CA rotation", created.Load(), len(serials)+1)
	if failed.Load() > 0 {
		t.Errorf("%d creates failed; first: %v", failed.Load(), firstErr.Load())
	}
	if undecided.Load() > 0 {
		t.Errorf("%d of %d pods were admitted without a decision: a webhook call failed during rotation", undecided.Load(), created.Load())
	}
	if len(serials) != 4 {
		t.Errorf("saw %d distinct serving certificates, want 4", len(serials))
	}
	if created.Load() < 50 {
		t.Errorf("only %d pods created: too little load to show anything", created.Load())
	}

	// The Secret and both configurations hold the new CA (and still the old one).
	var sec corev1.Secret
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: wh.Options.Namespace, Name: wh.Options.SecretName}, &sec); err != nil {
		t.Fatal(err)
	}
	bundle := sec.Data[webhook.SecretKeyCABundle]
	cas := parsePEM(t, bundle)
	if len(cas) != 2 || !bytes.Equal(cas[0].SubjectKeyId, certs.Current().AuthorityKeyId) {
		t.Errorf("secret bundle has %d CAs, want the new CA first and the old one", len(cas))
	}
	var mut admissionregistrationv1.MutatingWebhookConfiguration
	if err := c.Client.Get(ctx, client.ObjectKey{Name: wh.Options.MutatingConfigName}, &mut); err != nil {
		t.Fatal(err)
	}
	var val admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Client.Get(ctx, client.ObjectKey{Name: wh.Options.ValidatingConfigName}, &val); err != nil {
		t.Fatal(err)
	}
	for _, cc := range append([]admissionregistrationv1.WebhookClientConfig{mut.Webhooks[0].ClientConfig}, valConfigs(&val)...) {
		if !bytes.Equal(cc.CABundle, bundle) {
			t.Errorf("a webhook's caBundle is not the secret's bundle")
		}
	}
}

func valConfigs(v *admissionregistrationv1.ValidatingWebhookConfiguration) []admissionregistrationv1.WebhookClientConfig {
	out := make([]admissionregistrationv1.WebhookClientConfig, len(v.Webhooks))
	for i := range v.Webhooks {
		out[i] = v.Webhooks[i].ClientConfig
	}
	return out
}

func parsePEM(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

// TestCertManagerModeReloadsFiles runs the webhook with cert mode
// cert-manager: it serves tls.crt/tls.key from CertDir (as the mounted
// cert-manager Secret) and picks up a renewed pair without a restart.
func TestCertManagerModeReloadsFiles(t *testing.T) {
	c := harness.Start(t, harness.Options{})
	dir := t.TempDir()
	ca, caKey, err := webhook.NewCA(time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	writePair := func() *x509.Certificate {
		t.Helper()
		certPEM, keyPEM, err := webhook.IssueServingCert(ca, caKey, time.Now(), time.Hour, nil, []net.IP{net.ParseIP("127.0.0.1")})
		if err != nil {
			t.Fatal(err)
		}
		// Write the key first and the certificate last, as the kubelet swaps a
		// Secret volume's files in one step.
		for name, b := range map[string][]byte{"tls.key": keyPEM, "tls.crt": certPEM} {
			if err := os.WriteFile(filepath.Join(dir, name+".tmp"), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range []string{"tls.key", "tls.crt"} {
			if err := os.Rename(filepath.Join(dir, name+".tmp"), filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
		return parsePEM(t, certPEM)[0]
	}
	first := writePair()
	wh := webhooktest.Start(t, c, webhooktest.Options{CABundle: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		Webhook: webhook.Options{CertMode: webhook.CertModeCertManager, CertDir: dir}})
	if wh.Webhooks.Certs != nil {
		t.Fatal("cert mode cert-manager still runs the self-managed certificate manager")
	}
	served := func() *x509.Certificate {
		conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(wh.Options.Port)), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return nil
		}
		defer func() { _ = conn.Close() }()
		return conn.ConnectionState().PeerCertificates[0]
	}
	if s := served(); s == nil || s.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatal("the server does not serve the certificate from CertDir")
	}
	second := writePair()
	waitFor(t, "the renewed certificate to be served", func() bool {
		s := served()
		return s != nil && s.SerialNumber.Cmp(second.SerialNumber) == 0
	})
	if err := webhooktest.WaitDecided(context.Background(), c.Client, "default"); err != nil {
		t.Fatalf("pods not decided after the reload: %v", err)
	}
}
