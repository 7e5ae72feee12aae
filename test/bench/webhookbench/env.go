package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/webhook"
	"github.com/meshshift/meshshift/webhook/webhooktest"
)

// Paths of the no-op handlers, served by the same server as meshshift's.
const (
	pathNoopMutate   = "/noop-mutate"
	pathNoopValidate = "/noop-validate"
	pathLabelMutate  = "/label-mutate"
	pathCapture      = "/capture-mutate"
	labelKey         = "bench.meshshift.io/label"
	benchNamespace   = "bench"
	// With istiod: both namespaces ask Istio for sidecars
	// (istio-injection=enabled). No DataplanePolicy selects them, so in the
	// first meshshift keeps the mode the mesh's labels give (sidecar: do no
	// harm); the second carries meshshift's namespace annotation for ambient,
	// as a migration wave writes it, and meshshift's labels keep istiod's
	// injector away from its pods.
	sidecarNamespace = "bench-sidecar"
	ambientNamespace = "bench-ambient"
	benchOwner       = "checkout-7d9f8c6b5" // the bench pod's ReplicaSet
)

type env struct {
	captured chan admission.Request // what the API server sent to pathCapture
	cluster  *harness.Cluster
	istiod   *istiod // nil without -istiod
	port     int
	w        *webhook.Webhooks
	tls      *tls.Config
	bundle   []byte
	cancel   context.CancelFunc
	done     chan error
}

func startEnv(ctx context.Context, withIstiod bool) (*env, error) {
	log.SetLogger(logrDiscard())
	var opts harness.Options
	if withIstiod {
		crds, err := istioCRDs()
		if err != nil {
			return nil, err
		}
		opts.CRDPaths = []string{crds}
	}
	c, err := harness.StartE(ctx, opts)
	if err != nil {
		if c != nil {
			_ = c.Stop()
		}
		return nil, err
	}
	e := &env{cluster: c}
	if withIstiod {
		if e.istiod, err = startIstiod(ctx, c); err != nil {
			e.stop()
			return nil, err
		}
	}
	if err := e.start(ctx); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

func (e *env) start(ctx context.Context) error {
	cl := e.cluster.Client
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: webhook.DefaultNamespace}},
		{ObjectMeta: metav1.ObjectMeta{Name: benchNamespace, Labels: map[string]string{"bench": "true"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: sidecarNamespace, Labels: map[string]string{"istio-injection": "enabled"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: ambientNamespace, Labels: map[string]string{"istio-injection": "enabled"},
			Annotations: map[string]string{v1alpha1.AnnotationMode: string(v1alpha1.ModeAmbient)}}},
	} {
		if err := cl.Create(ctx, ns); err != nil {
			return fmt.Errorf("create namespace %s: %w", ns.Name, err)
		}
	}
	// A policy with rules that do not match: every decision evaluates them
	// all before the default (a costlier path than a namespace annotation).
	dp := &v1alpha1.DataplanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "bench"}, Spec: v1alpha1.DataplanePolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bench": "true"}},
		DefaultMode:       v1alpha1.RuleMode(v1alpha1.ModeAmbient),
		Rules: []v1alpha1.Rule{
			{Name: "legacy", When: `workload.labels["tier"] == "legacy"`, Mode: "sidecar"},
			{Name: "batch", When: `workload.ownerKind == "Job"`, Mode: "none"},
			{Name: "busy", When: `traffic.available && !traffic.stale && traffic.requestRate > 1000.0`, Mode: "sidecar"},
			{Name: "grpc", When: `"grpc" in traffic.protocols`, Mode: "ambient-waypoint"},
			{Name: "envoyfilter", When: `"EnvoyFilter" in features`, Mode: "sidecar"},
		},
	}}
	if err := cl.Create(ctx, dp); err != nil {
		return fmt.Errorf("create policy: %w", err)
	}
	port, err := harness.FreePort()
	if err != nil {
		return err
	}
	e.port = port
	mgr, err := ctrl.NewManager(e.cluster.Config, ctrl.Options{
		Scheme: e.cluster.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	e.w, err = webhook.New(mgr, webhook.Options{
		Host: "127.0.0.1", Port: port, CertIPs: []net.IP{net.ParseIP("127.0.0.1")},
		Capabilities:    webhook.StaticCapabilities(signals.Capabilities{Ztunnel: true, Cilium: true}),
		DisableDetector: true,
	})
	if err != nil {
		return fmt.Errorf("set up webhooks: %w", err)
	}
	// The no-op handlers run on the stack of the meshshift handlers they
	// stand in for on a pod's admission: webhook.ReviewHandler, which serves
	// the pod mutator and the pod validator.
	noop := &webhook.ReviewHandler{Func: func(context.Context, *webhook.ReviewRequest) admission.Response {
		return admission.Allowed("")
	}}
	e.w.Server.Register(pathNoopMutate, noop)
	e.w.Server.Register(pathNoopValidate, noop)
	// A webhook that only adds one label: what any patching webhook costs the
	// API server (apply the patch, decode the pod again), for comparison.
	labelPatch := []byte(`[{"op":"add","path":"/metadata/labels/bench.meshshift.io~1label","value":"x"}]`)
	label := func(context.Context, *webhook.ReviewRequest) admission.Response {
		pt := admissionv1.PatchTypeJSONPatch
		return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true, PatchType: &pt, Patch: labelPatch}}
	}
	e.w.Server.Register(pathLabelMutate, &webhook.ReviewHandler{Func: label})
	// Keeps the first review the API server sends (the direct benchmark
	// replays it) and allows it.
	e.captured = make(chan admission.Request, 1)
	capture := admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		select {
		case e.captured <- req:
		default:
		}
		return admission.Allowed("")
	})
	e.w.Server.Register(pathCapture, &admission.Webhook{Handler: capture})
	runCtx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan error, 1)
	go func() { e.done <- mgr.Start(runCtx) }()

	var sec corev1.Secret
	if err := cl.Get(ctx, client.ObjectKey{Namespace: webhook.DefaultNamespace, Name: webhook.DefaultSecretName}, &sec); err != nil {
		return fmt.Errorf("read webhook secret: %w", err)
	}
	e.bundle = sec.Data[webhook.SecretKeyCABundle]
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(e.bundle) {
		return errors.New("webhook secret holds no CA")
	}
	e.tls = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12}
	// Wait until the server answers with a certificate we trust.
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), e.tls)
		if err == nil {
			_ = conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server not serving: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *env) stop() {
	if e.cancel != nil {
		e.cancel()
		select {
		case err := <-e.done:
			if err != nil {
				fmt.Printf("webhook manager stopped with: %v\n", err)
			}
		case <-time.After(30 * time.Second):
		}
	}
	if e.istiod != nil {
		e.istiod.stop()
	}
	_ = e.cluster.Stop()
}

