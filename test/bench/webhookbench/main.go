// Command webhookbench measures meshshift's admission webhook against a no-op
// webhook served by the same stack (same manager, TLS, certificates and
// configuration shape), in one run:
//
//	(a) pod creates through a real API server (test/harness): the shipped
//	    configurations pointed at meshshift's handlers vs the same
//	    configurations pointed at no-op handlers, at a webhook adding one
//	    label, and a MutatingAdmissionPolicy adding it, in rotating rounds;
//	    create_ratio = meshshift time ÷ no-op time, label_ratio = meshshift
//	    time ÷ one-label time. With -istiod (the default) the real Istio
//	    sidecar injector (pilot-discovery from the istio asset) runs too, and
//	    three more variants join the rotation: istiod alone injecting its
//	    sidecar; the one-label webhook in front of it (the floor of any
//	    labelling webhook there); meshshift in front of istiod with pods it
//	    decides sidecar (do no harm in an istio-injection=enabled
//	    namespace); and with pods it decides ambient (a namespace annotated
//	    meshshift.io/mode=ambient: the labels meshshift writes keep istiod's
//	    injector from being called). istiod_ratio = sidecar ÷ istiod alone,
//	    ambient_vs_sidecar = ambient ÷ istiod alone. Every created pod is
//	    checked for the variant's decision and injection.
//	(b) AdmissionReviews sent straight to the webhook server over HTTPS on
//	    127.0.0.1 by a Go load generator (closed loop, fixed concurrency),
//	    meshshift's pod mutator vs a no-op handler, alternating rounds;
//	    direct_ratio = meshshift throughput ÷ no-op throughput. Then meshshift
//	    alone, paced (open loop) at -rate reviews/s: p99 and rps (achieved) are
//	    from that run, the goal being p99 <= 5 ms at >= 3,000 reviews/s.
//
// The process runs with the shipped manager's garbage collector settings
// (GOGC and GOMEMLIMIT of config/manager/manager.yaml). Every phase is
// bounded in count and time. The last line is
//
//	webhook: create_ratio=<x> label_ratio=<l> istiod_ratio=<i> ambient_vs_sidecar=<a> direct_ratio=<y> p99_ms=<z> rps=<n>
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime/pprof"
	"time"
)

type config struct {
	rounds         int
	directRounds   int
	freshRounds    int
	pods           int
	podWorkers     int
	reviews        int
	concurrency    int
	roundTimeout   time.Duration
	rate           float64
	pacedFor       time.Duration
	cpuProfile     string
	skipCreates    bool
	skipDirect     bool
	apiProfile     string
	dumpReview     string
	istiod         bool
	createCPU      string
	variants       string
	apiProfileSecs int
}

func main() {
	var c config
	flag.IntVar(&c.rounds, "rounds", 4, "rounds per variant of the API server benchmark (a), the variants rotating")
	flag.IntVar(&c.directRounds, "direct-rounds", 20, "rounds per variant of the direct benchmark (b), alternating ABBA; many short rounds keep the pairs close in time")
	flag.IntVar(&c.pods, "pods", 200, "pods created per round through the API server")
	flag.IntVar(&c.podWorkers, "pod-workers", 8, "concurrent pod creators")
	flag.IntVar(&c.reviews, "reviews", 3000, "AdmissionReviews per round sent straight to the server")
	flag.IntVar(&c.freshRounds, "fresh-rounds", 8, "pairs of rounds of the direct benchmark with every review from a workload of its own (decided afresh); printed for information, 0 skips them")
	flag.IntVar(&c.concurrency, "concurrency", 8, "concurrent review senders")
	flag.DurationVar(&c.roundTimeout, "round-timeout", 60*time.Second, "upper bound of one round")
	flag.Float64Var(&c.rate, "rate", 3030, "reviews per second of the paced run that measures p99 (1% over the goal's 3,000: the achieved rate counts the last answers' wait)")
	flag.DurationVar(&c.pacedFor, "paced-for", 5*time.Second, "length of the paced run")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the direct benchmark (b) to this file")
	flag.BoolVar(&c.skipCreates, "skip-creates", false, "skip benchmark (a); the last line then reports create_ratio=NaN")
	flag.BoolVar(&c.skipDirect, "skip-direct", false, "skip benchmark (b); the last line then reports direct_ratio=NaN")
	flag.StringVar(&c.dumpReview, "dump-review", "", "also write the AdmissionReview the API server sent for the bench pod (what benchmark (b) replays) to this file")
	flag.BoolVar(&c.istiod, "istiod", true, "run the real istiod (the istio asset) and measure meshshift in front of its sidecar injector; false: istiod_ratio and ambient_vs_sidecar are NaN")
	flag.StringVar(&c.createCPU, "create-cpuprofile", "", "write a CPU profile of this process (webhook server and pod creators) during benchmark (a) to this file")
	flag.StringVar(&c.variants, "variants", "", "comma-separated variants of benchmark (a) to run (names as printed); empty: all")
	flag.IntVar(&c.apiProfileSecs, "apiserver-profile-seconds", 5, "length of each API server profile (-apiserver-profile); the round must last as long")
	flag.StringVar(&c.apiProfile, "apiserver-profile", "", "write the API server's CPU profile of each variant's first create round to this folder (<variant>.pprof)")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "webhookbench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	gc, err := shippedGC()
	if err != nil {
		return err
	}
	fmt.Println("webhook bench: garbage collector:", gc)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	env, err := startEnv(ctx, c.istiod && !c.skipCreates)
	if err != nil {
		return err
	}
	defer env.stop()

	create := createResult{ratio: math.NaN(), labelRatio: math.NaN(), istiodRatio: math.NaN(), ambientVsSidecar: math.NaN()}
	if !c.skipCreates {
		stop, err := startProfile(c.createCPU)
		if err != nil {
			return err
		}
		create, err = benchCreates(ctx, env, c)
		stop()
		if err != nil {
			return fmt.Errorf("api server benchmark: %w", err)
		}
	}
	stop, err := startProfile(c.cpuProfile)
	if err != nil {
		return err
	}
	defer stop()
	direct := directResult{ratio: math.NaN(), rps: math.NaN(), p99: -1}
	if !c.skipDirect {
		if direct, err = benchDirect(ctx, env, c); err != nil {
			return fmt.Errorf("direct benchmark: %w", err)
		}
	}
	fmt.Printf("webhook: create_ratio=%.3f label_ratio=%.3f istiod_ratio=%.3f ambient_vs_sidecar=%.3f direct_ratio=%.3f p99_ms=%.2f rps=%.0f\n",
		create.ratio, create.labelRatio, create.istiodRatio, create.ambientVsSidecar, direct.ratio, direct.p99.Seconds()*1000, direct.rps)
	return nil
}

// startProfile starts a CPU profile of this process into path ("" does
// nothing); the returned function stops it.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}
