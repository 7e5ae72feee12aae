package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

	"github.com/meshshift/meshshift/api/v1alpha1"
)

type createResult struct{ ratio, labelRatio float64 }

// createVariants are the variants of the API server benchmark.
var createVariants = []variant{variantNoop, variantLabel, variantPolicy, variantMeshshift}

// rotations orders the variants differently in each round, so that drift in
// a shared machine's load hits all alike.
func rotations(rounds int) []variant {
	vs := createVariants
	var out []variant
	for i := 0; i < rounds; i++ {
		for j := range vs {
			out = append(out, vs[(i+j)%len(vs)])
		}
	}
	return out
}

// benchCreates times pod creates through the API server with each variant.
func benchCreates(ctx context.Context, e *env, c config) (createResult, error) {
	fmt.Printf("webhook bench (a): %d pods per round through the API server, %d workers, %d rounds per variant\n", c.pods, c.podWorkers, c.rounds)
	secs := map[variant][]float64{}
	cpuPerPod := map[variant]map[string][]float64{}
	for _, v := range createVariants {
		cpuPerPod[v] = map[string][]float64{}
	}
	// meshshift ÷ no-op, meshshift ÷ one-label, one-label ÷ no-op, policy ÷ no-op in each group of rounds
	var groups, labelGroups, labelNoop, policyNoop []float64
	for i, v := range rotations(c.rounds) {
		if err := e.install(ctx, v); err != nil {
			return createResult{}, err
		}
		var prof chan error
		if c.apiProfile != "" && i < len(createVariants) {
			prof = make(chan error, 1)
			go func() {
				prof <- e.profileAPIServer(ctx, filepath.Join(c.apiProfile, strings.TrimSpace(v.String())+".pprof"), 5)
			}()
		}
		cpu0 := readCPUShares()
		d, undecided, err := createRound(ctx, e, c, i)
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
		if v == variantMeshshift && undecided > 0 {
			return createResult{}, fmt.Errorf("%d pods admitted without a decision in a meshshift round", undecided)
		}
		secs[v] = append(secs[v], d.Seconds())
		fmt.Printf("  round %d %s %7.3fs  %5.2f ms/pod  cpu/pod: %s\n", i, v, d.Seconds(), d.Seconds()*1000/float64(c.pods), fmtCPU(cpu))
		if n := len(createVariants); i%n == n-1 { // rotations: each group of n rounds has one of each variant
			last := func(v variant) float64 { return secs[v][len(secs[v])-1] }
			groups = append(groups, last(variantMeshshift)/last(variantNoop))
			labelGroups = append(labelGroups, last(variantMeshshift)/last(variantLabel))
			labelNoop = append(labelNoop, last(variantLabel)/last(variantNoop))
			policyNoop = append(policyNoop, last(variantPolicy)/last(variantNoop))
		}
		// Every round starts from the same API server and etcd: pods piling
		// up round after round would slow the later rounds.
		if err := e.deletePods(ctx); err != nil {
			return createResult{}, err
		}
	}
	// As in (b): the ratio is the median of the groups' ratios, each group's
	// three rounds being close in time.
	noop, label, mesh := median(secs[variantNoop]), median(secs[variantLabel]), median(secs[variantMeshshift])
	r := createResult{ratio: median(groups), labelRatio: median(labelGroups)}
	fmt.Printf("  median    noop %.3fs  one-label %.3fs  policy %.3fs  meshshift %.3fs; meshshift / no-op of the medians %.3f\n",
		noop, label, median(secs[variantPolicy]), mesh, mesh/noop)
	fmt.Printf("  groups    %s  create_ratio (their median) %.3f (meshshift / no-op; goal <= 1.10)\n", fmtRatios(groups), r.ratio)
	fmt.Printf("  one-label/no-op %.3f  policy/no-op %.3f  meshshift/one-label %.3f (medians of the groups; policy: a MutatingAdmissionPolicy adds the label, no webhook patches)\n",
		median(labelNoop), median(policyNoop), r.labelRatio)
	// Where the time goes: the CPU per pod of each process (median of the
	// rounds). The webhook server and the pod creator run in webhookbench.
	total := map[variant]float64{}
	api := map[variant]float64{}
	for _, v := range createVariants {
		med := map[string]float64{}
		for name, xs := range cpuPerPod[v] {
			med[name] = median(xs)
			total[v] += med[name]
		}
		api[v] = med["kube-apiserver"]
		fmt.Printf("  cpu/pod   %s %s, total %.0fus\n", v, fmtCPU(med), total[v])
	}
	fmt.Printf("  cpu/pod   meshshift / no-op %.3f; the API server's extra per mutated pod: one-label +%.0fus, policy +%.0fus, meshshift +%.0fus\n",
		total[variantMeshshift]/total[variantNoop], api[variantLabel]-api[variantNoop], api[variantPolicy]-api[variantNoop], api[variantMeshshift]-api[variantNoop])
	return r, nil
}

func createRound(ctx context.Context, e *env, c config, round int) (time.Duration, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.roundTimeout)
	defer cancel()
	var next, undecided atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c.podWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(c.pods) {
				pod := benchPod("r" + strconv.Itoa(round) + "-")
				if err := e.cluster.Client.Create(ctx, pod); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				if _, ok := pod.Annotations[v1alpha1.AnnotationDecision]; !ok {
					undecided.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), undecided.Load(), firstErr
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

// deletePods deletes the bench namespace's pods (unscheduled: they go at
// once) and waits until none is left.
func (e *env) deletePods(ctx context.Context) error {
	cl := e.cluster.Client
	if err := cl.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(benchNamespace)); err != nil {
		return fmt.Errorf("delete the round's pods: %w", err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		var pods corev1.PodList
		if err := cl.List(ctx, &pods, client.InNamespace(benchNamespace), client.Limit(1)); err != nil {
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
