package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

type createResult struct {
	ratio, labelRatio float64 // meshshift ÷ no-op, meshshift ÷ one-label
	// With istiod (NaN without): meshshift in front of istiod ÷ istiod
	// alone, for pods decided sidecar and for pods decided ambient.
	istiodRatio, ambientVsSidecar float64
}

// createVariants are the variants of the API server benchmark.
func createVariants(withIstiod bool) []variant {
	vs := []variant{variantNoop, variantLabel, variantPolicy, variantMeshshift}
	if withIstiod {
		vs = append(vs, variantIstiod, variantIstioLabel, variantIstioSidecar, variantIstioAmbient)
	}
	return vs
}

// rotations orders the variants differently in each round, so that drift in
// a shared machine's load hits all alike.
func rotations(vs []variant, rounds int) []variant {
	var out []variant
	for i := 0; i < rounds; i++ {
		for j := range vs {
			out = append(out, vs[(i+j)%len(vs)])
		}
	}
	return out
}

// groupRatio is a ratio of two variants' times, taken in every group of
// rounds (one round of each variant, close in time).
type groupRatio struct {
	name     string
	num, den variant
	goal     string
}

func groupRatios(withIstiod bool) []groupRatio {
	rs := []groupRatio{
		{"create_ratio", variantMeshshift, variantNoop, "meshshift / no-op; goal <= 1.10"},
		{"label_ratio", variantMeshshift, variantLabel, "meshshift / one-label webhook; goal <= 1.03"},
		{"one-label/no-op", variantLabel, variantNoop, "any labelling webhook"},
		{"policy/no-op", variantPolicy, variantNoop, "a MutatingAdmissionPolicy adds the label, no webhook patches"},
	}
	if withIstiod {
		rs = append(rs,
			groupRatio{"istiod_ratio", variantIstioSidecar, variantIstiod, "meshshift in front of istiod, pods decided sidecar / istiod alone; goal <= 1.05"},
			groupRatio{"ambient_vs_sidecar", variantIstioAmbient, variantIstiod, "meshshift in front of istiod, pods decided ambient / istiod alone injecting; goal <= 0.50"},
			groupRatio{"istiod/no-op", variantIstiod, variantNoop, "what istiod's injection costs a pod create"},
			groupRatio{"label+istiod/istiod", variantIstioLabel, variantIstiod, "the one-label webhook in front of istiod / istiod alone: any labelling webhook's floor"},
			groupRatio{"ms/label (istiod)", variantIstioSidecar, variantIstioLabel, "meshshift / one-label webhook, both in front of istiod"},
		)
	}
	return rs
}