// variant is what the shipped configurations point at.
type variant int

const (
	variantNoop         variant = iota // no-op mutating and validating handlers
	variantLabel                       // a one-label patch, no-op validation
	variantMeshshift                   // meshshift's handlers
	variantCapture                     // the capturing mutating handler, no-op validation
	variantPolicy                      // no-op handlers, and a MutatingAdmissionPolicy adding one label
	variantIstiod                      // istiod's injector alone: no meshshift configuration, pods injected
	variantIstioSidecar                // meshshift in front of istiod, pods decided sidecar (injected)
	variantIstioAmbient                // meshshift in front of istiod, pods decided ambient (not injected)
	variantIstioLabel                  // the one-label webhook (no-op validation) in front of istiod, pods injected
)

func (v variant) String() string {
	return [...]string{"noop     ", "one-label", "meshshift", "capture  ", "policy   ",
		"istiod   ", "ms+istiod-sidecar", "ms+istiod-ambient", "label+istiod"}[v]
}

// meshshift says whether the variant's configurations point at meshshift's
// own handlers.
func (v variant) meshshift() bool {
	return v == variantMeshshift || v == variantIstioSidecar || v == variantIstioAmbient
}

// injected says whether istiod injects the variant's pods.
func (v variant) injected() bool {
	return v == variantIstiod || v == variantIstioSidecar || v == variantIstioLabel
}

// labelled says whether the variant's pods get the one label.
func (v variant) labelled() bool {
	return v == variantLabel || v == variantPolicy || v == variantIstioLabel
}

// namespace is where the variant's pods are created.
func (v variant) namespace() string {
	switch v {
	case variantIstiod, variantIstioSidecar, variantIstioLabel:
		return sidecarNamespace
	case variantIstioAmbient:
		return ambientNamespace
	}
	return benchNamespace
}

// decision is the mode meshshift must decide for the variant's pods ("" for
// variants without meshshift).
func (v variant) decision() string {
	switch v {
	case variantMeshshift, variantIstioAmbient:
		return string(v1alpha1.ModeAmbient)
	case variantIstioSidecar:
		return string(v1alpha1.ModeSidecar)
	}
	return ""
}

// labelPolicy is a MutatingAdmissionPolicy that adds the one label in the
// API server itself (CEL, no webhook): what mutating a pod at all costs the
// API server, webhooks aside.
func labelPolicy() (*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding) {
	p := &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-label"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				},
			}}},
			FailurePolicy:      ptr.To(admissionregistrationv1.Fail),
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
			Mutations: []admissionregistrationv1.Mutation{{
				PatchType: admissionregistrationv1.PatchTypeApplyConfiguration,
				ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{
					Expression: `Object{metadata: Object.metadata{labels: {"` + labelKey + `": "x"}}}`,
				},
			}},
		},
	}
	b := &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-label"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{
			PolicyName: p.Name,
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": benchNamespace}}},
		},
	}
	return p, b
}

