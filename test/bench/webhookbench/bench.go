package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/webhook"
)

// abba is the order of the variants: noop first, then alternating pairs, so
// that drift in a shared machine's load hits both alike.
func abba(rounds int) []bool {
	out := make([]bool, 0, 2*rounds)
	for i := 0; i < rounds; i++ {
		if i%2 == 0 {
			out = append(out, true, false)
		} else {
			out = append(out, false, true)
		}
	}
	return out
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func name(noop bool) string {
	if noop {
		return "noop     "
	}
	return "meshshift"
}

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

type directResult struct {
	ratio, rps float64
	p99        time.Duration
}

// benchDirect sends reviews straight to the server with each variant.
func benchDirect(ctx context.Context, e *env, c config) (directResult, error) {
	body, err := e.apiServerReview(ctx)
	if err != nil {
		return directResult{}, err
	}
	if c.dumpReview != "" {
		var out bytes.Buffer
		if err := json.Indent(&out, body, "", "  "); err != nil {
			return directResult{}, fmt.Errorf("indent review: %w", err)
		}
		if err := os.WriteFile(c.dumpReview, append(out.Bytes(), '\n'), 0o644); err != nil {
			return directResult{}, fmt.Errorf("write review: %w", err)
		}
	}
	tr := &http.Transport{TLSClientConfig: e.tls, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: c.concurrency}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	base := "https://127.0.0.1:" + strconv.Itoa(e.port)
	fmt.Printf("webhook bench (b): %d AdmissionReviews (%d bytes, as the API server sent it for the bench pod) per round over HTTPS on 127.0.0.1, %d concurrent, %d rounds per variant\n",
		c.reviews, len(body), c.concurrency, c.directRounds)
	// Wait for the webhook's caches (a decided answer), then warm up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := reviewRound(ctx, hc, base+webhook.PathMutatePod, body, config{concurrency: 1, roundTimeout: c.roundTimeout}, 1, true)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return directResult{}, fmt.Errorf("webhook never decided: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, path := range []string{pathNoopMutate, webhook.PathMutatePod} {
		if _, err := reviewRound(ctx, hc, base+path, body, c, 500, path == webhook.PathMutatePod); err != nil {
			return directResult{}, err
		}
	}
	rps := map[bool][]float64{}
	var pairs []float64     // meshshift ÷ no-op of each pair of adjacent rounds
	var lat []time.Duration // meshshift's, closed loop
	for i, noop := range abba(c.directRounds) {
		path := webhook.PathMutatePod
		if noop {
			path = pathNoopMutate
		}
		cpu0 := cpuTime()
		r, err := reviewRound(ctx, hc, base+path, body, c, c.reviews, !noop)
		cpuPer := (cpuTime() - cpu0) / time.Duration(c.reviews)
		if err != nil {
			return directResult{}, err
		}
		rps[noop] = append(rps[noop], r.rps)
		if !noop {
			lat = append(lat, r.lat...)
		}
		if i%2 == 1 { // abba: rounds 2k and 2k+1 are one of each
			pairs = append(pairs, rps[false][len(rps[false])-1]/rps[true][len(rps[true])-1])
		}
		fmt.Printf("  round %d %s %8.0f reviews/s  p50 %.2f ms  p99 %.2f ms  cpu %.0f us/review (server and load generator)\n",
			i, name(noop), r.rps, ms(pct(r.lat, 50)), ms(pct(r.lat, 99)), float64(cpuPer.Nanoseconds())/1000)
	}
	// The ratio is the median of the pairs' ratios: two adjacent rounds share
	// the machine's load of the moment, which on a shared VM drifts by more
	// than the difference measured.
	out := directResult{ratio: median(pairs)}
	fmt.Printf("  median    noop %.0f reviews/s  meshshift %.0f reviews/s (closed loop, p99 %.2f ms); their ratio %.3f\n",
		median(rps[true]), median(rps[false]), ms(pct(lat, 99)), median(rps[false])/median(rps[true]))
	fmt.Printf("  pairs     %s  direct_ratio (their median) %.3f (goal >= 0.90)\n", fmtRatios(pairs), out.ratio)
	if c.freshRounds > 0 {
		if err := benchFresh(ctx, hc, base, body, c); err != nil {
			return directResult{}, err
		}
	}
	// The latency goal is at a rate: send at c.rate, open loop (a slow answer
	// does not slow the sending). Latency is from each request's send; on a
	// shared machine the sender itself is descheduled at times, and counting
	// from the schedule would charge that to the webhook.
	n := int(c.rate * c.pacedFor.Seconds())
	paced, err := pacedRound(ctx, hc, base+webhook.PathMutatePod, body, c, n)
	if err != nil {
		return directResult{}, err
	}
	out.rps, out.p99 = paced.rps, pct(paced.lat, 99)
	fmt.Printf("  paced     meshshift %d reviews at %.0f/s: achieved %.0f/s  p50 %.2f ms  p99 %.2f ms  max %.2f ms (goal p99 <= 5 ms at >= 3000/s)\n",
		n, c.rate, out.rps, ms(pct(paced.lat, 50)), ms(out.p99), ms(pct(paced.lat, 100)))
	return out, nil
}

