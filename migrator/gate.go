package migrator

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

// Querier is the part of the Prometheus HTTP API the gate uses; promv1.API
// satisfies it.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error)
}

// Result of one SLI at one check, and of a whole check.
const (
	ResultPass         = "Pass"
	ResultFail         = "Fail"
	ResultInconclusive = "Inconclusive"
)

// Gate defaults, used where the spec leaves a field out (a nil spec.gate gets
// no API-server defaults).
const (
	DefaultGateInterval      = 30 * time.Second
	DefaultGateWindow        = time.Minute
	DefaultFailuresToBreach  = 3
	DefaultInconclusiveLimit = 10
)

// Built-in SLI queries on the node agent's metrics (bpf/agent): HTTP as served
// by the wave's workloads (side="server"), TCP per connection opened.
// `$namespaces` is the wave's namespaces as a regular expression, `$window`
// the gate's window.
var builtinSLIs = map[string]SLIConfig{
	"errorRate": {
		Query: `sum(rate(meshshift_http_requests_total{namespace=~"$namespaces",side="server",status_class="5xx"}[$window]))` +
			` / sum(rate(meshshift_http_requests_total{namespace=~"$namespaces",side="server"}[$window]))`,
		SampleQuery: `sum(increase(meshshift_http_requests_total{namespace=~"$namespaces",side="server"}[$window]))`,
	},
	"latencyP99": {
		Query:       `histogram_quantile(0.99, sum by (le) (rate(meshshift_http_request_duration_seconds_bucket{namespace=~"$namespaces",side="server"}[$window])))`,
		SampleQuery: `sum(increase(meshshift_http_requests_total{namespace=~"$namespaces",side="server"}[$window]))`,
	},
	"tcpRetransmitRate": {
		Query: `sum(rate(meshshift_tcp_retransmits_total{namespace=~"$namespaces"}[$window]))` +
			` / sum(rate(meshshift_tcp_connections_opened_total{namespace=~"$namespaces"}[$window]))`,
		SampleQuery: `sum(increase(meshshift_tcp_connections_opened_total{namespace=~"$namespaces"}[$window]))`,
	},
	"tcpResetRate": {
		Query: `sum(rate(meshshift_tcp_resets_total{namespace=~"$namespaces"}[$window]))` +
			` / sum(rate(meshshift_tcp_connections_opened_total{namespace=~"$namespaces"}[$window]))`,
		SampleQuery: `sum(increase(meshshift_tcp_connections_opened_total{namespace=~"$namespaces"}[$window]))`,
	},
}

// defaultSLIs are checked when spec.gate.slis is empty.
var defaultSLIs = []meshv1alpha1.SLI{
	{Name: "errorRate", Max: "0.05", MinSample: 100},
	{Name: "latencyP99", MaxIncrease: "0.5", MinSample: 100},
	{Name: "tcpRetransmitRate", Max: "0.1", MaxIncrease: "1", MinSample: 20},
	{Name: "tcpResetRate", Max: "0.1", MaxIncrease: "1", MinSample: 20},
}

// SLIConfig is one SLI with its queries and parsed limits.
type SLIConfig struct {
	Name        string
	Query       string
	SampleQuery string
	MinSample   int64
	// Max and MaxIncrease are NaN when unset.
	Max, MaxIncrease float64
}

// GateConfig is a gate spec with defaults filled and limits parsed.
type GateConfig struct {
	PrometheusURL     string
	Interval, Window  time.Duration
	FailuresToBreach  int32
	InconclusiveLimit int32
	SLIs              []SLIConfig
}

