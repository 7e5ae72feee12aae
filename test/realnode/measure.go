package realnode

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Figures are the node agent's figures for one namespace's servers over a
// window, as Prometheus has them: requests a second, the share answered
// with 5xx, and the p99 latency in seconds (NaN where there is no data).
type Figures struct {
	RPS, ErrorRate, P99 float64
}

func (f Figures) String() string {
	return fmt.Sprintf("%5.1f req/s  errors %5.1f%%  p99 %s", f.RPS, 100*f.ErrorRate, ms(f.P99))
}

func ms(s float64) string {
	if math.IsNaN(s) {
		return "   n/a"
	}
	return fmt.Sprintf("%4.1fms", 1000*s)
}

func (p *Prometheus) api() (promv1.API, error) {
	c, err := api.NewClient(api.Config{Address: p.URL})
	if err != nil {
		return nil, fmt.Errorf("prometheus client: %w", err)
	}
	return promv1.NewAPI(c), nil
}

// Scalar evaluates q at time at and returns its single value (NaN when empty).
func (p *Prometheus) Scalar(ctx context.Context, q string, at time.Time) (float64, error) {
	a, err := p.api()
	if err != nil {
		return 0, err
	}
	v, _, _, err := a.Query(ctx, q, at)
	if err != nil {
		return 0, fmt.Errorf("query %s: %w", q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return 0, fmt.Errorf("query %s: got %s, want a vector", q, v.Type())
	}
	if len(vec) == 0 {
		return math.NaN(), nil
	}
	return float64(vec[0].Value), nil
}

// FiguresAt are the agent's figures for namespace ns over window, ending at at.
func (p *Prometheus) FiguresAt(ctx context.Context, ns string, window time.Duration, at time.Time) (Figures, error) {
	sel := fmt.Sprintf(`namespace=%q,side="server"`, ns)
	w := model.Duration(window).String()
	var f Figures
	var err error
	if f.RPS, err = p.Scalar(ctx, `sum(rate(meshshift_http_requests_total{`+sel+`}[`+w+`]))`, at); err != nil {
		return f, err
	}
	errs, err := p.Scalar(ctx, `sum(rate(meshshift_http_requests_total{`+sel+`,status_class="5xx"}[`+w+`]))`, at)
	if err != nil {
		return f, err
	}
	if math.IsNaN(errs) {
		errs = 0
	}
	f.ErrorRate = errs / f.RPS
	if f.P99, err = p.Scalar(ctx, `histogram_quantile(0.99, sum by (le) (rate(meshshift_http_request_duration_seconds_bucket{`+sel+`}[`+w+`])))`, at); err != nil {
		return f, err
	}
	return f, nil
}

// AgentTotals are the requests and 5xx answers the agent counted for the
// servers of namespace ns over the test, every pod included: each pod's
// counters are cumulative, so its largest value is its total.
func (p *Prometheus) AgentTotals(ctx context.Context, ns string, since time.Duration) (requests, errors5xx float64, err error) {
	r := model.Duration(since).String()
	sel := fmt.Sprintf(`namespace=%q,side="server"`, ns)
	if requests, err = p.Scalar(ctx, `sum(max_over_time(meshshift_http_requests_total{`+sel+`}[`+r+`]))`, time.Now()); err != nil {
		return 0, 0, err
	}
	if errors5xx, err = p.Scalar(ctx, `sum(max_over_time(meshshift_http_requests_total{`+sel+`,status_class="5xx"}[`+r+`]))`, time.Now()); err != nil {
		return 0, 0, err
	}
	if math.IsNaN(errors5xx) {
		errors5xx = 0
	}
	return requests, errors5xx, nil
}

// FirstBreachScrape is the time of the first scrape, after from, in which
// the agent reported a 5xx answer by a server of namespace ns.
func (p *Prometheus) FirstBreachScrape(ctx context.Context, ns string, from, to time.Time) (time.Time, error) {
	a, err := p.api()
	if err != nil {
		return time.Time{}, err
	}
	q := fmt.Sprintf(`sum(meshshift_http_requests_total{namespace=%q,side="server",status_class="5xx"})`, ns)
	v, _, _, err := a.QueryRange(ctx, q, promv1.Range{Start: from, End: to, Step: p.ScrapeInterval})
	if err != nil {
		return time.Time{}, fmt.Errorf("query %s: %w", q, err)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return time.Time{}, fmt.Errorf("query %s: got %s, want a matrix", q, v.Type())
	}
	for _, s := range m {
		for _, pt := range s.Values {
			if pt.Value > 0 {
				return pt.Timestamp.Time(), nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("no scrape between %s and %s shows a 5xx in %s", from.Format(time.TimeOnly), to.Format(time.TimeOnly), ns)
}
