// Command scalebench measures meshshift's manager at fleet scale on a real
// control plane (test/harness: kube-apiserver, etcd, kube-controller-manager,
// kube-scheduler and kwok nodes, with Istio's and Gateway API's real CRDs):
//
//   - a cluster of -namespaces namespaces (default 1,000), ten pods each in
//     two Deployments, a StatefulSet and a Job, two Services each, Istio and
//     Gateway API objects of every kind meshshift reads (-mesh-objects, default
//     5,000) and -policies DataplanePolicies (default 20) with CEL rules. The
//     pods are created through meshshift's webhook (kube-controller-manager
//     creates them from templates bound to kwok nodes, kwok makes them
//     Ready, with 32 workers as kubelets on many nodes would); the run goes
//     on once every pod is Ready (a Job's Succeeded);
//   - the manager is the built binary (`meshshift manager`, webhook, migrator
//     and index, with the shipped GOGC and GOMEMLIMIT), started afresh on
//     that cluster: time from exec to the first decided pod (ready_s: its
//     informers synced), then its RSS and Go heap (after a forced collection)
//     and both per indexed object;
//   - bare pod creates through the API server, paced at -rate per second:
//     the achieved rate, the client's p99, and the p99 of the webhook's own
//     histograms (meshshift_webhook_decision_duration_seconds, and
//     controller-runtime's latency of the /mutate-v1-pod handler), beside
//     the same paced creates in a namespace the webhooks leave out (the API
//     server's own floor); then the same pods' AdmissionReviews posted to
//     the manager straight at -rate (direct_p99_ms: the decision's p99 at
//     the asked rate, which the API server alone may not reach);
//   - `meshshift plan --cluster` over the whole cluster (plan_s);
//   - a MeshMigration wave of -wave-namespaces namespaces (default 50, 500
//     pods) to ambient: from the flip to every pod Ready (wave_s), then a
//     second wave over as many other namespaces whose gate breaks (a real
//     Prometheus answering the SLI query with a constant over the limit):
//     from the breach to the rollback complete (rollback_s).
//
// -scale multiplies every count (0.1: 100 namespaces, 1,000 pods). The last
// line is
//
//	scale: rss_mib=… heap_mib=… ready_s=… p99_ms=… wave_s=… rollback_s=… plan_s=… direct_p99_ms=…
//
// -skip leaves out parts (load, plan, waves) while working on another; their
// figures print as skipped.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	scale          float64
	namespaces     int
	meshObjects    int
	policies       int
	waveNamespaces int
	rate           float64
	loadPods       int
	workers        int
	profileDir     string
	skip           string
	timeout        time.Duration
	settle         time.Duration
	out            io.Writer
}

// scaled is n × the scale, at least min.
func (c *config) scaled(n, min int) int {
	v := int(math.Round(float64(n) * c.scale))
	if v < min {
		return min
	}
	return v
}

func main() {
	c := config{out: os.Stdout}
	flag.Float64Var(&c.scale, "scale", 1, "multiplies every count below (0.1 for a quick check)")
	flag.IntVar(&c.namespaces, "namespaces", 1000, "namespaces, ten pods each (two Deployments, a StatefulSet, a Job)")
	flag.IntVar(&c.meshObjects, "mesh-objects", 5000, "Istio and Gateway API objects, spread over the namespaces")
	flag.IntVar(&c.policies, "policies", 20, "DataplanePolicies with rules, each selecting its share of the namespaces")
	flag.IntVar(&c.waveNamespaces, "wave-namespaces", 50, "namespaces of the migrated wave and of the breached one")
	flag.Float64Var(&c.rate, "rate", 1000, "pod creates per second of the webhook latency run (paced, open loop)")
	flag.IntVar(&c.loadPods, "load-pods", 5000, "pods created in the webhook latency run")
	flag.IntVar(&c.workers, "workers", 128, "concurrent creators of the webhook latency run")
	flag.StringVar(&c.profileDir, "profile-dir", "", "write the manager's heap (after sync) and CPU (during the latency run) profiles to this folder")
	flag.DurationVar(&c.timeout, "timeout", 40*time.Minute, "upper bound of the whole run")
	flag.DurationVar(&c.settle, "settle", 10*time.Second, "wait after the manager is ready before its memory is read (its first reconciles)")
	flag.StringVar(&c.skip, "skip", "", "comma-separated parts not to run while working on another: load, plan, waves (their figures print as skipped)")
	flag.Parse()
	os.Exit(runMain(c))
}

