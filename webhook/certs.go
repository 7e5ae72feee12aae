package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Keys of the serving-certificate Secret.
const (
	SecretKeyCABundle = "ca.crt" // PEM: the current CA first, then older CAs still trusted
	SecretKeyCAKey    = "ca.key" // PEM: the current CA's key
	SecretKeyCert     = "tls.crt"
	SecretKeyKey      = "tls.key"
)

// Defaults of CertManager.
const (
	DefaultCAValidity         = 5 * 365 * 24 * time.Hour
	DefaultCertValidity       = 90 * 24 * time.Hour
	DefaultCertCheckInterval  = time.Minute
	DefaultCAPropagationDelay = 2 * time.Minute
	certBackdate              = time.Minute
)

// CertManager keeps the webhook's serving certificate: a CA and a serving
// certificate in a Secret, the CA bundle in both webhook configurations, each
// certificate renewed when a third of its lifetime is left, and the serving
// certificate reloaded without a restart whenever the Secret changes (also
// when another replica renewed it). A renewed CA is added to the bundle next
// to the old one; the serving certificate moves to it only CAPropagationDelay
// later, so the API server trusts it before it is served.
type CertManager struct {
	// Client writes the Secret and the webhook configurations; Reader reads
	// them from the API server (not a cache: Secrets are not watched).
	Client client.Client
	Reader client.Reader
	// Namespace and SecretName locate the Secret.
	Namespace, SecretName string
	// DNSNames and IPAddresses are the serving certificate's names.
	DNSNames    []string
	IPAddresses []net.IP
	// MutatingConfigName and ValidatingConfigName are the webhook
	// configurations whose caBundle is kept; empty skips one.
	MutatingConfigName, ValidatingConfigName string
	// CAValidity, CertValidity, CheckInterval and CAPropagationDelay default
	// to the Default* constants.
	CAValidity, CertValidity, CheckInterval, CAPropagationDelay time.Duration
	// Clock decides renewals; nil means the real clock.
	Clock clock.Clock
	Log   logr.Logger

	mu      sync.Mutex // one Ensure at a time
	force   bool       // issue a new serving certificate on the next Ensure
	forceCA bool       // and a new CA
	current atomic.Pointer[tls.Certificate]
	loaded  []byte // tls.crt of current
}

// GetCertificate serves the current certificate (tls.Config.GetCertificate).
func (m *CertManager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := m.current.Load()
	if c == nil {
		return nil, errors.New("serving certificate not loaded yet")
	}
	return c, nil
}

// Current is the certificate being served, nil before the first Ensure.
func (m *CertManager) Current() *x509.Certificate {
	if c := m.current.Load(); c != nil {
		return c.Leaf
	}
	return nil
}

func (m *CertManager) now() time.Time {
	if m.Clock == nil {
		return time.Now()
	}
	return m.Clock.Now()
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Start checks the certificates every CheckInterval until ctx ends.
func (m *CertManager) Start(ctx context.Context) error {
	return runEvery(ctx, orDefault(m.CheckInterval, DefaultCertCheckInterval), m.Log, "serving certificate check failed", m.Ensure)
}

// NeedLeaderElection is false: every replica serves and must load the Secret.
func (m *CertManager) NeedLeaderElection() bool { return false }

// Rotate issues a new serving certificate now, whatever its age.
func (m *CertManager) Rotate(ctx context.Context) error {
	m.mu.Lock()
	m.force = true
	m.mu.Unlock()
	return m.Ensure(ctx)
}

// RotateCA starts a CA rotation now: a new CA joins the bundle, and the
// serving certificate moves to it CAPropagationDelay later (on a later check).
func (m *CertManager) RotateCA(ctx context.Context) error {
	m.mu.Lock()
	m.forceCA = true
	m.mu.Unlock()
	return m.Ensure(ctx)
}

// Ensure creates, renews and loads the certificates and patches the CA bundle
// into the webhook configurations. A webhook configuration that does not exist
// yet is not an error: it is patched on a later check.
func (m *CertManager) Ensure(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := client.ObjectKey{Namespace: m.Namespace, Name: m.SecretName}
	var sec corev1.Secret
	err := m.Reader.Get(ctx, key, &sec)
	switch {
	case apierrors.IsNotFound(err):
		sec = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.SecretName,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "meshshift"}}, Type: corev1.SecretTypeTLS}
	case err != nil:
		return fmt.Errorf("get secret %s: %w", key, err)
	}
	data, changed, err := m.renew(sec.Data)
	if err != nil {
		return err
	}
	if changed {
		sec.Data = data
		if sec.ResourceVersion == "" {
			err = m.Client.Create(ctx, &sec)
		} else {
			err = m.Client.Update(ctx, &sec)
		}
		if err != nil {
			return fmt.Errorf("write secret %s: %w", key, err)
		}
		m.force, m.forceCA = false, false
		m.Log.Info("serving certificate written", "secret", key.String())
	}
	if err := m.load(data); err != nil {
		return err
	}
	return m.patchBundles(ctx, data[SecretKeyCABundle])
}

