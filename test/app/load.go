package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Counts are what the load client saw from one target, per answering pod
// (the server's X-Pod header; "" when the request failed before an answer).
type Counts struct {
	Requests uint64            `json:"requests"`
	Errors   uint64            `json:"errors5xx"`
	Failed   uint64            `json:"failed"`
	PerPod   map[string]*PodCt `json:"perPod"`
}

// PodCt is one pod's share of a target's answers.
type PodCt struct {
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors5xx"`
}

type loader struct {
	mu     sync.Mutex
	counts map[string]*Counts
	paused atomic.Bool
}

func (l *loader) record(target, pod string, status int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.counts[target]
	if err != nil {
		c.Failed++
		return
	}
	c.Requests++
	pc := c.PerPod[pod]
	if pc == nil {
		pc = &PodCt{}
		c.PerPod[pod] = pc
	}
	pc.Requests++
	if status >= 500 {
		c.Errors++
		pc.Errors++
	}
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	targets := fs.String("targets", "", "comma-separated URLs to send GET requests to")
	rps := fs.Float64("rps", 20, "requests per second to each target")
	listen := fs.String("listen", ":8081", "address to serve /counts, /pause and /resume on")
	newConn := fs.Bool("new-conn", false, "open a new TCP connection for every request (no keep-alive), so TCP SLIs have a sample and a Service spreads requests over its pods")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rps <= 0 || *rps > 10000 {
		return fmt.Errorf("--rps %v: want a rate above 0 and at most 10000", *rps)
	}
	var urls []string
	for _, u := range strings.Split(*targets, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		return fmt.Errorf("--targets %q: want at least one URL", *targets)
	}
	l := &loader{counts: map[string]*Counts{}}
	for _, u := range urls {
		l.counts[u] = &Counts{PerPod: map[string]*PodCt{}}
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableKeepAlives: *newConn}}
	for _, u := range urls {
		go func() {
			tick := time.NewTicker(time.Duration(float64(time.Second) / *rps))
			defer tick.Stop()
			for range tick.C {
				if l.paused.Load() {
					continue
				}
				resp, err := hc.Get(u)
				if err != nil {
					l.record(u, "", 0, err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				l.record(u, resp.Header.Get("X-Pod"), resp.StatusCode, nil)
			}
		}()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /counts", func(w http.ResponseWriter, _ *http.Request) {
		l.mu.Lock()
		b, err := json.Marshal(l.counts)
		l.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("POST /pause", func(w http.ResponseWriter, _ *http.Request) { l.paused.Store(true) })
	mux.HandleFunc("POST /resume", func(w http.ResponseWriter, _ *http.Request) { l.paused.Store(false) })
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		return fmt.Errorf("serve counts: %w", err)
	}
	return nil
}
