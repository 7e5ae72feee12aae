package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshshift/meshshift/test/harness"
	"github.com/meshshift/meshshift/webhook"
)

// managerUser is the manager's identity (the migrator's username too).
const managerUser = "meshshift-manager"

// env is the control plane and what the bench knows of it.
type env struct {
	c      *harness.Cluster
	cl     client.Client
	scheme *runtime.Scheme
	// managerKubeconfig is the manager's kubeconfig file.
	managerKubeconfig string
	root              string
}

func newScheme() *runtime.Scheme {
	s := harness.NewScheme()
	utilruntime.Must(gatewayv1.Install(s))
	return s
}

// moduleDir is a Go module's folder in the module cache, as the build of
// this repository resolves it.
func moduleDir(ctx context.Context, root, mod string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", mod)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", mod, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func startCluster(ctx context.Context, nodes int) (*env, error) {
	log.SetLogger(logrDiscard())
	root, err := harness.RepoRoot()
	if err != nil {
		return nil, err
	}
	istio, err := moduleDir(ctx, root, "istio.io/api")
	if err != nil {
		return nil, err
	}
	gw, err := moduleDir(ctx, root, "sigs.k8s.io/gateway-api")
	if err != nil {
		return nil, err
	}
	e := &env{scheme: newScheme(), root: root}
	e.c, err = harness.StartE(ctx, harness.Options{
		CRDPaths: []string{
			filepath.Join(istio, "kubernetes", "customresourcedefinitions.gen.yaml"),
			filepath.Join(gw, "config", "crd", "standard"),
		},
		ControllerManager: true, Scheduler: true, KwokNodes: nodes, Scheme: e.scheme,
	})
	if err != nil {
		if e.c != nil {
			_ = e.c.Stop()
		}
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	cfg := rest.CopyConfig(e.c.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	if e.cl, err = client.New(cfg, client.Options{Scheme: e.scheme}); err != nil {
		e.stop()
		return nil, fmt.Errorf("build client: %w", err)
	}
	u, err := e.c.Env.AddUser(envtest.User{Name: managerUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		e.stop()
		return nil, fmt.Errorf("add manager user: %w", err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		e.stop()
		return nil, fmt.Errorf("write manager kubeconfig: %w", err)
	}
	e.managerKubeconfig = filepath.Join(e.c.Dir, "manager.kubeconfig")
	if err := writeFile(e.managerKubeconfig, kc); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

func (e *env) stop() {
	if err := e.c.Stop(); err != nil {
		fmt.Println("stop control plane:", err)
	}
}

// parallel runs f(0..n-1) on workers goroutines; the first error stops it.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return first
}

// create creates obj, retrying what a busy API server answers.
func (e *env) create(ctx context.Context, obj client.Object) error {
	for attempt := 0; ; attempt++ {
		err := e.cl.Create(ctx, obj)
		if err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		if attempt >= 5 || !(apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsInternalError(err)) {
			return fmt.Errorf("create %T %s/%s: %w", obj, obj.GetNamespace(), obj.GetName(), err)
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
}

// populateConfig creates meshshift's namespace, the namespaces, their
// Services, the mesh objects and the policies: everything but workloads.
func (e *env) populateConfig(ctx context.Context, l layout) error {
	if err := e.create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: webhook.DefaultNamespace}}); err != nil {
		return err
	}
	if err := e.create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: loadNamespace, Labels: map[string]string{"policy-group": "g00"}}}); err != nil {
		return err
	}
	const workers = 32
	if err := parallel(ctx, l.namespaces, workers, func(ctx context.Context, i int) error {
		if err := e.create(ctx, namespace(i, l.policies)); err != nil {
			return err
		}
		for _, s := range services(nsName(i)) {
			if err := e.create(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := parallel(ctx, l.meshObjects, workers, func(ctx context.Context, n int) error {
		return e.create(ctx, l.meshObject(n))
	}); err != nil {
		return err
	}
	return parallel(ctx, l.policies, workers, func(ctx context.Context, i int) error {
		return e.create(ctx, policy(i))
	})
}

// populateWorkloads creates every namespace's workloads; the controllers
// create their pods through the webhook.
func (e *env) populateWorkloads(ctx context.Context, l layout) error {
	return parallel(ctx, l.namespaces, 32, func(ctx context.Context, i int) error {
		for _, w := range workloads(nsName(i), fmt.Sprintf("kwok-node-%d", i%l.nodes())) {
			if err := e.create(ctx, w); err != nil {
				return err
			}
		}
		return nil
	})
}

// readyPods counts the pods the workloads' own status says are Ready (or,
// for Jobs, finished), over the given namespaces (all when nil).
func (e *env) readyPods(ctx context.Context, namespaces map[string]bool) (int, error) {
	var deps appsv1.DeploymentList
	var sts appsv1.StatefulSetList
	var jobs batchv1.JobList
	for _, list := range []client.ObjectList{&deps, &sts, &jobs} {
		if err := e.cl.List(ctx, list); err != nil {
			return 0, fmt.Errorf("list workloads: %w", err)
		}
	}
	in := func(ns string) bool { return namespaces == nil || namespaces[ns] }
	n := 0
	for _, d := range deps.Items {
		if in(d.Namespace) && d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == *d.Spec.Replicas {
			n += int(min(d.Status.ReadyReplicas, d.Status.UpdatedReplicas))
		}
	}
	for _, s := range sts.Items {
		if in(s.Namespace) && s.Status.ObservedGeneration == s.Generation && s.Status.UpdatedReplicas == *s.Spec.Replicas {
			n += int(min(s.Status.ReadyReplicas, s.Status.UpdatedReplicas))
		}
	}
	for _, j := range jobs.Items {
		if in(j.Namespace) {
			n += int(j.Status.Succeeded)
		}
	}
	return n, nil
}

// podCount counts the pods of the scale namespaces (metadata only).
func (e *env) podCount(ctx context.Context) (int, error) {
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := e.cl.List(ctx, &list); err != nil {
		return 0, fmt.Errorf("list pod metadata: %w", err)
	}
	n := 0
	for _, p := range list.Items {
		if strings.HasPrefix(p.Namespace, "scale-0") || strings.HasPrefix(p.Namespace, "scale-1") {
			n++
		}
	}
	return n, nil
}

// waitWorkloads waits until every pod exists (created through the webhook)
// and is Ready (a Job's has Succeeded): the waves are measured on a settled
// cluster, not behind kwok's backlog of starting pods.
func (e *env) waitWorkloads(ctx context.Context, l layout, lg func(string, ...any)) error {
	want := l.pods()
	last := time.Now()
	for {
		n, err := e.podCount(ctx)
		if err != nil {
			return err
		}
		r, err := e.readyPods(ctx, nil)
		if err != nil {
			return err
		}
		if n >= want && r >= want {
			return nil
		}
		if time.Since(last) > 20*time.Second {
			lg("pods created: %d of %d; Ready or Succeeded: %d", n, want, r)
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d pods (%d exist, %d Ready or Succeeded): %w", want, n, r, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}