// benchCreates times pod creates through the API server with each variant.
func benchCreates(ctx context.Context, e *env, c config) (createResult, error) {
	withIstiod := e.istiod != nil
	variants, err := pickVariants(createVariants(withIstiod), c.variants)
	if err != nil {
		return createResult{}, err
	}
	var ratios []groupRatio
	for _, r := range groupRatios(withIstiod) {
		if slices.Contains(variants, r.num) && slices.Contains(variants, r.den) {
			ratios = append(ratios, r)
		}
	}
	fmt.Printf("webhook bench (a): %d pods per round through the API server, %d workers, %d rounds per variant, %d variants\n",
		c.pods, c.podWorkers, c.rounds, len(variants))
	secs := map[variant][]float64{}
	cpuPerPod := map[variant]map[string][]float64{}
	for _, v := range variants {
		cpuPerPod[v] = map[string][]float64{}
	}
	groups := make([][]float64, len(ratios)) // each ratio's value in each group of rounds
	for i, v := range rotations(variants, c.rounds) {
		if err := e.install(ctx, v); err != nil {
			return createResult{}, err
		}
		var prof chan error
		if c.apiProfile != "" && i < len(variants) {
			prof = make(chan error, 1)
			go func() {
				prof <- e.profileAPIServer(ctx, filepath.Join(c.apiProfile, strings.TrimSpace(v.String())+".pprof"), c.apiProfileSecs)
			}()
		}
		cpu0 := readCPUShares()
		d, wrong, err := createRound(ctx, e, c, v, i)
		if err != nil {
			return createResult{}, err
		}
		cpu := perPod(cpu0, readCPUShares(), c.pods)
		for name, us := range cpu {
			cpuPerPod[v][name] = append(cpuPerPod[v][name], us)
		}
		if prof != nil {
			if err := <-prof; err != nil {
				return createResult{}, err
			}
		}
		// The shipped configuration fails open (Ignore, 2 s timeout): on an
		// overloaded machine a call can time out and its pod is admitted
		// undecided (and then injected by istiod in an injection-enabled
		// namespace). A few are counted; more means the round measured
		// something else.
		if wrong > 0 {
			msg := fmt.Sprintf("%d of %d pods of a %s round admitted without the decision %q or with the wrong injection (istio-proxy wanted: %v)",
				wrong, c.pods, strings.TrimSpace(v.String()), v.decision(), v.injected())
			if wrong*100 > int64(c.pods) {
				return createResult{}, errors.New(msg)
			}
			fmt.Println("  warning:", msg)
		}
		secs[v] = append(secs[v], d.Seconds())
		fmt.Printf("  round %2d %-17s %7.3fs  %5.2f ms/pod  cpu/pod: %s\n", i, v, d.Seconds(), d.Seconds()*1000/float64(c.pods), fmtCPU(cpu))
		if n := len(variants); i%n == n-1 { // rotations: each group of n rounds has one of each variant
			last := func(v variant) float64 { return secs[v][len(secs[v])-1] }
			for k, r := range ratios {
				groups[k] = append(groups[k], last(r.num)/last(r.den))
			}
		}
		// Every round starts from the same API server and etcd: pods piling
		// up round after round would slow the later rounds.
		if err := e.deletePods(ctx, v.namespace()); err != nil {
			return createResult{}, err
		}
	}
	// As in (b): each ratio is the median of the groups' ratios, each
	// group's rounds being close in time.
	var b strings.Builder
	for _, v := range variants {
		fmt.Fprintf(&b, " %s %.3fs", strings.TrimSpace(v.String()), median(secs[v]))
	}
	fmt.Printf("  median   %s\n", b.String())
	got := map[string]float64{}
	for k, r := range ratios {
		got[r.name] = median(groups[k])
		fmt.Printf("  groups    %-18s %s  median %.3f (%s)\n", r.name, fmtRatios(groups[k]), got[r.name], r.goal)
	}
	ratio := func(name string) float64 {
		if x, ok := got[name]; ok {
			return x
		}
		return math.NaN()
	}
	res := createResult{ratio: ratio("create_ratio"), labelRatio: ratio("label_ratio"),
		istiodRatio: ratio("istiod_ratio"), ambientVsSidecar: ratio("ambient_vs_sidecar")}
	// Where the time goes: the CPU per pod of each process (median of the
	// rounds). The webhook server and the pod creator run in webhookbench.
	total := map[variant]float64{}
	api := map[variant]float64{}
	for _, v := range variants {
		med := map[string]float64{}
		for name, xs := range cpuPerPod[v] {
			med[name] = median(xs)
			total[v] += med[name]
		}
		api[v] = med["kube-apiserver"]
		fmt.Printf("  cpu/pod   %-17s %s, total %.0fus\n", v, fmtCPU(med), total[v])
	}
	// Each variant's CPU against a base variant's: total and the API server's.
	for _, d := range []struct{ v, base variant }{
		{variantLabel, variantNoop}, {variantPolicy, variantNoop}, {variantMeshshift, variantNoop},
		{variantIstioLabel, variantIstiod}, {variantIstioSidecar, variantIstiod}, {variantIstioAmbient, variantIstiod},
	} {
		if total[d.v] == 0 || total[d.base] == 0 {
			continue
		}
		fmt.Printf("  cpu/pod   %-17s / %-9s total %.3f (%+.0fus), kube-apiserver %+.0fus\n", strings.TrimSpace(d.v.String()), strings.TrimSpace(d.base.String()),
			total[d.v]/total[d.base], total[d.v]-total[d.base], api[d.v]-api[d.base])
	}
	return res, nil
}

// createRound creates c.pods pods for variant v and counts those that came
// back without v's decision or with the wrong injection.
func createRound(ctx context.Context, e *env, c config, v variant, round int) (time.Duration, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.roundTimeout)
	defer cancel()
	var next, wrong atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c.podWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(c.pods) {
				pod := benchPod(v.namespace(), "r"+strconv.Itoa(round)+"-")
				if err := e.cluster.Client.Create(ctx, pod); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				if decidedMode(pod) != v.decision() || hasIstioProxy(pod) != v.injected() {
					wrong.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), wrong.Load(), firstErr
}

// profileAPIServer writes the API server's CPU profile over the next secs
// seconds to path (the create round must last at least that long).
func (e *env) profileAPIServer(ctx context.Context, path string, secs int) error {
	rc, err := rest.RESTClientFor(e.profileConfig())
	if err != nil {
		return fmt.Errorf("api server profile client: %w", err)
	}
	b, err := rc.Get().AbsPath("/debug/pprof/profile").Param("seconds", strconv.Itoa(secs)).
		Timeout(time.Duration(secs+30) * time.Second).DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("api server profile: %w", err)
	}
	return os.WriteFile(path, b, 0o644)
}

func (e *env) profileConfig() *rest.Config {
	cfg := rest.CopyConfig(e.cluster.Config)
	cfg.GroupVersion = &schema.GroupVersion{}
	cfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	return cfg
}

// deletePods deletes the namespace's pods (unscheduled: they go at once)
// and waits until none is left.
func (e *env) deletePods(ctx context.Context, ns string) error {
	cl := e.cluster.Client
	if err := cl.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("delete the round's pods: %w", err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		var pods corev1.PodList
		if err := cl.List(ctx, &pods, client.InNamespace(ns), client.Limit(1)); err != nil {
			return fmt.Errorf("list the round's pods: %w", err)
		}
		if len(pods.Items) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the round's pods were not deleted within 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pickVariants keeps the variants named in the comma-separated list (all
// when it is empty).
func pickVariants(all []variant, list string) ([]variant, error) {
	if list == "" {
		return all, nil
	}
	var out []variant
	for _, name := range strings.Split(list, ",") {
		i := slices.IndexFunc(all, func(v variant) bool { return strings.TrimSpace(v.String()) == strings.TrimSpace(name) })
		if i < 0 {
			var names []string
			for _, v := range all {
				names = append(names, strings.TrimSpace(v.String()))
			}
			return nil, fmt.Errorf("flag -variants: %q is not one of %s", name, strings.Join(names, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}