// ResolveGate fills the gate's defaults and checks what the CRD schema cannot:
// an SLI of unknown name needs a query, minSample needs a sample query.
// defaultURL is used when the spec names no Prometheus.
func ResolveGate(spec *meshv1alpha1.GateSpec, defaultURL string) (GateConfig, field.ErrorList) {
	path := field.NewPath("spec", "gate")
	g := GateConfig{
		PrometheusURL: defaultURL, Interval: DefaultGateInterval, Window: DefaultGateWindow,
		FailuresToBreach: DefaultFailuresToBreach, InconclusiveLimit: DefaultInconclusiveLimit,
	}
	slis := defaultSLIs
	if spec != nil {
		if spec.PrometheusURL != "" {
			g.PrometheusURL = spec.PrometheusURL
		}
		if spec.Interval != nil {
			g.Interval = spec.Interval.Duration
		}
		if spec.Window != nil {
			g.Window = spec.Window.Duration
		}
		if spec.FailuresToBreach > 0 {
			g.FailuresToBreach = spec.FailuresToBreach
		}
		if spec.InconclusiveLimit > 0 {
			g.InconclusiveLimit = spec.InconclusiveLimit
		}
		if len(spec.SLIs) > 0 {
			slis = spec.SLIs
		}
	}
	var errs field.ErrorList
	if g.PrometheusURL == "" {
		errs = append(errs, field.Required(path.Child("prometheusURL"), "no Prometheus to read SLIs from: set it here or start the manager with --prometheus-url"))
	}
	if g.Interval < 100*time.Millisecond {
		errs = append(errs, field.Invalid(path.Child("interval"), g.Interval.String(), "must be at least 100ms"))
	}
	if g.Window < time.Second {
		errs = append(errs, field.Invalid(path.Child("window"), g.Window.String(), "must be at least 1s"))
	}
	for i, s := range slis {
		p := path.Child("slis").Index(i)
		c := SLIConfig{Name: s.Name, Query: s.Query, SampleQuery: s.SampleQuery, MinSample: s.MinSample,
			Max: math.NaN(), MaxIncrease: math.NaN()}
		if b, ok := builtinSLIs[s.Name]; ok {
			if c.Query == "" {
				c.Query = b.Query
			}
			if c.SampleQuery == "" {
				c.SampleQuery = b.SampleQuery
			}
		}
		if c.Query == "" {
			errs = append(errs, field.Required(p.Child("query"), "SLI "+s.Name+" has no built-in query (built in: "+builtinNames()+")"))
		}
		if c.MinSample > 0 && c.SampleQuery == "" {
			errs = append(errs, field.Required(p.Child("sampleQuery"), "minSample needs a sample query"))
		}
		var err *field.Error
		if c.Max, err = parseLimit(p.Child("max"), s.Max); err != nil {
			errs = append(errs, err)
		}
		if c.MaxIncrease, err = parseLimit(p.Child("maxIncrease"), s.MaxIncrease); err != nil {
			errs = append(errs, err)
		}
		if math.IsNaN(c.Max) && math.IsNaN(c.MaxIncrease) {
			errs = append(errs, field.Required(p, "an SLI needs max, maxIncrease, or both"))
		}
		g.SLIs = append(g.SLIs, c)
	}
	return g, errs
}

