package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshshift/meshshift/test/harness"
)

func logrDiscard() logr.Logger { return logr.Discard() }

// scrape reads the manager's metrics.
func (m *manager) scrape(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	b, err := get(ctx, m.metricsURL)
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parse manager metrics: %w", err)
	}
	return fams, nil
}

func (m *manager) gauge(ctx context.Context, name string) (float64, error) {
	fams, err := m.scrape(ctx)
	if err != nil {
		return 0, err
	}
	f, ok := fams[name]
	if !ok || len(f.Metric) == 0 {
		return 0, fmt.Errorf("manager metrics have no %s", name)
	}
	return f.Metric[0].GetGauge().GetValue(), nil
}

// histogram is the cumulative buckets of one series (upper bound → count).
type histogram struct {
	bounds []float64
	counts []float64
	total  float64
}

// findHistogram is the series of name whose labels include want.
func findHistogram(fams map[string]*dto.MetricFamily, name string, want map[string]string) histogram {
	var h histogram
	f, ok := fams[name]
	if !ok {
		return h
	}
next:
	for _, m := range f.Metric {
		for k, v := range want {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		for _, b := range m.GetHistogram().GetBucket() {
			h.bounds = append(h.bounds, b.GetUpperBound())
			h.counts = append(h.counts, float64(b.GetCumulativeCount()))
		}
		h.total = float64(m.GetHistogram().GetSampleCount())
		return h
	}
	return h
}

// minus is h − before, bucket by bucket (the same buckets).
func (h histogram) minus(before histogram) histogram {
	out := histogram{bounds: h.bounds, counts: slices.Clone(h.counts), total: h.total - before.total}
	for i := range out.counts {
		if i < len(before.counts) {
			out.counts[i] -= before.counts[i]
		}
	}
	return out
}

// quantile interpolates linearly inside the bucket holding q (as
// Prometheus' histogram_quantile does); past the last finite bound it is
// that bound.
func (h histogram) quantile(q float64) float64 {
	if h.total <= 0 || len(h.bounds) == 0 {
		return math.NaN()
	}
	rank := q * h.total
	lower, below := 0.0, 0.0
	for i, b := range h.bounds {
		if h.counts[i] >= rank {
			if math.IsInf(b, 1) {
				return lower
			}
			in := h.counts[i] - below
			if in <= 0 {
				return b
			}
			return lower + (b-lower)*(rank-below)/in
		}
		lower, below = b, h.counts[i]
	}
	return lower
}

const (
	decisionHistogram = "meshshift_webhook_decision_duration_seconds"
	handlerHistogram  = "controller_runtime_webhook_latency_seconds"
)

type latency struct {
	created, errors, reviews       int
	elapsed                        time.Duration
	achieved                       float64
	clientP50, clientP99           float64
	decisionP99, handlerP99        float64
	rssAfterMiB                    float64
	decisionP50, decisionMeanMicro float64
}

// paced is one paced run: created counts the calls that succeeded.
type paced struct {
	created, errors int
	elapsed         time.Duration
	achieved        float64
	p50, p99        float64
}

// paceCreates creates n load pods in namespace at c.rate with c.workers
// creators (pace), and reads the client-side latencies.
func (e *env) paceCreates(ctx context.Context, namespace string, n int, c config) (paced, error) {
	out, err := pace(ctx, n, c.rate, c.workers, func(int) error {
		p := loadPod()
		p.Namespace = namespace
		return e.cl.Create(ctx, p)
	})
	if err != nil {
		return out, fmt.Errorf("no load pod created in %s: %w", namespace, err)
	}
	return out, nil
}

// pace calls do(0..n-1) at rate per second, open loop (a call that falls
// behind is not waited for by the pacer), with at most workers calls in
// flight, and reads the latencies of the calls that succeeded. It fails,
// with the first error, only when none did.
func pace(ctx context.Context, n int, rate float64, workers int, do func(i int) error) (paced, error) {
	var out paced
	tokens := make(chan int, n)
	go func() {
		defer close(tokens)
		start := time.Now()
		for i := range n {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
			tokens <- i
		}
	}()
	var mu sync.Mutex
	lat := make([]float64, 0, n)
	var firstErr error
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tokens {
				t := time.Now()
				err := do(i)
				d := time.Since(t).Seconds()
				mu.Lock()
				if err != nil {
					out.errors++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					out.created++
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	if out.created == 0 {
		if firstErr == nil {
			firstErr = ctx.Err()
		}
		return out, firstErr
	}
	out.achieved = float64(out.created) / out.elapsed.Seconds()
	slices.Sort(lat)
	out.p50 = lat[len(lat)/2]
	out.p99 = lat[min(len(lat)-1, int(float64(len(lat))*0.99))]
	return out, nil
}

// floorNamespace is a namespace the webhook configurations leave out
// (their namespaceSelector): its pod creates never call meshshift.
const floorNamespace = "kube-public"

// apiFloor is the same paced run in floorNamespace: what the API server
// achieves with no webhook call at all, in the same run.
func (e *env) apiFloor(ctx context.Context, c config) (paced, error) {
	run, err := e.paceCreates(ctx, floorNamespace, c.scaled(c.loadPods, 50), c)
	if derr := e.deleteLoadPods(ctx, floorNamespace); derr != nil && err == nil {
		err = derr
	}
	return run, err
}

// deleteLoadPods deletes the load pods of namespace and waits until none is
// left: a delete of thousands can fail part way on a busy API server, and
// pods left behind would be in every later figure (the caches, plan).
func (e *env) deleteLoadPods(ctx context.Context, namespace string) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		derr := e.cl.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(namespace), client.MatchingLabels{"load": "true"})
		var left metav1.PartialObjectMetadataList
		left.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
		if err := e.cl.List(ctx, &left, client.InNamespace(namespace), client.MatchingLabels{"load": "true"}); err != nil {
			return fmt.Errorf("list load pods in %s: %w", namespace, err)
		}
		if len(left.Items) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d load pods left in %s after 3m (last delete: %v)", len(left.Items), namespace, derr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// loadPod is a Deployment-shaped bare pod (no owner: each is a workload of
// its own, decided afresh, the costliest path), with a scheduler nobody runs
// so that it stays Pending and costs the scheduler and kwok nothing.
func loadPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "load-", Namespace: loadNamespace,
			Labels: map[string]string{"app": "checkout", "app.kubernetes.io/name": "checkout", "app.kubernetes.io/part-of": "shop",
				"app.kubernetes.io/version": "1.42.0", "team": "payments", "tier": "backend", "version": "v1", "load": "true"},
			Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}},
		Spec: corev1.PodSpec{
			SchedulerName:                 "scalebench-unscheduled",
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers: []corev1.Container{
				{Name: "app", Image: "registry.example/shop/checkout:1.42.0", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					Env: []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}}},
				{Name: "log-shipper", Image: "registry.example/infra/shipper:3.1"},
			},
		},
	}
}

