package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/meshshift/meshshift/test/image"
)

// NodeOptions configure the real node (Options.RealNode).
type NodeOptions struct {
	// Meshshift builds meshshift's image as `make image` does and imports
	// it under image.MeshshiftRepo:image.MeshshiftLocalTag.
	Meshshift bool
	// Images are more image tarballs to import (`ctr images import`).
	Images []string
}

// RealNodeName is the real node's name (kubelet's --hostname-override).
const RealNodeName = "real-node-0"

// Node is a running real node: containerd, kubelet and kube-proxy on the
// bridge BridgeName, with NodeIP as its InternalIP.
type Node struct {
	// Name is the Node object's name.
	Name string
	// IP is its InternalIP, the bridge's address.
	IP string
	// Dir holds everything of the node (roots, state, configs, logs).
	Dir string

	lock        *os.File
	prevForward []byte
	kubeDir     string
	ctrdDir     string
	// before records which host paths existed before the node started,
	// tablesBefore which nftables tables.
	before, tablesBefore map[string]bool
	// phases are named start-up steps and how long each took.
	phases []Phase
}

// Phase is one timed start-up step.
type Phase struct {
	Name string
	Took time.Duration
}

// Phases lists how long each start-up step of the node took.
func (n *Node) Phases() []Phase { return n.phases }

func (n *Node) timed(name string, start time.Time) {
	n.phases = append(n.phases, Phase{Name: name, Took: time.Since(start)})
}

// prepareNode takes the machine's real-node lock, removes what a crashed run
// left, creates the node's network and the API server's certificates, and
// points envtest's API server at the node address. Run before env.Start.
func (c *Cluster) prepareNode(env *envtest.Environment) error {
	if os.Geteuid() != 0 {
		return errors.New("a real node needs root (containerd, kubelet, bridges, cgroups)")
	}
	for _, tool := range []string{"ip", "nft", "/usr/sbin/runc", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("a real node needs %s: run `make deps` (hack/deps.sh): %w", tool, err)
		}
	}
	kubeDir, err := AssetDir("kube", "kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
	if err != nil {
		return err
	}
	ctrdDir, err := AssetDir("containerd", "containerd", "containerd-shim-runc-v2", "ctr")
	if err != nil {
		return err
	}
	start := time.Now()
	lock, err := lockNode()
	if err != nil {
		return err
	}
	n := &Node{Name: RealNodeName, IP: NodeIP, Dir: filepath.Join(c.Dir, "node"), lock: lock, kubeDir: kubeDir, ctrdDir: ctrdDir}
	c.Node = n
	n.timed("lock", start)
	start = time.Now()
	// Anything found now was left by a run that died: we hold the lock.
	if left := Leftovers(); len(left) > 0 {
		if err := errors.Join(sweepNode(nil), netDown(nil), removeKubeletTables(nil)); err != nil {
			return fmt.Errorf("remove what an earlier real node left (%s): %w", strings.Join(left, "; "), err)
		}
	}
	n.before = hostPathsPresent()
	n.tablesBefore = nftTableKeys()
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return fmt.Errorf("create node folder: %w", err)
	}
	if n.prevForward, err = netUp(); err != nil {
		return err
	}
	n.timed("network", start)
	certDir := filepath.Join(c.Dir, "apiserver")
	ca, err := apiServerCerts(certDir, []net.IP{net.ParseIP(NodeIP), net.ParseIP(APIServiceIP)})
	if err != nil {
		return err
	}
	port, err := freePortOn(NodeIP)
	if err != nil {
		return err
	}
	api := env.ControlPlane.GetAPIServer()
	api.CertDir = certDir
	api.SecureServing.ListenAddr.Address = NodeIP
	api.SecureServing.ListenAddr.Port = strconv.Itoa(port)
	api.SecureServing.CA = ca
	api.Configure().
		// envtest turns the ServiceAccount admission plugin off; pods here
		// need their tokens mounted.
		Disable("disable-admission-plugins").
		Set("advertise-address", NodeIP).
		// Never resolve the node's name through the machine's resolver.
		Set("kubelet-preferred-address-types", "InternalIP").
		Set("service-account-issuer", "https://kubernetes.default.svc").
		Set("service-cluster-ip-range", ServiceCIDR)
	return nil
}