func builtinNames() string {
	names := make([]string, 0, len(builtinSLIs))
	for n := range builtinSLIs {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func parseLimit(p *field.Path, s string) (float64, *field.Error) {
	if s == "" {
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return math.NaN(), field.Invalid(p, s, "must be a non-negative decimal such as 0.05")
	}
	return v, nil
}

// Gate measures SLIs through Prometheus.
type Gate struct {
	API   Querier
	Clock clock.PassiveClock
	// QueryTimeout bounds each query; zero means 10 s.
	QueryTimeout time.Duration
}

// Check is one evaluation of the gate.
type Check struct {
	At     time.Time
	Values []meshv1alpha1.SLIValue
	// Result is Fail when any SLI failed, else Inconclusive when any SLI was,
	// else Pass.
	Result string
}

// Failed returns the first failing SLI value, for messages.
func (c *Check) Failed() (meshv1alpha1.SLIValue, bool) {
	for _, v := range c.Values {
		if v.Result == ResultFail {
			return v, true
		}
	}
	return meshv1alpha1.SLIValue{}, false
}

// Summary is one line naming every SLI that did not pass, and why.
func (c *Check) Summary() string {
	var parts []string
	for _, v := range c.Values {
		if v.Result != ResultPass {
			parts = append(parts, v.Name+": "+v.Message)
		}
	}
	if len(parts) == 0 {
		return "every SLI passed"
	}
	return strings.Join(parts, "; ")
}

// NamespaceRegex is the `$namespaces` value for a wave.
func NamespaceRegex(namespaces []string) string {
	q := make([]string, len(namespaces))
	for i, n := range namespaces {
		q[i] = regexp.QuoteMeta(n)
	}
	sort.Strings(q)
	return strings.Join(q, "|")
}

// Expand fills `$namespaces` and `$window` in a query.
func Expand(query string, namespaces []string, window time.Duration) string {
	return strings.NewReplacer("$namespaces", NamespaceRegex(namespaces), "$window", model.Duration(window).String()).Replace(query)
}

// Evaluate checks every SLI of cfg for namespaces against its limits; baseline
// is the wave's recorded baseline (nil while recording it: then no limit is
// applied and each value is only measured).
func (g *Gate) Evaluate(ctx context.Context, cfg *GateConfig, namespaces []string, baseline []meshv1alpha1.SLIValue) Check {
	now := g.Clock.Now()
	c := Check{At: now, Result: ResultPass}
	for i := range cfg.SLIs {
		v := g.evaluateSLI(ctx, &cfg.SLIs[i], cfg.Window, namespaces, baseline, now)
		c.Values = append(c.Values, v)
		switch {
		case v.Result == ResultFail:
			c.Result = ResultFail
		case v.Result == ResultInconclusive && c.Result == ResultPass:
			c.Result = ResultInconclusive
		}
	}
	return c
}

func (g *Gate) evaluateSLI(ctx context.Context, s *SLIConfig, window time.Duration, namespaces []string,
	baseline []meshv1alpha1.SLIValue, now time.Time) meshv1alpha1.SLIValue {
	out := meshv1alpha1.SLIValue{Name: s.Name}
	inconclusive := func(msg string) meshv1alpha1.SLIValue {
		out.Result, out.Message = ResultInconclusive, msg
		return out
	}
	if s.SampleQuery != "" && s.MinSample > 0 {
		n, err := g.scalar(ctx, Expand(s.SampleQuery, namespaces, window), now)
		if err != nil {
			return inconclusive("sample query: " + err.Error())
		}
		if n < float64(s.MinSample) {
			return inconclusive(fmt.Sprintf("sample %s below the minimum %d", formatDecimal(n), s.MinSample))
		}
	}
	v, err := g.scalar(ctx, Expand(s.Query, namespaces, window), now)
	if err != nil {
		return inconclusive("query: " + err.Error())
	}
	out.Value = formatDecimal(v)
	if baseline == nil {
		out.Result, out.Message = ResultPass, "baseline"
		return out
	}
	limit, why := math.Inf(1), ""
	if !math.IsNaN(s.Max) {
		limit, why = s.Max, "max "+formatDecimal(s.Max)
	}
	if !math.IsNaN(s.MaxIncrease) {
		base, ok := baselineOf(baseline, s.Name)
		if !ok && v <= limit {
			out.Limit = limitString(limit)
			return inconclusive("no baseline for the relative limit")
		}
		if ok {
			if rel := base * (1 + s.MaxIncrease); rel < limit {
				limit = rel
				why = fmt.Sprintf("baseline %s × (1 + %s)", formatDecimal(base), formatDecimal(s.MaxIncrease))
			}
		}
	}
	out.Limit = limitString(limit)
	if v > limit {
		out.Result, out.Message = ResultFail, "above the limit ("+why+")"
		return out
	}
	out.Result, out.Message = ResultPass, "within the limit ("+why+")"
	return out
}

func limitString(l float64) string {
	if math.IsInf(l, 1) {
		return ""
	}
	return formatDecimal(l)
}

func baselineOf(baseline []meshv1alpha1.SLIValue, name string) (float64, bool) {
	for _, b := range baseline {
		if b.Name != name || b.Value == "" {
			continue
		}
		v, err := strconv.ParseFloat(b.Value, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, false
		}
		return v, true
	}
	return 0, false
}

// scalar runs an instant query that must give exactly one finite number.
func (g *Gate) scalar(ctx context.Context, q string, ts time.Time) (float64, error) {
	timeout := g.QueryTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	val, _, _, err := g.API.Query(ctx, q, ts, promv1.WithTimeout(timeout))
	if err != nil {
		return 0, fmt.Errorf("prometheus query failed: %w", err)
	}
	var f float64
	switch v := val.(type) {
	case model.Vector:
		if len(v) == 0 {
			return 0, fmt.Errorf("no data")
		}
		if len(v) > 1 {
			return 0, fmt.Errorf("%d series, want one (aggregate the query)", len(v))
		}
		f = float64(v[0].Value)
	case *model.Scalar:
		f = float64(v.Value)
	default:
		return 0, fmt.Errorf("result of type %s, want a vector or a scalar", val.Type())
	}
	if math.IsNaN(f) {
		return 0, fmt.Errorf("NaN (no traffic in the window)")
	}
	if math.IsInf(f, 0) {
		return 0, fmt.Errorf("infinite value")
	}
	return f, nil
}

// formatDecimal writes v with at most 6 significant digits and no exponent.
func formatDecimal(v float64) string {
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 6, 64), 64)
	if err != nil {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// Verdict is what a wave does after a check.
type Verdict int

const (
	// VerdictContinue keeps baking.
	VerdictContinue Verdict = iota
	// VerdictBreach: failuresToBreach consecutive checks failed.
	VerdictBreach
	// VerdictInconclusive: inconclusiveLimit consecutive checks were inconclusive.
	VerdictInconclusive
	// VerdictPromote: the bake time has passed and the latest check passed.
	VerdictPromote
)

func (v Verdict) String() string {
	return [...]string{"Continue", "Breach", "Inconclusive", "Promote"}[v]
}

// Step folds a check into the wave's consecutive counters and says what to
// do. A failing check resets the inconclusive count; an inconclusive one
// leaves the failure count as it is (it neither confirms nor clears a breach);
// a passing one resets both. Only a passing check after the bake time promotes.
func Step(cfg *GateConfig, w *meshv1alpha1.WaveStatus, c *Check, bakeStart time.Time, bake time.Duration) Verdict {
	switch c.Result {
	case ResultFail:
		w.Failures++
		w.Inconclusive = 0
		if w.Failures >= cfg.FailuresToBreach {
			return VerdictBreach
		}
	case ResultInconclusive:
		w.Inconclusive++
		if w.Inconclusive >= cfg.InconclusiveLimit {
			return VerdictInconclusive
		}
	default:
		w.Failures, w.Inconclusive = 0, 0
		if !c.At.Before(bakeStart.Add(bake)) {
			return VerdictPromote
		}
	}
	return VerdictContinue
}
