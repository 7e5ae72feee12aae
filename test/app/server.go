package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// dataplaneLabel is the label meshshift writes with a pod's dataplane mode.
const dataplaneLabel = "meshshift.io/dataplane"

// fault decides which requests fail: with share s, request n (1-based) fails
// when floor(n*s) > floor((n-1)*s), so exactly floor(N*s) of N requests fail,
// spread evenly, the same in every run.
type fault struct {
	share float64
	n     atomic.Uint64
}

func (f *fault) fail() bool {
	n := float64(f.n.Add(1))
	return int64(n*f.share) > int64((n-1)*f.share)
}

// readLabels parses a downward API labels file (key="value" lines).
func readLabels(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read labels file: %w", err)
	}
	defer func() { _ = f.Close() }()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read labels file: %w", err)
	}
	return out, nil
}

func serve(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	listen := fs.String("listen", ":8080", "address to serve HTTP on")
	labelsFile := fs.String("labels-file", "/etc/podinfo/labels", "downward API file with this pod's labels")
	faultMode := fs.String("fault-mode", "", "answer --fault-share of requests with 500 while this pod's "+dataplaneLabel+" label has this value (empty: never)")
	faultShare := fs.Float64("fault-share", 0.5, "share of requests (0..1) answered with 500 while the fault switch is on")
	drain := fs.Duration("drain", 3*time.Second, "after SIGTERM, keep serving this long before exiting (so final counts are scraped)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *faultShare < 0 || *faultShare > 1 {
		return fmt.Errorf("--fault-share %v: want a number from 0 to 1", *faultShare)
	}
	pod, _ := os.Hostname()
	if p := os.Getenv("POD_NAME"); p != "" {
		pod = p
	}
	f := &fault{share: *faultShare}
	var (
		mu     sync.Mutex
		broken bool
	)
	// The switch follows the label file: kubelet rewrites it when labels change.
	check := func() {
		on := false
		if *faultMode != "" {
			if l, err := readLabels(*labelsFile); err == nil {
				on = l[dataplaneLabel] == *faultMode
			} else {
				fmt.Fprintln(os.Stderr, "testapp:", err)
			}
		}
		mu.Lock()
		if on != broken {
			fmt.Fprintf(os.Stderr, "testapp: fault switch %v (%s=%q wanted for faults)\n", on, dataplaneLabel, *faultMode)
		}
		broken = on
		mu.Unlock()
	}
	check()
	go func() {
		for range time.Tick(time.Second) {
			check()
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Pod", pod)
		mu.Lock()
		b := broken
		mu.Unlock()
		if b && f.fail() {
			http.Error(w, "injected fault", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe() }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-sigs:
	}
	time.Sleep(*drain)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}