// renew returns the Secret data with whatever is due renewed.
func (m *CertManager) renew(in map[string][]byte) (map[string][]byte, bool, error) {
	now := m.now()
	caValidity := orDefault(m.CAValidity, DefaultCAValidity)
	bundle, _ := parseCerts(in[SecretKeyCABundle])
	caKey, _ := parseKey(in[SecretKeyCAKey])
	changed := false
	if m.forceCA || len(bundle) == 0 || caKey == nil || !publicKeyMatches(bundle[0], caKey) || dueForRenewal(bundle[0], now) {
		ca, key, err := NewCA(now, caValidity)
		if err != nil {
			return nil, false, err
		}
		bundle = append([]*x509.Certificate{ca}, bundle...)
		caKey, changed = key, true
	}
	// Keep only CAs still valid; the first is the current one.
	kept := bundle[:1]
	for _, c := range bundle[1:] {
		if now.Before(c.NotAfter) {
			kept = append(kept, c)
		}
	}
	changed = changed || len(kept) != len(bundle)
	bundle = kept
	ca := bundle[0]

	leafs, _ := parseCerts(in[SecretKeyCert])
	leafKey, _ := parseKey(in[SecretKeyKey])
	// must: the served certificate is unusable; due: it should be replaced.
	must := len(leafs) == 0 || leafKey == nil || !publicKeyMatches(leafs[0], leafKey) ||
		!now.Before(leafs[0].NotAfter) || !m.namesMatch(leafs[0])
	due := m.force || (!must && dueForRenewal(leafs[0], now))
	// The API server may not trust a new CA yet: until CAPropagationDelay
	// after it joined the bundle, a usable certificate signed by an older CA
	// of the bundle is kept.
	propagated := !now.Before(ca.NotBefore.Add(certBackdate + orDefault(m.CAPropagationDelay, DefaultCAPropagationDelay)))
	if !must && leafs[0].CheckSignatureFrom(ca) != nil {
		signedByBundle := false
		for _, c := range bundle[1:] {
			signedByBundle = signedByBundle || leafs[0].CheckSignatureFrom(c) == nil
		}
		must = !signedByBundle
		due = due || propagated
	}
	reissue := must || (due && (propagated || leafs[0].CheckSignatureFrom(ca) == nil))
	out := map[string][]byte{SecretKeyCABundle: encodeCerts(bundle), SecretKeyCAKey: in[SecretKeyCAKey],
		SecretKeyCert: in[SecretKeyCert], SecretKeyKey: in[SecretKeyKey]}
	if changed {
		b, err := encodeKey(caKey)
		if err != nil {
			return nil, false, err
		}
		out[SecretKeyCAKey] = b
	}
	if reissue {
		certPEM, keyPEM, err := m.issue(ca, caKey, now)
		if err != nil {
			return nil, false, err
		}
		out[SecretKeyCert], out[SecretKeyKey], changed = certPEM, keyPEM, true
	}
	return out, changed, nil
}

func (m *CertManager) namesMatch(c *x509.Certificate) bool {
	if !slices.Equal(c.DNSNames, m.DNSNames) || len(c.IPAddresses) != len(m.IPAddresses) {
		return false
	}
	for i, ip := range c.IPAddresses {
		if !ip.Equal(m.IPAddresses[i]) {
			return false
		}
	}
	return true
}