// benchFresh is the direct benchmark with every review from a workload of
// its own (the owner's name made unique), so that every one is decided
// afresh: the first pod of each workload. For information: the goal's review
// is the API server's one pod, whose workload's later pods are answered
// from the remembered answer.
func benchFresh(ctx context.Context, hc *http.Client, base string, body []byte, c config) error {
	owner := []byte(`"name":"` + benchOwner + `"`)
	if bytes.Count(body, owner) != 1 {
		return fmt.Errorf("the review names owner %s %d times, want once", benchOwner, bytes.Count(body, owner))
	}
	var pairs []float64
	for pair := 0; pair < c.freshRounds; pair++ {
		bodies := make([][]byte, c.reviews)
		for i := range bodies {
			unique := []byte(fmt.Sprintf(`"name":"%s-%d-%d"`, benchOwner, pair, i))
			bodies[i] = bytes.Replace(body, owner, unique, 1)
		}
		var mesh, noop float64
		order := []bool{true, false} // alternating which goes first
		if pair%2 == 1 {
			order = []bool{false, true}
		}
		for _, isNoop := range order {
			path := webhook.PathMutatePod
			if isNoop {
				path = pathNoopMutate
			}
			r, err := reviewRoundOf(ctx, hc, base+path, bodies, c, c.reviews, !isNoop)
			if err != nil {
				return err
			}
			if isNoop {
				noop = r.rps
			} else {
				mesh = r.rps
			}
		}
		pairs = append(pairs, mesh/noop)
	}
	fmt.Printf("  fresh     every review a workload of its own (decided afresh, no remembered answer): pairs %s  median %.3f (for information)\n",
		fmtRatios(pairs), median(pairs))
	return nil
}

// pacedRound sends n reviews at c.rate per second, at most 256 in flight.
func pacedRound(ctx context.Context, hc *http.Client, url string, body []byte, c config, n int) (roundResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.roundTimeout)
	defer cancel()
	interval := time.Duration(float64(time.Second) / c.rate)
	lat := make([]time.Duration, n)
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return roundResult{}, ctx.Err()
		}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			t0 := time.Now()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("review: status %d", resp.StatusCode)
				}
			}
			lat[i] = time.Since(t0)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	d := time.Since(start)
	if firstErr != nil {
		return roundResult{}, firstErr
	}
	return roundResult{rps: float64(n) / d.Seconds(), lat: lat}, nil
}

func fmtCPU(m map[string]float64) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s %.0fus ", n, m[n])
	}
	return strings.TrimSpace(b.String())
}

func fmtRatios(xs []float64) string {
	var b strings.Builder
	for i, x := range xs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.3f", x)
	}
	return b.String()
}

func ms(d time.Duration) float64 { return d.Seconds() * 1000 }

func pct(lat []time.Duration, p int) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := len(s) * p / 100
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

type roundResult struct {
	rps float64
	lat []time.Duration
}

// reviewRound sends n reviews from c.concurrency workers (closed loop). The
// first answer of each worker is checked: a meshshift answer must carry a patch.
func reviewRound(ctx context.Context, hc *http.Client, url string, body []byte, c config, n int, wantPatch bool) (roundResult, error) {
	return reviewRoundOf(ctx, hc, url, [][]byte{body}, c, n, wantPatch)
}

// reviewRoundOf is reviewRound sending bodies in turn.
func reviewRoundOf(ctx context.Context, hc *http.Client, url string, bodies [][]byte, c config, n int, wantPatch bool) (roundResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.roundTimeout)
	defer cancel()
	var next atomic.Int64
	lats := make([][]time.Duration, c.concurrency)
	errs := make([]error, c.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c.concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]byte, 0, 4096)
			for i := 0; ; i++ {
				k := next.Add(1)
				if k > int64(n) {
					break
				}
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies[int(k-1)%len(bodies)]))
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					errs[w] = err
					return
				}
				buf = buf[:0]
				b := bytes.NewBuffer(buf)
				_, err = io.Copy(b, resp.Body)
				_ = resp.Body.Close()
				lats[w] = append(lats[w], time.Since(t0))
				if err != nil || resp.StatusCode != http.StatusOK {
					errs[w] = fmt.Errorf("review: status %d: %w", resp.StatusCode, err)
					return
				}
				if i == 0 {
					if err := checkReview(b.Bytes(), wantPatch); err != nil {
						errs[w] = err
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	d := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return roundResult{}, err
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return roundResult{rps: float64(len(all)) / d.Seconds(), lat: all}, nil
}

func checkReview(b []byte, wantPatch bool) error {
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &r); err != nil || r.Response == nil {
		return fmt.Errorf("answer is no AdmissionReview: %w", err)
	}
	if !r.Response.Allowed {
		return fmt.Errorf("review denied: %+v", r.Response.Result)
	}
	if wantPatch && len(r.Response.Patch) == 0 {
		return errors.New("meshshift answered without a patch")
	}
	return nil
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

// cpuTime is this process's user plus system CPU time: the webhook server and
// the load generator both run here.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