// install creates the shipped configurations, pointed at the variant's
// handlers, and patches their caBundle.
func (e *env) install(ctx context.Context, v variant) error {
	mut, val, err := webhooktest.LoadConfigurations()
	if err != nil {
		return err
	}
	point := func(cc *admissionregistrationv1.WebhookClientConfig, other string) {
		path := *cc.Service.Path
		if !v.meshshift() {
			path = other
		}
		cc.Service, cc.URL = nil, ptr.To("https://127.0.0.1:"+strconv.Itoa(e.port)+path)
		cc.CABundle = e.bundle // trusted from the first call
	}
	mutPath := pathNoopMutate
	switch v {
	case variantLabel, variantIstioLabel:
		mutPath = pathLabelMutate
	case variantCapture:
		mutPath = pathCapture
	}
	for i := range mut.Webhooks {
		point(&mut.Webhooks[i].ClientConfig, mutPath)
	}
	for i := range val.Webhooks {
		point(&val.Webhooks[i].ClientConfig, pathNoopValidate)
	}
	cl := e.cluster.Client
	pol, bind := labelPolicy()
	for _, obj := range []client.Object{mut, val, pol, bind} {
		_ = cl.Delete(ctx, obj)
	}
	install := []client.Object{mut, val}
	if v == variantIstiod {
		install = nil // istiod's own configuration stays installed throughout
	}
	if v == variantPolicy {
		install = append(install, pol, bind)
	}
	for _, obj := range []client.Object{mut, val, pol, bind} {
		if err := waitGone(ctx, cl, obj); err != nil {
			return err
		}
	}
	for _, obj := range install {
		obj.SetResourceVersion("")
		if err := cl.Create(ctx, obj); err != nil {
			return fmt.Errorf("create %s: %w", obj.GetName(), err)
		}
	}
	if err := e.w.Certs.Ensure(ctx); err != nil {
		return fmt.Errorf("patch caBundle: %w", err)
	}
	// Wait until the API server calls the new configuration.
	deadline := time.Now().Add(30 * time.Second)
	for {
		pod := benchPod(v.namespace(), "probe-")
		err := cl.Create(ctx, pod, client.DryRunAll)
		_, labelled := pod.Labels[labelKey]
		if err == nil && decidedMode(pod) == v.decision() && hasIstioProxy(pod) == v.injected() &&
			labelled == v.labelled() {
			if v != variantCapture {
				return nil
			}
			select {
			case <-e.captured: // the probe's review: the configuration is in effect
				return nil
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("configuration %s not in effect after 30s (last error %w)", v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitGone(ctx context.Context, cl client.Client, obj client.Object) error {
	for i := 0; i < 100; i++ {
		err := cl.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		if err != nil {
			return client.IgnoreNotFound(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not deleted", obj.GetName())
}

// benchPod is a Deployment-shaped pod: owner, a dozen labels, two containers.
func benchPod(namespace, generateName string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: generateName, Namespace: namespace,
			Labels: map[string]string{"app": "checkout", "app.kubernetes.io/name": "checkout", "app.kubernetes.io/part-of": "shop",
				"app.kubernetes.io/version": "1.42.0", "pod-template-hash": "7d9f8c6b5", "team": "payments", "tier": "backend",
				"version": "v1", "env": "prod", "region": "eu-west-1"},
			Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
				"kubectl.kubernetes.io/restartedAt": "2026-11-26T10:00:00Z"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: benchOwner,
				UID: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: "default",
			Containers: []corev1.Container{
				{Name: "app", Image: "registry.example/shop/checkout:1.42.0", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					Env: []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}, {Name: "DB_HOST", Value: "db.shop.svc"}}},
				{Name: "log-shipper", Image: "registry.example/infra/shipper:3.1", Args: []string{"--input=/var/log/app", "--output=stdout"}},
			},
		},
	}
}

// apiServerReview creates benchPod through the API server with the capturing
// webhook installed and returns the AdmissionReview the API server sent for
// it: the pod as the API server has it at that point (defaults, the service
// account token volume, managedFields), the user, the options.
func (e *env) apiServerReview(ctx context.Context) ([]byte, error) {
	if err := e.install(ctx, variantCapture); err != nil {
		return nil, err
	}
	for len(e.captured) > 0 {
		<-e.captured
	}
	pod := benchPod(benchNamespace, "")
	pod.Name = "checkout-7d9f8c6b5-x2x9q"
	if err := e.cluster.Client.Create(ctx, pod); err != nil {
		return nil, fmt.Errorf("create the captured pod: %w", err)
	}
	var req admission.Request
	select {
	case req = <-e.captured:
	case <-time.After(30 * time.Second):
		return nil, errors.New("the API server sent no review to the capturing webhook")
	}
	if err := e.cluster.Client.Delete(ctx, pod); err != nil {
		return nil, fmt.Errorf("delete the captured pod: %w", err)
	}
	return json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req.AdmissionRequest,
	})
}

// hasIstioProxy says whether istiod injected its proxy (a native sidecar in
// initContainers, or a container).
func hasIstioProxy(p *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			if c.Name == "istio-proxy" {
				return true
			}
		}
	}
	return false
}

// decidedMode is the mode of the pod's meshshift.io/decision annotation
// ("<mode>/<rule>"), "" when it has none.
func decidedMode(p *corev1.Pod) string {
	mode, _, _ := strings.Cut(p.Annotations[v1alpha1.AnnotationDecision], "/")
	return mode
}
