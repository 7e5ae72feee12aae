package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"
	"k8s.io/client-go/kubernetes"

	"github.com/meshshift/meshshift/bpf"
	"github.com/meshshift/meshshift/signals"
)

// Config configures Run.
type Config struct {
	// Node is this node's name (from the downward API).
	Node string
	// Listen is the address of /metrics, /snapshot and /healthz.
	Listen string
	// Interval between collections (1 s to 10 min).
	Interval time.Duration
	// CgroupRoot is the host's cgroup v2 mount as the agent sees it; empty
	// means the first cgroup2 mount in /proc/mounts (right on a host, wrong in
	// a container with its own cgroup namespace: mount the host's and name it).
	CgroupRoot string
	// MaxCgroups is bpf.Options.MaxCgroups.
	MaxCgroups int
	// Clientset, when set, names pods through a node-local informer and
	// labels the Node; without it every pod is unattributed.
	Clientset kubernetes.Interface
	Log       logr.Logger
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Node == "":
		return errors.New("node name: must not be empty (set it from spec.nodeName)")
	case c.Listen == "":
		return errors.New("listen address: must not be empty")
	case c.Interval < time.Second || c.Interval > 10*time.Minute:
		return fmt.Errorf("interval %v: allowed 1s to 10m", c.Interval)
	case c.MaxCgroups < 0 || c.MaxCgroups > 65536:
		return fmt.Errorf("max cgroups %d: allowed 0 (default %d) to 65536", c.MaxCgroups, bpf.DefaultMaxCgroups)
	}
	return nil
}

// Run probes and labels the node, loads and attaches the programs at the
// cgroup v2 root, and serves the figures until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := cfg.Log
	var err error
	caps := Probe()
	log.Info("probed kernel", "release", caps.Release, "level", caps.Level(), "btf", caps.BTF,
		"cgroup2", caps.Cgroup2, "sockops", caps.SockOps, "cgroupskb", caps.CgroupSKB, "tpbtf", caps.TPBTF, "tcx", caps.TCX, "programs", caps.Programs)
	if cfg.Clientset != nil {
		if err := LabelNode(ctx, cfg.Clientset, cfg.Node, caps); err != nil {
			log.Error(err, "cannot label node", "node", cfg.Node)
		}
	}
	if caps.Level() == signals.EBPFNone {
		return fmt.Errorf("kernel %s cannot run the agent: it needs BTF, cgroup v2, sock_ops and cgroup_skb, and its programs to pass the verifier (kernel 5.17 or later)", caps.Release)
	}
	mnt := cfg.CgroupRoot
	if mnt == "" {
		if mnt, err = bpf.Cgroup2Mount(); err != nil {
			return err
		}
	} else if mnt, err = cgroup2Under(mnt); err != nil {
		return err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
		log.Error(err, "cannot lift the memlock limit")
	}
	objs, err := bpf.Load(bpf.Options{MaxCgroups: cfg.MaxCgroups})
	if err != nil {
		return err
	}
	defer func() { _ = objs.Close() }()
	if _, err := objs.AttachCgroup(mnt); err != nil {
		return err
	}
	if err := objs.StartHTTP2(0); err != nil {
		return err
	}
	if caps.TPBTF {
		if _, err := objs.AttachTracing(); err != nil {
			return err
		}
	} else {
		log.Info("tp_btf unavailable: resets are not counted")
	}

	var pods PodResolver = StaticPods{}
	if cfg.Clientset != nil {
		ip, err := NewInformerPods(ctx, cfg.Clientset, cfg.Node)
		if err != nil {
			return err
		}
		pods = ip
	}
	col := NewCollector(objs, mnt, pods, nil)
	if _, err := col.Collect(); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{Handler: Handler(cfg.Node, col), ReadHeaderTimeout: 10 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	log.Info("agent serving", "address", ln.Addr().String(), "root", mnt, "node", cfg.Node)

	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(shutdownCtx)
		case err := <-srvErr:
			return fmt.Errorf("serve: %w", err)
		case <-t.C:
			if _, err := col.Collect(); err != nil {
				log.Error(err, "collection failed")
			}
		}
	}
}

// cgroup2Under returns root when it is a cgroup v2 file system, else its
// "unified" folder when that is one (the hybrid layout, where root is a tmpfs
// of v1 hierarchies).
func cgroup2Under(root string) (string, error) {
	for _, p := range []string{root, filepath.Join(root, "unified")} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p, nil
		}
	}
	return "", fmt.Errorf("cgroup root %s: neither it nor %s/unified is a cgroup v2 file system", root, root)
}
