package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

// Options says what to start besides the API server and etcd.
type Options struct {
	// CRDPaths are CRD files or folders installed besides config/crd/bases
	// (for example Istio's and Gateway API's CRDs from their Go modules).
	CRDPaths []string
	// ControllerManager starts kube-controller-manager, so Deployments create
	// ReplicaSets and ReplicaSets create pods.
	ControllerManager bool
	// Scheduler starts kube-scheduler, so pods are bound to nodes.
	Scheduler bool
	// KwokNodes, when above zero, starts kwok and creates that many fake nodes
	// (kwok-node-0, ...), whose pods kwok marks Running and Ready.
	KwokNodes int
	// WebhookInstallOptions are handed to envtest, which installs the webhook
	// configurations and serves them a certificate.
	WebhookInstallOptions envtest.WebhookInstallOptions
	// Scheme is the scheme of Client; nil means client-go's types plus meshshift's.
	Scheme *runtime.Scheme
	// RealNode, when set, starts one real node (containerd, kubelet,
	// kube-proxy on a CNI bridge) whose pods run as real containers; see
	// node.go. The API server then listens on the node address NodeIP,
	// not on 127.0.0.1, so pods reach it through the kubernetes Service.
	// It needs root and starts kube-controller-manager and kube-scheduler.
	RealNode *NodeOptions
}

// Cluster is a running control plane.
type Cluster struct {
	// Config talks to the API server as a cluster administrator.
	Config *rest.Config
	// Client is a controller-runtime client on Config.
	Client client.Client
	// Scheme is Client's scheme.
	Scheme *runtime.Scheme
	// Kubeconfig is the path of an administrator kubeconfig file.
	Kubeconfig string
	// Env is envtest's environment (webhook install options, the API server).
	Env *envtest.Environment
	// Dir is a scratch folder removed on Stop; process logs are kept there.
	Dir string
	// Node is the real node, when Options.RealNode asked for one.
	Node *Node

	procs   []*process
	started bool
}

// NewScheme returns client-go's scheme, CRDs and meshshift's types.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(meshv1alpha1.AddToScheme(s))
	return s
}

// Start starts a control plane for t and stops it when t ends. It skips
// under `go test -short` (unit tests only).
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the real control plane; run without -short (make test)")
	}
	limit := 3 * time.Minute
	if opts.RealNode != nil {
		if os.Geteuid() != 0 {
			t.Skip("a real node needs root (containerd, kubelet, a bridge, cgroups)")
		}
		// A cold static build of meshshift's image takes minutes.
		limit = 15 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c, err := StartE(ctx, opts)
	if c != nil {
		t.Cleanup(func() {
			if t.Failed() {
				c.dumpLogs(t)
			}
			if err := c.Stop(); err != nil {
				t.Logf("stop control plane: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	return c
}

// StartE starts a control plane; the caller must Stop it, also on error when
// the returned Cluster is not nil.
func StartE(ctx context.Context, opts Options) (*Cluster, error) {
	kubeDir, err := AssetDir("kube", "kube-apiserver", "etcd")
	if err != nil {
		return nil, err
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "meshshift-harness-")
	if err != nil {
		return nil, fmt.Errorf("create scratch folder: %w", err)
	}
	scheme := opts.Scheme
	if scheme == nil {
		scheme = NewScheme()
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: kubeDir,
		CRDDirectoryPaths:     append([]string{filepath.Join(root, "config", "crd", "bases")}, opts.CRDPaths...),
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: opts.WebhookInstallOptions,
		Scheme:                scheme,
		// envtest's default of 20 s is short for kube-apiserver's start on a
		// loaded 2-core machine (a timeout was seen at load average 24).
		ControlPlaneStartTimeout: time.Minute,
	}
	c := &Cluster{Env: env, Dir: dir, Scheme: scheme}
	if opts.RealNode != nil {
		opts.ControllerManager, opts.Scheduler = true, true
		if err := c.prepareNode(env); err != nil {
			return c, err
		}
	}
	cfg, err := env.Start()
	if err != nil {
		if c.Node != nil {
			return c, fmt.Errorf("start api server and etcd: %w", err)
		}
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start api server and etcd: %w", err)
	}
	c.started = true
	c.Config = cfg
	if err := c.setUp(ctx, opts); err != nil {
		return c, err
	}
	return c, nil
}

func (c *Cluster) setUp(ctx context.Context, opts Options) error {
	admin, err := c.Env.AddUser(envtest.User{Name: "meshshift-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add admin user: %w", err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		return fmt.Errorf("write admin kubeconfig: %w", err)
	}
	c.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kc, 0o600); err != nil {
		return fmt.Errorf("write admin kubeconfig: %w", err)
	}
	c.Client, err = client.New(c.Config, client.Options{Scheme: c.Scheme})
	if err != nil {
		return fmt.Errorf("build client: %w", err)
	}
	if opts.ControllerManager {
		if err := c.startControllerManager(ctx); err != nil {
			return err
		}
	}
	if opts.Scheduler {
		if err := c.startScheduler(ctx); err != nil {
			return err
		}
	}
	if opts.KwokNodes > 0 {
		if err := c.startKwok(ctx, opts.KwokNodes); err != nil {
			return err
		}
	}
	if opts.RealNode != nil {
		if err := c.startNode(ctx, opts.RealNode); err != nil {
			return err
		}
	}
	return nil
}

// Stop stops every process and removes the scratch folder.
func (c *Cluster) Stop() error {
	var errs []error
	if c.Node != nil {
		if err := c.stopNode(); err != nil {
			errs = append(errs, fmt.Errorf("remove real node: %w", err))
		}
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop()
	}
	if c.started {
		if err := c.Env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop api server and etcd: %w", err))
		}
	}
	if c.Node != nil {
		// The API server listens on the bridge: remove it only now.
		if err := c.Node.release(); err != nil {
			errs = append(errs, fmt.Errorf("remove real node network: %w", err))
		}
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		errs = append(errs, fmt.Errorf("remove scratch folder: %w", err))
	}
	return errors.Join(errs...)
}

func (c *Cluster) dumpLogs(t testing.TB) {
	for _, p := range c.procs {
		t.Logf("--- last lines of %s ---\n%s", p.name, p.tail(40))
	}
	if c.Node != nil {
		c.Node.dumpPodLogs(t)
	}
}

// NodeNames lists the kwok nodes this cluster made.
func (c *Cluster) NodeNames(ctx context.Context) ([]string, error) {
	var nodes corev1.NodeList
	if err := c.Client.List(ctx, &nodes, client.MatchingLabels{"type": "kwok"}); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	names := make([]string, 0, len(nodes.Items))
	for _, n := range nodes.Items {
		names = append(names, n.Name)
	}
	return names, nil
}
