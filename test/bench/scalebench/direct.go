package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/meshshift/meshshift/webhook"
)

// direct is the webhook's latency at the asked rate with the API server
// left out: the machine's API server cannot send 1,000 pod creates a
// second, so the same pods' AdmissionReviews are posted to the manager
// straight, paced, over HTTPS on 127.0.0.1, with the whole index loaded.
type direct struct {
	sent, errors            int
	achieved                float64
	clientP50, clientP99    float64
	decisionP99, handlerP99 float64
}

// reviewBody is the AdmissionReview the API server sends for a load pod
// (each review its own workload, decided afresh: the costliest path).
func reviewBody(i int) ([]byte, error) {
	p := loadPod()
	p.Name = "direct-" + strconv.Itoa(i)
	p.GenerateName = ""
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode pod: %w", err)
	}
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("direct-" + strconv.Itoa(i)),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: loadNamespace, Name: p.Name,
			Operation: admissionv1.Create,
			UserInfo:  authenticationv1.UserInfo{Username: "scalebench-direct", Groups: []string{"system:authenticated"}},
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode review: %w", err)
	}
	return b, nil
}

// directWebhook posts n reviews at c.rate (pace), at most 256 in flight,
// and reads the manager's decision and handler histograms around them.
func (e *env) directWebhook(ctx context.Context, m *manager, c config) (direct, error) {
	var out direct
	n := c.scaled(c.loadPods, 50)
	bodies := make([][]byte, n)
	for i := range bodies {
		b, err := reviewBody(i)
		if err != nil {
			return out, err
		}
		bodies[i] = b
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(webhookCA) {
		return out, fmt.Errorf("webhook CA bundle holds no certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "https://127.0.0.1:" + strconv.Itoa(webhookPort) + webhook.PathMutatePod
	before, err := m.scrape(ctx)
	if err != nil {
		return out, err
	}
	run, err := pace(ctx, n, c.rate, 256, func(i int) error { return post(ctx, hc, url, bodies[i]) })
	if err != nil {
		return out, fmt.Errorf("no review answered: %w", err)
	}
	out.sent, out.errors, out.achieved, out.clientP50, out.clientP99 = n, run.errors, run.achieved, run.p50, run.p99
	after, err := m.scrape(ctx)
	if err != nil {
		return out, err
	}
	wantHandler := map[string]string{"webhook": webhook.PathMutatePod}
	out.decisionP99 = findHistogram(after, decisionHistogram, nil).minus(findHistogram(before, decisionHistogram, nil)).quantile(0.99)
	out.handlerP99 = findHistogram(after, handlerHistogram, wantHandler).minus(findHistogram(before, handlerHistogram, wantHandler)).quantile(0.99)
	return out, nil
}

// post sends one review and checks that it was answered with a patch.
func post(ctx context.Context, hc *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build review request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("post review: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("review: status %d", resp.StatusCode)
	}
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	if r.Response == nil || !r.Response.Allowed || len(r.Response.Patch) == 0 {
		return fmt.Errorf("review answered without a decision: %s", b)
	}
	return nil
}
