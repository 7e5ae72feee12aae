package prom_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/meshshift/meshshift/test/prom"
)

// TestPrometheusScrapesExporter: the real Prometheus scrapes the test exporter
// every second, the error ratio the test sets is what PromQL reads back, and
// the series go away when the exporter stops.
func TestPrometheusScrapesExporter(t *testing.T) {
	e := prom.NewExporter(t)
	e.Set("shop", prom.Traffic{Requests: 100, ErrorRatio: 0.25, Latency: 0.02, Connections: 10})
	s := prom.Start(t, e.Addr)
	c, err := api.NewClient(api.Config{Address: s.URL})
	if err != nil {
		t.Fatal(err)
	}
	q := promv1.NewAPI(c)
	ratio := `sum(rate(meshshift_http_requests_total{namespace="shop",status_class="5xx"}[5s])) / sum(rate(meshshift_http_requests_total{namespace="shop"}[5s]))`
	start := time.Now()
	got := waitValue(t, q, ratio, func(v float64) bool { return math.Abs(v-0.25) < 0.01 })
	t.Logf("error ratio %.3f readable %v after start, %d scrapes", got, time.Since(start).Round(time.Millisecond), e.Scrapes())
	if e.ChangeScrapedAt().IsZero() {
		t.Error("ChangeScrapedAt is zero after scrapes")
	}
	e.Stop()
	stopped := time.Now()
	waitValue(t, q, ratio, func(v float64) bool { return math.IsNaN(v) })
	t.Logf("no data %v after the exporter stopped", time.Since(stopped).Round(time.Millisecond))
}

// waitValue polls an instant query until ok holds for its single value (NaN
// stands for no data).
func waitValue(t *testing.T, q promv1.API, query string, ok func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		v := math.NaN()
		res, _, _, err := q.Query(context.Background(), query, time.Now())
		if err == nil {
			if vec, isVec := res.(model.Vector); isVec && len(vec) == 1 {
				v = float64(vec[0].Value)
			}
		}
		if ok(v) {
			return v
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("query %s never met the condition", query)
	return 0
}
