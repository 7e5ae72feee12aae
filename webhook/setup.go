package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
)

// Paths the handlers are served on (config/webhook/manifests.yaml).
const (
	PathMutatePod               = "/mutate-v1-pod"
	PathValidatePod             = "/validate-v1-pod"
	PathValidateNamespace       = "/validate-v1-namespace"
	PathValidateDataplanePolicy = "/validate-meshshift-io-v1alpha1-dataplanepolicy"
	PathValidateMeshMigration   = "/validate-meshshift-io-v1alpha1-meshmigration"
)

// Names of the shipped objects (config/webhook).
const (
	DefaultNamespace            = "meshshift-system"
	DefaultServiceName          = "meshshift-webhook"
	DefaultSecretName           = "meshshift-webhook-cert"
	DefaultMutatingConfigName   = "00-meshshift-mutating"
	DefaultValidatingConfigName = "meshshift-validating"
	DefaultPort                 = 9443
)

// stableOwners is how many workloads' decisions the pod mutator's
// Stabilizer remembers, and memoOwners how many answers its memo keeps (an
// arbitrary one is forgotten beyond: its next pod is decided afresh). An
// entry is about 1 KiB in the first and 1.5 KiB in the second: 16 and 6 MiB
// at most.
const (
	stableOwners = 16384
	memoOwners   = 4096
)

// CertMode says where the serving certificate comes from.
type CertMode string

const (
	// CertModeSelf: the manager keeps a CA and serving certificate in a Secret
	// and patches the caBundle (CertManager).
	CertModeSelf CertMode = "self"
	// CertModeCertManager: cert-manager writes the certificate; the server
	// reloads tls.crt/tls.key from CertDir when they change.
	CertModeCertManager CertMode = "cert-manager"
)

// Options configure Setup. Zero values take the defaults named on each field.
type Options struct {
	// Host and Port the webhook server listens on ("" = all interfaces, DefaultPort).
	Host string
	Port int
	// Namespace is meshshift's own namespace (the Secret lives there; its pods
	// are never decided). Default DefaultNamespace.
	Namespace string
	// ServiceName names the Service in front of the webhook; the serving
	// certificate is issued for <ServiceName>.<Namespace>.svc. Default DefaultServiceName.
	ServiceName string
	// SecretName, MutatingConfigName, ValidatingConfigName default to the Default* names.
	SecretName, MutatingConfigName, ValidatingConfigName string
	// CertMode defaults to CertModeSelf. CertDir is read with CertModeCertManager.
	CertMode CertMode
	CertDir  string
	// CertIPs are extra IP SANs of the self-managed serving certificate (for a
	// clientConfig.url on an IP, as tests use).
	CertIPs []net.IP
	// CertCheckInterval, CertValidity, CAValidity and CAPropagationDelay tune
	// CertManager (its Default* constants when zero).
	CertCheckInterval, CertValidity, CAValidity, CAPropagationDelay time.Duration
	// MigratorUsername may change the mesh metadata of namespaces an active
	// wave owns ("system:serviceaccount:<ns>:<name>").
	MigratorUsername string
	// Features are the mesh objects selecting a pod; nil means a signals.Index
	// Setup feeds from informers of signals.WatchedObjects (the manager's
	// scheme must hold their types: signals.AddToScheme).
	Features FeatureSource
	// Traffic is the latest traffic snapshot; nil means no traffic data
	// (rules see traffic.available false).
	Traffic TrafficSource
	// Capabilities is what the cluster serves; nil means detected from the
	// cached DaemonSets, Deployments and Nodes (signals.DetectCapabilities),
	// with SpireCA saying whether the mesh's CA is SPIRE.
	Capabilities CapabilitySource
	SpireCA      bool
	// CapabilityInterval is how often capabilities are detected again (10s when zero).
	CapabilityInterval time.Duration
	// Clock is read per decision and by CertManager; nil means the real clock.
	Clock clock.Clock
	// DisableDetector leaves the missed-decision detector out.
	DisableDetector bool
	// Drain is started by the caller when the replica is leaving (nil: New
	// makes one, in Webhooks.Drain).
	Drain *Drain
}

func (o *Options) setDefaults() {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&o.Namespace, DefaultNamespace)
	def(&o.ServiceName, DefaultServiceName)
	def(&o.SecretName, DefaultSecretName)
	def(&o.MutatingConfigName, DefaultMutatingConfigName)
	def(&o.ValidatingConfigName, DefaultValidatingConfigName)
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.CertMode == "" {
		o.CertMode = CertModeSelf
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
}

// Webhooks are the parts Setup built, for callers that need them (tests, the CLI).
type Webhooks struct {
	Server   ctrlwebhook.Server
	Certs    *CertManager // nil with CertModeCertManager
	Policies *PolicyStore
	Inputs   *Inputs
	Detector *Detector
	// PolicyStatus writes the Ready condition of DataplanePolicies (leader only).
	PolicyStatus *PolicyStatusReconciler
	// Drain, once started, makes every webhook answer close its connection,
	// so callers move to the other replicas before this one stops.
	Drain *Drain
}