// runMain runs the bench, stopping (and removing what it started) when
// interrupted, and returns the exit code.
func runMain(c config) int {
	if c.scale <= 0 {
		fmt.Fprintln(os.Stderr, "scalebench: flag -scale must be above 0")
		return 2
	}
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sig, c.timeout)
	defer cancel()
	if _, err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "scalebench:", err)
		return 1
	}
	return 0
}

// result is what the last line reports.
type result struct {
	rssMiB, heapMiB, readyS, p99ms, waveS, rollbackS, planS float64
	// directP99ms is the decision's p99 at the asked rate without the API server.
	directP99ms float64
}

func (r result) String() string {
	return fmt.Sprintf("scale: rss_mib=%s heap_mib=%s ready_s=%s p99_ms=%s wave_s=%s rollback_s=%s plan_s=%s direct_p99_ms=%s",
		figure(r.rssMiB, 0), figure(r.heapMiB, 1), figure(r.readyS, 1), figure(r.p99ms, 2), figure(r.waveS, 1), figure(r.rollbackS, 1), figure(r.planS, 1), figure(r.directP99ms, 2))
}

// figure formats v with prec decimals; a part not run (NaN) is "skipped".
func figure(v float64, prec int) string {
	if math.IsNaN(v) {
		return "skipped"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// profile is the path of a profile named name in -profile-dir, "" without one.
func (c *config) profile(name string) string {
	if c.profileDir == "" {
		return ""
	}
	return filepath.Join(c.profileDir, name)
}

// skipped says whether -skip names part.
func (c *config) skipped(part string) bool {
	return slices.Contains(strings.Split(c.skip, ","), part)
}

func run(ctx context.Context, c config) (result, error) {
	var r result
	start := time.Now()
	lg := func(format string, args ...any) {
		fmt.Fprintf(c.out, "%6.1fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	layout := newLayout(&c)
	lg("layout: %d namespaces, %d pods in %d workloads, %d services, %d mesh objects, %d policies, waves of %d namespaces, %d kwok nodes",
		layout.namespaces, layout.pods(), layout.workloads(), layout.services(), layout.meshObjects, layout.policies, layout.waveNamespaces, layout.nodes())
	bin, err := buildManager(ctx)
	if err != nil {
		return r, err
	}
	defer func() { _ = os.RemoveAll(bin.dir) }()
	lg("built meshshift")
	env, err := startCluster(ctx, layout.nodes())
	if err != nil {
		return r, err
	}
	defer env.stop()
	lg("control plane up with %d kwok nodes", layout.nodes())
	prom, err := startPrometheus(ctx)
	if err != nil {
		return r, err
	}
	defer prom.stop()

	if err := env.populateConfig(ctx, layout); err != nil {
		return r, err
	}
	lg("created namespaces, services, mesh objects and policies")
	// The first manager decides the pods as the controllers create them.
	first, err := env.startManager(ctx, bin, "first")
	if err != nil {
		return r, err
	}
	if _, err := first.waitDecides(ctx, env); err != nil {
		first.stop()
		return r, err
	}
	t0 := time.Now()
	if err := env.populateWorkloads(ctx, layout); err != nil {
		first.stop()
		return r, err
	}
	lg("created %d workloads", layout.workloads())
	if err := env.waitWorkloads(ctx, layout, lg); err != nil {
		first.stop()
		return r, err
	}
	ready, err := env.readyPods(ctx, nil)
	if err != nil {
		first.stop()
		return r, err
	}
	lg("all %d pods created through the webhook by the controllers and %d Ready or Succeeded in %.1fs", layout.pods(), ready, time.Since(t0).Seconds())
	first.stop()

	// The measured manager starts on the full cluster.
	m, err := env.startManager(ctx, bin, "measured")
	if err != nil {
		return r, err
	}
	defer m.stop()
	took, err := m.waitDecides(ctx, env)
	if err != nil {
		return r, err
	}
	r.readyS = took.Seconds()
	lg("manager ready (first decided pod) %.2fs after exec", r.readyS)
	mem, err := m.memory(ctx, c.settle, c.profile("manager-heap.pprof"))
	if err != nil {
		return r, err
	}
	r.rssMiB, r.heapMiB = mem.rssMiB, mem.heapMiB
	indexed := layout.indexedObjects()
	lg("manager memory after sync: rss %.0f MiB, heap in use %.1f MiB after a forced collection (%.1f MiB before); %d indexed objects: %.1f KiB rss and %.2f KiB heap per object",
		mem.rssMiB, mem.heapMiB, mem.heapBeforeMiB, indexed, mem.rssMiB*1024/float64(indexed), mem.heapMiB*1024/float64(indexed))

	r.p99ms, r.planS, r.waveS, r.rollbackS, r.directP99ms = math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()
	if !c.skipped("load") {
		floor, err := env.apiFloor(ctx, c)
		if err != nil {
			return r, err
		}
		lg("api server floor (pods in %s, which the webhooks leave out): %d creates in %.1fs = %.0f/s achieved of %.0f/s asked (%d errors); client p50 %.1f ms p99 %.1f ms",
			floorNamespace, floor.created, floor.elapsed.Seconds(), floor.achieved, c.rate, floor.errors, floor.p50*1000, floor.p99*1000)
		lat, err := env.loadWebhook(ctx, m, layout, c)
		if err != nil {
			return r, err
		}
		r.p99ms = lat.decisionP99 * 1000
		lg("webhook under load: %d creates in %.1fs = %.0f/s achieved of %.0f/s asked (%d errors); client p50 %.1f ms p99 %.1f ms; server-side p99: decision %.2f ms, /mutate-v1-pod handler %.2f ms (%d reviews); rss %.0f MiB after",
			lat.created, lat.elapsed.Seconds(), lat.achieved, c.rate, lat.errors, lat.clientP50*1000, lat.clientP99*1000, lat.decisionP99*1000, lat.handlerP99*1000, lat.reviews, lat.rssAfterMiB)
		lg("load: achieved rate through the webhook / the floor's = %.2f; client p99 through the webhook / the floor's = %.2f", lat.achieved/floor.achieved, lat.clientP99/floor.p99)
		d, err := env.directWebhook(ctx, m, c)
		if err != nil {
			return r, err
		}
		r.directP99ms = d.decisionP99 * 1000
		lg("webhook direct (AdmissionReviews of the same pods posted to the manager, no API server): %d at %.0f/s asked, %.0f/s achieved (%d errors); client p50 %.2f ms p99 %.2f ms; server-side p99: decision %.2f ms, /mutate-v1-pod handler %.2f ms",
			d.sent, c.rate, d.achieved, d.errors, d.clientP50*1000, d.clientP99*1000, d.decisionP99*1000, d.handlerP99*1000)
	}

	if !c.skipped("plan") {
		plan, err := env.planCluster(ctx, bin)
		if err != nil {
			return r, err
		}
		r.planS = plan.Seconds()
		lg("plan --cluster over the whole cluster: %.2fs", r.planS)
	}

	if !c.skipped("waves") {
		w, err := env.runWaves(ctx, m, layout, prom.url, c.profileDir, lg)
		if err != nil {
			return r, err
		}
		r.waveS, r.rollbackS = w.flipToReady.Seconds(), w.breachToRolledBack.Seconds()
	}
	mem2, err := m.memory(ctx, c.settle, c.profile("manager-heap-end.pprof"))
	if err == nil {
		lg("manager memory at the end: rss %.0f MiB, heap in use %.1f MiB after a forced collection", mem2.rssMiB, mem2.heapMiB)
	}
	fmt.Fprintln(c.out, r.String())
	return r, nil
}