// dueForRenewal is true once less than a third of c's lifetime is left.
func dueForRenewal(c *x509.Certificate, now time.Time) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return !now.Before(c.NotAfter.Add(-life / 3))
}

func (m *CertManager) load(data map[string][]byte) error {
	if bytes.Equal(m.loaded, data[SecretKeyCert]) && m.current.Load() != nil {
		return nil
	}
	c, err := tls.X509KeyPair(data[SecretKeyCert], data[SecretKeyKey])
	if err != nil {
		return fmt.Errorf("load serving certificate from secret %s/%s: %w", m.Namespace, m.SecretName, err)
	}
	m.current.Store(&c)
	m.loaded = data[SecretKeyCert]
	m.Log.Info("serving certificate loaded", "notAfter", c.Leaf.NotAfter.UTC().Format(time.RFC3339), "serial", c.Leaf.SerialNumber.String())
	return nil
}

func (m *CertManager) patchBundles(ctx context.Context, bundle []byte) error {
	var errs []error
	if m.MutatingConfigName != "" {
		var c admissionregistrationv1.MutatingWebhookConfiguration
		errs = append(errs, m.patchOne(ctx, m.MutatingConfigName, &c, bundle, func() []*admissionregistrationv1.WebhookClientConfig {
			out := make([]*admissionregistrationv1.WebhookClientConfig, len(c.Webhooks))
			for i := range c.Webhooks {
				out[i] = &c.Webhooks[i].ClientConfig
			}
			return out
		}))
	}
	if m.ValidatingConfigName != "" {
		var c admissionregistrationv1.ValidatingWebhookConfiguration
		errs = append(errs, m.patchOne(ctx, m.ValidatingConfigName, &c, bundle, func() []*admissionregistrationv1.WebhookClientConfig {
			out := make([]*admissionregistrationv1.WebhookClientConfig, len(c.Webhooks))
			for i := range c.Webhooks {
				out[i] = &c.Webhooks[i].ClientConfig
			}
			return out
		}))
	}
	return errors.Join(errs...)
}

func (m *CertManager) patchOne(ctx context.Context, name string, obj client.Object, bundle []byte, configs func() []*admissionregistrationv1.WebhookClientConfig) error {
	if err := m.Reader.Get(ctx, client.ObjectKey{Name: name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			m.Log.V(1).Info("webhook configuration not found; caBundle not patched yet", "name", name)
			return nil
		}
		return fmt.Errorf("get webhook configuration %s: %w", name, err)
	}
	changed := false
	for _, cc := range configs() {
		if !bytes.Equal(cc.CABundle, bundle) {
			cc.CABundle = bundle
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := m.Client.Update(ctx, obj); err != nil {
		return fmt.Errorf("patch caBundle of webhook configuration %s: %w", name, err)
	}
	m.Log.Info("caBundle patched", "name", name)
	return nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return s, nil
}

// NewCA creates a self-signed CA valid from now (backdated a minute) for validity.
func NewCA(now time.Time, validity time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "meshshift-webhook-ca", Organization: []string{"meshshift"}},
		NotBefore:             now.Add(-certBackdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return c, key, nil
}

func (m *CertManager) issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) ([]byte, []byte, error) {
	return IssueServingCert(ca, caKey, now, orDefault(m.CertValidity, DefaultCertValidity), m.DNSNames, m.IPAddresses)
}

// IssueServingCert issues a serving certificate and key (PEM) for dnsNames
// and ips, signed by ca, valid from now (backdated a minute) for validity but
// not beyond the CA.
func IssueServingCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time, validity time.Duration, dnsNames []string, ips []net.IP) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate serving key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	cn := "meshshift-webhook"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"meshshift"}},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
		NotBefore:    now.Add(-certBackdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create serving certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out, nil
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return out, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
	}
}

func encodeCerts(cs []*x509.Certificate) []byte {
	var b []byte
	for _, c := range cs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

func parseKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("parse key: no PEM block")
	}
	k, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	return k, nil
}

func encodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func publicKeyMatches(c *x509.Certificate, k *ecdsa.PrivateKey) bool {
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	return ok && pub.Equal(&k.PublicKey)
}