// RBAC the webhooks, their certificates and the detector need.
// +kubebuilder:rbac:groups="",resources=pods;namespaces;nodes;services,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.istio.io;security.istio.io;telemetry.istio.io;extensions.istio.io,resources=*,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes;grpcroutes,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumnetworkpolicies;ciliumclusterwidenetworkpolicies;ciliumenvoyconfigs;ciliumclusterwideenvoyconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups="",namespace=meshshift-system,resources=secrets,verbs=get;create;update
// Only meshshift's own webhook configurations (DefaultMutatingConfigName,
// DefaultValidatingConfigName), never the mesh's injector:
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,resourceNames=00-meshshift-mutating;meshshift-validating,verbs=get;update
// +kubebuilder:rbac:groups=meshshift.io,resources=dataplanepolicies;meshmigrations,verbs=get;list;watch
// +kubebuilder:rbac:groups=meshshift.io,resources=meshmigrations/status,verbs=get;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Setup adds meshshift's admission webhooks, their serving certificates, the
// missed-decision detector and the DataplanePolicy status reconciler to mgr.
// Call it before mgr.Start.
func Setup(mgr ctrl.Manager, opts Options) error {
	_, err := New(mgr, opts)
	return err
}

// New is Setup returning what it built.
func New(mgr ctrl.Manager, opts Options) (*Webhooks, error) {
	opts.setDefaults()
	log := mgr.GetLogger().WithName("webhook")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	store := NewPolicyStore(log.WithName("policies"))
	inf, err := mgr.GetCache().GetInformer(ctx, &v1alpha1.DataplanePolicy{})
	if err != nil {
		return nil, fmt.Errorf("get dataplanepolicy informer: %w", err)
	}
	if _, err := inf.AddEventHandler(store.EventHandler()); err != nil {
		return nil, fmt.Errorf("watch dataplanepolicies: %w", err)
	}
	namespaces := NewNamespaceStore()
	nsInf, err := mgr.GetCache().GetInformer(ctx, &corev1.Namespace{})
	if err != nil {
		return nil, fmt.Errorf("get namespace informer: %w", err)
	}
	if _, err := nsInf.AddEventHandler(namespaces.EventHandler()); err != nil {
		return nil, fmt.Errorf("watch namespaces: %w", err)
	}
	if _, err := mgr.GetCache().GetInformer(ctx, &v1alpha1.MeshMigration{}); err != nil {
		return nil, fmt.Errorf("get meshmigration informer: %w", err)
	}
	features := opts.Features
	if features == nil {
		ix := signals.NewIndex("")
		// Watch keeps looking for mesh types the cluster does not serve yet
		// for as long as the manager runs.
		watchCtx, stopWatch := context.WithCancel(context.Background())
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			<-ctx.Done()
			stopWatch()
			return nil
		})); err != nil {
			stopWatch()
			return nil, fmt.Errorf("add the mesh index's lifetime to the manager: %w", err)
		}
		if err := signals.Watch(watchCtx, mgr.GetCache(), ix, log.WithName("index")); err != nil {
			stopWatch()
			return nil, err
		}
		features = ix
	}
	caps := opts.Capabilities
	var afterSync func(context.Context) error
	if caps == nil {
		for _, obj := range []client.Object{&appsv1.DaemonSet{}, &appsv1.Deployment{}, &corev1.Node{}} {
			if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
				return nil, fmt.Errorf("get %T informer: %w", obj, err)
			}
		}
		cw := &CapabilityWatcher{Cache: mgr.GetCache(), SpireCA: opts.SpireCA, Interval: opts.CapabilityInterval, Log: log.WithName("capabilities")}
		if err := mgr.Add(cw); err != nil {
			return nil, fmt.Errorf("add capability watcher: %w", err)
		}
		caps, afterSync = cw.Get, cw.Refresh
	}
	// Jobs' metadata: a CronJob's pods are keyed on the CronJob (Inputs.owner).
	if _, err := mgr.GetCache().GetInformer(ctx, JobMetadata()); err != nil {
		return nil, fmt.Errorf("get job metadata informer: %w", err)
	}
	synced := &atomic.Bool{}
	if err := mgr.Add(&cacheSyncWaiter{wait: mgr.GetCache().WaitForCacheSync, then: afterSync, synced: synced, log: log}); err != nil {
		return nil, fmt.Errorf("add cache sync waiter: %w", err)
	}
	in := &Inputs{Cache: mgr.GetCache(), Jobs: mgr.GetCache(), Namespaces: namespaces, Policies: store, Features: features, Traffic: opts.Traffic,
		Capabilities: caps, Clock: opts.Clock, Ready: synced.Load, Stabilizer: policies.NewStabilizer(stableOwners)}
	w := &Webhooks{Policies: store, Inputs: in}

	srvOpts := ctrlwebhook.Options{Host: opts.Host, Port: opts.Port}
	switch opts.CertMode {
	case CertModeSelf:
		w.Certs = &CertManager{
			Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Namespace: opts.Namespace, SecretName: opts.SecretName,
			DNSNames: []string{
				opts.ServiceName + "." + opts.Namespace + ".svc",
				opts.ServiceName + "." + opts.Namespace + ".svc.cluster.local",
			},
			IPAddresses:        opts.CertIPs,
			MutatingConfigName: opts.MutatingConfigName, ValidatingConfigName: opts.ValidatingConfigName,
			CAValidity: opts.CAValidity, CertValidity: opts.CertValidity, CheckInterval: opts.CertCheckInterval,
			CAPropagationDelay: opts.CAPropagationDelay, Clock: opts.Clock, Log: log.WithName("certs"),
		}
		// Not fatal: the check loop retries, and until a certificate is
		// loaded the server fails handshakes (failurePolicy Ignore admits).
		if err := w.Certs.Ensure(ctx); err != nil {
			log.Error(err, "serving certificate not ready; retrying every check interval")
		}
		if err := mgr.Add(w.Certs); err != nil {
			return nil, fmt.Errorf("add certificate manager: %w", err)
		}
		get := w.Certs.GetCertificate
		srvOpts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.GetCertificate = get }}
	case CertModeCertManager:
		if opts.CertDir == "" {
			return nil, errors.New("webhook options: CertDir is required with cert mode " + string(CertModeCertManager))
		}
		srvOpts.CertDir = opts.CertDir
	default:
		return nil, fmt.Errorf("webhook options: cert mode %q is not supported: use %q or %q", opts.CertMode, CertModeSelf, CertModeCertManager)
	}
	w.Server = ctrlwebhook.NewServer(srvOpts)
	// The pod mutator and validator are on every pod's admission path:
	// served by the single-pass ReviewHandler rather than admission.Webhook.
	w.Drain = opts.Drain
	if w.Drain == nil {
		w.Drain = &Drain{}
	}
	w.Server.Register(PathMutatePod, w.Drain.Wrap(&ReviewHandler{Func: (&PodMutator{Inputs: in}).Review, Pods: true}))
	w.Server.Register(PathValidatePod, w.Drain.Wrap(&ReviewHandler{Func: (&PodValidator{Inputs: in}).Review, Pods: true}))
	w.Server.Register(PathValidateNamespace, w.Drain.Wrap(&admission.Webhook{Handler: &NamespaceValidator{Inputs: in, MigratorUsername: opts.MigratorUsername}}))
	w.Server.Register(PathValidateDataplanePolicy, w.Drain.Wrap(&admission.Webhook{Handler: DataplanePolicyValidator{}}))
	w.Server.Register(PathValidateMeshMigration, w.Drain.Wrap(&admission.Webhook{Handler: &MeshMigrationValidator{Inputs: in}}))
	if err := mgr.Add(w.Server); err != nil {
		return nil, fmt.Errorf("add webhook server: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", w.Server.StartedChecker()); err != nil {
		return nil, fmt.Errorf("add webhook ready check: %w", err)
	}
	// A replica decides from its caches: until they have synced it would
	// answer from an empty index and no policy, so it is not ready (and the
	// Service sends reviews to the replicas that are).
	if err := mgr.AddReadyzCheck("informers", informersSynced(mgr.GetCache())); err != nil {
		return nil, fmt.Errorf("add informers ready check: %w", err)
	}
	if !opts.DisableDetector {
		w.Detector = &Detector{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("meshshift-webhook"),
			Skipped: SkippedNamespaces(opts.Namespace)}
		if err := w.Detector.SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("set up missed-decision detector: %w", err)
		}
	}
	w.PolicyStatus = &PolicyStatusReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("meshshift-webhook"), Policies: store, Clock: opts.Clock}
	if err := w.PolicyStatus.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up dataplanepolicy status reconciler: %w", err)
	}
	return w, nil
}

// cacheSyncWaiter flips synced once the informer caches are synced and then
// has run, on every replica (not only the leader).
type cacheSyncWaiter struct {
	wait   func(context.Context) bool
	then   func(context.Context) error
	synced *atomic.Bool
	log    logr.Logger
}

func (c *cacheSyncWaiter) Start(ctx context.Context) error {
	if c.wait(ctx) {
		if c.then != nil {
			if err := c.then(ctx); err != nil {
				c.log.Error(err, "first capability detection failed; decisions use what is known")
			}
		}
		c.synced.Store(true)
	}
	<-ctx.Done()
	return nil
}

func (c *cacheSyncWaiter) NeedLeaderElection() bool { return false }