// freePortOn returns a TCP port on ip that was free a moment ago.
func freePortOn(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("find free port on %s: %w", ip, err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// kcmNodeFlags are kube-controller-manager's extra flags with a real node:
// the CA pods trust (kube-root-ca.crt) and the key that signs their tokens.
func (c *Cluster) kcmNodeFlags() map[string]string {
	if c.Node == nil {
		return nil
	}
	certDir := filepath.Join(c.Dir, "apiserver")
	return map[string]string{
		"root-ca-file":                     filepath.Join(certDir, "ca.crt"),
		"service-account-private-key-file": filepath.Join(certDir, "sa-signer.key"),
	}
}

// startNode starts containerd, imports the images, then kubelet and
// kube-proxy, and waits for the node to be Ready.
func (c *Cluster) startNode(ctx context.Context, opts *NodeOptions) error {
	n := c.Node
	start := time.Now()
	images, err := c.buildImages(ctx, opts)
	if err != nil {
		return err
	}
	n.timed("images", start)
	start = time.Now()
	if err := n.writeConfigs(); err != nil {
		return err
	}
	// containerd looks its shim up in PATH: the cached one comes first.
	ctrd, err := c.runEnv("containerd", filepath.Join(n.ctrdDir, "containerd"),
		[]string{"PATH=" + n.ctrdDir + ":/usr/sbin:/usr/bin:/sbin:/bin"},
		"--config", filepath.Join(n.Dir, "containerd.toml"))
	if err != nil {
		return err
	}
	if err := waitSocket(ctx, ctrd, n.sock()); err != nil {
		return err
	}
	n.timed("containerd", start)
	start = time.Now()
	for _, img := range images {
		if err := n.ctr(ctx, "images", "import", "--platform", "linux/"+runtime.GOARCH, img); err != nil {
			return fmt.Errorf("import image %s: %w", filepath.Base(img), err)
		}
	}
	n.timed("import", start)
	start = time.Now()
	kubeconfig, err := c.userKubeconfig("real-node-admin")
	if err != nil {
		return err
	}
	if err := n.writeKubeletConfig(); err != nil {
		return err
	}
	kl, err := c.run("kubelet", filepath.Join(n.kubeDir, "kubelet"), joinFlags(map[string]string{
		"config":            filepath.Join(n.Dir, "kubelet.yaml"),
		"kubeconfig":        kubeconfig,
		"root-dir":          filepath.Join(n.Dir, "kubelet"),
		"cert-dir":          filepath.Join(n.Dir, "kubelet-certs"),
		"hostname-override": n.Name,
		"node-ip":           n.IP,
	})...)
	if err != nil {
		return err
	}
	if err := n.writeKubeProxyConfig(kubeconfig); err != nil {
		return err
	}
	if _, err := c.run("kube-proxy", filepath.Join(n.kubeDir, "kube-proxy"), "--config="+filepath.Join(n.Dir, "kube-proxy.yaml")); err != nil {
		return err
	}
	if err := c.waitRealNodeReady(ctx, kl); err != nil {
		return err
	}
	n.timed("kubelet", start)
	return nil
}

// buildImages writes the pause and test app images (always) and meshshift's
// (on request) into tarballs, and returns them with opts.Images.
func (c *Cluster) buildImages(ctx context.Context, opts *NodeOptions) ([]string, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(c.Dir, "images")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("create image folder: %w", err)
	}
	app, pause, err := image.BuildTestApp(ctx, root, tmp)
	if err != nil {
		return nil, err
	}
	imgs := map[string]v1.Image{image.TestAppTag: app, image.PauseTag: pause}
	if opts.Meshshift {
		ms, err := image.BuildMeshshift(ctx, root, tmp, "v0.0.0-dev")
		if err != nil {
			return nil, err
		}
		imgs[image.MeshshiftRepo+":"+image.MeshshiftLocalTag] = ms
	}
	file := filepath.Join(tmp, "images.tar")
	if err := image.Write(file, imgs); err != nil {
		return nil, err
	}
	return append([]string{file}, opts.Images...), nil
}

func (n *Node) sock() string { return filepath.Join(n.Dir, "containerd.sock") }

// ctr runs ctr against the node's containerd in the k8s.io namespace.
func (n *Node) ctr(ctx context.Context, args ...string) error {
	_, err := n.ctrOutput(ctx, args...)
	return err
}

func (n *Node) ctrOutput(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(n.ctrdDir, "ctr"), append([]string{"--address", n.sock(), "--namespace", "k8s.io"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// userKubeconfig writes a kubeconfig of a new cluster administrator.
func (c *Cluster) userKubeconfig(name string) (string, error) {
	u, err := c.Env.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("add user %s: %w", name, err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("write kubeconfig of %s: %w", name, err)
	}
	p := filepath.Join(c.Dir, name+".kubeconfig")
	if err := os.WriteFile(p, kc, 0o600); err != nil {
		return "", fmt.Errorf("write kubeconfig of %s: %w", name, err)
	}
	return p, nil
}

func waitSocket(ctx context.Context, p *process, path string) error {
	for {
		if p.exited() {
			return fmt.Errorf("%s exited before it listened:\n%s", p.name, p.tail(20))
		}
		if conn, err := net.Dial("unix", path); err == nil {
			_ = conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w\n%s", p.name, ctx.Err(), p.tail(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) waitRealNodeReady(ctx context.Context, kubelet *process) error {
	for {
		if kubelet.exited() {
			return fmt.Errorf("kubelet exited:\n%s", kubelet.tail(30))
		}
		var node corev1.Node
		if err := c.Client.Get(ctx, client.ObjectKey{Name: c.Node.Name}, &node); err == nil {
			ready := false
			for _, cond := range node.Status.Conditions {
				ready = ready || (cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue)
			}
			tainted := false
			for _, t := range node.Spec.Taints {
				tainted = tainted || t.Key == corev1.TaintNodeNotReady
			}
			if ready && !tainted {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for node %s to be ready: %w\n%s", c.Node.Name, ctx.Err(), kubelet.tail(30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Ctr runs ctr against the node's containerd in the k8s.io namespace (the
// one kubelet uses) and returns its standard output, e.g.
// Ctr(ctx, "tasks", "kill", "-s", "SIGKILL", id) to kill a container.
func (n *Node) Ctr(ctx context.Context, args ...string) (string, error) {
	return n.ctrOutput(ctx, args...)
}

// dumpPodLogs logs the last lines of every container log on the node
// (kubelet's podLogsDir: <namespace>_<pod>_<uid>/<container>/<restart>.log).
func (n *Node) dumpPodLogs(t interface{ Logf(string, ...any) }) {
	files, _ := filepath.Glob(filepath.Join(n.Dir, "pod-logs", "*", "*", "*.log"))
	for _, f := range files {
		p := &process{name: f, log: f}
		rel, _ := filepath.Rel(filepath.Join(n.Dir, "pod-logs"), f)
		t.Logf("--- last lines of container log %s ---\n%s", rel, p.tail(15))
	}
}