// loadWebhook creates pods paced at c.rate (open loop: a creator that falls
// behind is not waited for by the pacer) and reads the webhook's own
// histograms before and after.
func (e *env) loadWebhook(ctx context.Context, m *manager, l layout, c config) (latency, error) {
	var out latency
	n := c.scaled(c.loadPods, 50)
	before, err := m.scrape(ctx)
	if err != nil {
		return out, err
	}
	wantHandler := map[string]string{"webhook": "/mutate-v1-pod"}
	var profErr error
	var profWG sync.WaitGroup
	if c.profileDir != "" {
		secs := int(math.Ceil(float64(n)/c.rate)) + 2
		profWG.Add(1)
		go func() {
			defer profWG.Done()
			b, err := get(ctx, fmt.Sprintf("%s/profile?seconds=%d", m.pprofURL, secs))
			if err == nil {
				err = writeFile(filepath.Join(c.profileDir, "manager-cpu.pprof"), b)
			}
			profErr = err
		}()
	}
	run, err := e.paceCreates(ctx, loadNamespace, n, c)
	out.created, out.errors, out.elapsed, out.achieved, out.clientP50, out.clientP99 = run.created, run.errors, run.elapsed, run.achieved, run.p50, run.p99
	profWG.Wait()
	if err != nil {
		return out, err
	}
	if profErr != nil {
		return out, profErr
	}
	after, err := m.scrape(ctx)
	if err != nil {
		return out, err
	}
	dec := findHistogram(after, decisionHistogram, nil).minus(findHistogram(before, decisionHistogram, nil))
	hdl := findHistogram(after, handlerHistogram, wantHandler).minus(findHistogram(before, handlerHistogram, wantHandler))
	out.decisionP99, out.decisionP50, out.handlerP99 = dec.quantile(0.99), dec.quantile(0.5), hdl.quantile(0.99)
	out.reviews = int(hdl.total)
	if out.rssAfterMiB, err = m.rssMiB(); err != nil {
		return out, err
	}
	// The load pods never run: left behind by a busy API server's timeout,
	// they only stay in the caches.
	if err := e.deleteLoadPods(ctx, loadNamespace); err != nil {
		return out, err
	}
	return out, nil
}

// planCluster times `meshshift plan --cluster` over every namespace.
func (e *env) planCluster(ctx context.Context, b binary) (time.Duration, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, b.path, "plan", "--cluster", "--kubeconfig="+e.c.Kubeconfig, "--target=ambient", "-o", "json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		// Exit code 3 (objects skipped) still planned the rest.
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			return 0, fmt.Errorf("plan --cluster: %w\n%s", err, tail(stderr.String(), 20))
		}
	}
	if !strings.Contains(stdout.String(), nsName(0)) {
		return 0, fmt.Errorf("plan --cluster printed no plan for %s:\n%s", nsName(0), tail(stderr.String(), 20))
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		// (Not ru.Maxrss: a child's counts the bench's own memory at the fork.)
		fmt.Printf("        plan --cluster: %d bytes of JSON, cpu %.1fs\n",
			stdout.Len(), time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds())
	}
	return d, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// prometheus is a real Prometheus evaluating the gate's PromQL.
type prometheus struct {
	url  string
	cmd  *exec.Cmd
	dir  string
	done chan struct{}
}

// startPrometheus starts Debian's prometheus on 127.0.0.1 with nothing to
// scrape: the gate's SLI queries are constant expressions it evaluates.
func startPrometheus(ctx context.Context) (*prometheus, error) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		return nil, fmt.Errorf("prometheus binary not found (make deps installs it): %w", err)
	}
	dir, err := os.MkdirTemp("", "meshshift-scalebench-prom-")
	if err != nil {
		return nil, fmt.Errorf("create prometheus folder: %w", err)
	}
	port, err := harness.FreePort()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := writeFile(cfg, []byte("global:\n  evaluation_interval: 1s\n")); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	p := &prometheus{url: fmt.Sprintf("http://127.0.0.1:%d", port), dir: dir, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := get(ctx, p.url+"/-/ready"); err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("prometheus exited")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("prometheus not ready after 30s")
		}
	}
}

func (p *prometheus) stop() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	_ = os.RemoveAll(p.dir)
}
