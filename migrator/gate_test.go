package migrator

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

// fakeProm answers instant queries from a table keyed by the exact query; it
// records the evaluation time of every query.
type fakeProm struct {
	answers map[string]func() (model.Value, error)
	// fallback answers queries the table lacks; nil means no data.
	fallback func(q string) (model.Value, error)
	times    []time.Time
}

func (f *fakeProm) Query(_ context.Context, q string, ts time.Time, _ ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	f.times = append(f.times, ts)
	a, ok := f.answers[q]
	if !ok {
		if f.fallback != nil {
			v, err := f.fallback(q)
			return v, nil, nil, err
		}
		return model.Vector{}, nil, nil, nil
	}
	v, err := a()
	return v, nil, nil, err
}

func vec(vals ...float64) func() (model.Value, error) {
	return func() (model.Value, error) {
		out := model.Vector{}
		for i, v := range vals {
			out = append(out, &model.Sample{Metric: model.Metric{"i": model.LabelValue(rune('a' + i))}, Value: model.SampleValue(v)})
		}
		return out, nil
	}
}

func gateFor(t *testing.T, slis ...meshv1alpha1.SLI) GateConfig {
	t.Helper()
	cfg, errs := ResolveGate(&meshv1alpha1.GateSpec{
		PrometheusURL: "http://127.0.0.1:1", Interval: &metav1.Duration{Duration: time.Second},
		FailuresToBreach: 3, InconclusiveLimit: 2, SLIs: slis,
	}, "")
	if len(errs) > 0 {
		t.Fatalf("resolve gate: %v", errs.ToAggregate())
	}
	return cfg
}

func TestGateSLIResults(t *testing.T) {
	sli := meshv1alpha1.SLI{Name: "err", Query: "q", SampleQuery: "n", MinSample: 100, Max: "0.1", MaxIncrease: "0.5"}
	base := []meshv1alpha1.SLIValue{{Name: "err", Value: "0.04", Result: ResultPass}}
	cases := []struct {
		name       string
		value      func() (model.Value, error)
		sample     func() (model.Value, error)
		baseline   []meshv1alpha1.SLIValue
		want       string
		wantLimit  string
		wantInText string
	}{
		{"NaN is inconclusive", vec(math.NaN()), vec(500), base, ResultInconclusive, "", "NaN"},
		{"empty result is inconclusive", vec(), vec(500), base, ResultInconclusive, "", "no data"},
		{"query error is inconclusive", func() (model.Value, error) { return nil, errors.New("connection refused") }, vec(500), base, ResultInconclusive, "", "connection refused"},
		{"sample query error is inconclusive", vec(0.01), func() (model.Value, error) { return nil, errors.New("boom") }, base, ResultInconclusive, "", "sample query"},
		{"two series are inconclusive", vec(0.01, 0.02), vec(500), base, ResultInconclusive, "", "2 series"},
		{"infinite value is inconclusive", vec(math.Inf(1)), vec(500), base, ResultInconclusive, "", "infinite"},
		{"sample below minimum is inconclusive", vec(0.5), vec(99), base, ResultInconclusive, "", "below the minimum 100"},
		{"sample at minimum is conclusive", vec(0.01), vec(100), base, ResultPass, "0.06", ""},
		{"relative limit binds below max", vec(0.061), vec(500), base, ResultFail, "0.06", "baseline 0.04"},
		{"value at the relative limit passes", vec(0.06), vec(500), base, ResultPass, "0.06", ""},
		{"max binds below relative", vec(0.11), vec(500), []meshv1alpha1.SLIValue{{Name: "err", Value: "0.5"}}, ResultFail, "0.1", "max 0.1"},
		{"no baseline and under max is inconclusive", vec(0.05), vec(500), []meshv1alpha1.SLIValue{}, ResultInconclusive, "0.1", "no baseline"},
		{"no baseline and over max fails", vec(0.2), vec(500), []meshv1alpha1.SLIValue{}, ResultFail, "0.1", "max 0.1"},
		{"scalar result is read", func() (model.Value, error) { return &model.Scalar{Value: 0.02}, nil }, vec(500), base, ResultPass, "0.06", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := gateFor(t, sli)
			clk := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
			fp := &fakeProm{answers: map[string]func() (model.Value, error){"q": tc.value, "n": tc.sample}}
			g := &Gate{API: fp, Clock: clk}
			c := g.Evaluate(context.Background(), &cfg, []string{"a"}, tc.baseline)
			if c.Result != tc.want || c.Values[0].Result != tc.want {
				t.Fatalf("result = %s (%+v), want %s", c.Result, c.Values[0], tc.want)
			}
			if c.Values[0].Limit != tc.wantLimit {
				t.Errorf("limit = %q, want %q", c.Values[0].Limit, tc.wantLimit)
			}
			if !strings.Contains(c.Values[0].Message, tc.wantInText) {
				t.Errorf("message = %q, want it to contain %q", c.Values[0].Message, tc.wantInText)
			}
			if tc.want == ResultInconclusive && c.Values[0].Value != "" && tc.wantLimit == "" {
				t.Errorf("inconclusive check carries value %q", c.Values[0].Value)
			}
			for _, ts := range fp.times {
				if !ts.Equal(clk.Now()) {
					t.Errorf("query evaluated at %v, want the clock's %v", ts, clk.Now())
				}
			}
			if !c.At.Equal(clk.Now()) {
				t.Errorf("check at %v, want %v", c.At, clk.Now())
			}
		})
	}
}

// TestGateSteps drives a wave's bake through a sequence of checks with a fake
// clock: consecutive failures breach, a pass in between resets them,
// inconclusive checks pause at the limit and never promote, and only a passing
// check after the bake time promotes.
func TestGateSteps(t *testing.T) {
	type step struct {
		result string
		want   Verdict
	}
	const P, F, I = ResultPass, ResultFail, ResultInconclusive
	cases := []struct {
		name  string
		steps []step
	}{
		{"three consecutive failures breach", []step{{F, VerdictContinue}, {F, VerdictContinue}, {F, VerdictBreach}}},
		{"a pass resets the failures", []step{{F, VerdictContinue}, {F, VerdictContinue}, {P, VerdictContinue}, {F, VerdictContinue}, {F, VerdictContinue}, {F, VerdictBreach}}},
		{"inconclusive neither confirms nor clears failures", []step{{F, VerdictContinue}, {I, VerdictContinue}, {F, VerdictContinue}, {F, VerdictBreach}}},
		{"inconclusive limit pauses", []step{{I, VerdictContinue}, {I, VerdictInconclusive}}},
		{"a failure resets the inconclusive count", []step{{I, VerdictContinue}, {F, VerdictContinue}, {I, VerdictContinue}, {P, VerdictContinue}}},
		{"passes promote only after the bake time", []step{{P, VerdictContinue}, {P, VerdictContinue}, {P, VerdictContinue}, {P, VerdictContinue}, {P, VerdictPromote}}},
		{"inconclusive after the bake time does not promote", []step{{P, VerdictContinue}, {P, VerdictContinue}, {P, VerdictContinue}, {P, VerdictContinue}, {I, VerdictContinue}, {I, VerdictInconclusive}}},
		{"a failure after the bake time does not promote", []step{{P, VerdictContinue}, {P, VerdictContinue}, {P, VerdictContinue}, {P, VerdictContinue}, {F, VerdictContinue}, {P, VerdictPromote}}},
	}
	cfg := GateConfig{FailuresToBreach: 3, InconclusiveLimit: 2}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
			start := clk.Now()
			var w meshv1alpha1.WaveStatus
			for i, s := range tc.steps {
				clk.Step(time.Second) // one gate interval; the bake time is 4 intervals
				c := Check{At: clk.Now(), Result: s.result}
				if got := Step(&cfg, &w, &c, start, 4*time.Second+500*time.Millisecond); got != s.want {
					t.Fatalf("step %d (%s): verdict %s, want %s (failures %d, inconclusive %d)", i, s.result, got, s.want, w.Failures, w.Inconclusive)
				}
			}
		})
	}
}

// TestGateEvaluateAggregates checks that a whole check fails when one SLI
// fails, is inconclusive when none failed and one was, and that the baseline
// recording pass only measures.
func TestGateEvaluateAggregates(t *testing.T) {
	cfg := gateFor(t,
		meshv1alpha1.SLI{Name: "a", Query: "qa", Max: "1"},
		meshv1alpha1.SLI{Name: "b", Query: "qb", Max: "1"},
	)
	clk := clocktesting.NewFakePassiveClock(time.Now())
	ans := map[string]func() (model.Value, error){"qa": vec(2), "qb": vec()}
	g := &Gate{API: &fakeProm{answers: ans}, Clock: clk}
	if c := g.Evaluate(context.Background(), &cfg, []string{"x"}, []meshv1alpha1.SLIValue{}); c.Result != ResultFail {
		t.Errorf("fail + inconclusive = %s, want Fail", c.Result)
	} else if f, ok := c.Failed(); !ok || f.Name != "a" || f.Value != "2" || f.Limit != "1" {
		t.Errorf("failed SLI = %+v", f)
	}
	ans["qa"] = vec(0.5)
	if c := g.Evaluate(context.Background(), &cfg, []string{"x"}, []meshv1alpha1.SLIValue{}); c.Result != ResultInconclusive {
		t.Errorf("pass + inconclusive = %s, want Inconclusive", c.Result)
	}
	ans["qa"], ans["qb"] = vec(5), vec(7)
	c := g.Evaluate(context.Background(), &cfg, []string{"x"}, nil)
	if c.Result != ResultPass || c.Values[0].Value != "5" || c.Values[0].Limit != "" {
		t.Errorf("baseline pass = %+v, want values measured without limits", c)
	}
}

func TestResolveGate(t *testing.T) {
	cfg, errs := ResolveGate(nil, "http://prom:9090")
	if len(errs) > 0 {
		t.Fatalf("defaults: %v", errs)
	}
	if len(cfg.SLIs) != 4 || cfg.Interval != DefaultGateInterval || cfg.FailuresToBreach != DefaultFailuresToBreach {
		t.Errorf("defaults = %+v", cfg)
	}
	q := Expand(cfg.SLIs[0].Query, []string{"shop-b", "shop-a"}, 5*time.Second)
	if !strings.Contains(q, `namespace=~"shop-a|shop-b"`) || !strings.Contains(q, "[5s]") {
		t.Errorf("expanded query = %s", q)
	}
	bad := []struct {
		spec meshv1alpha1.GateSpec
		want string
	}{
		{meshv1alpha1.GateSpec{SLIs: []meshv1alpha1.SLI{{Name: "mine", Max: "1"}}}, "spec.gate.slis[0].query"},
		{meshv1alpha1.GateSpec{SLIs: []meshv1alpha1.SLI{{Name: "mine", Query: "q", MinSample: 5, Max: "1"}}}, "spec.gate.slis[0].sampleQuery"},
		{meshv1alpha1.GateSpec{SLIs: []meshv1alpha1.SLI{{Name: "errorRate", Max: "x"}}}, "spec.gate.slis[0].max"},
		{meshv1alpha1.GateSpec{SLIs: []meshv1alpha1.SLI{{Name: "errorRate"}}}, "spec.gate.slis[0]"},
	}
	for _, b := range bad {
		b.spec.PrometheusURL = "http://p"
		if _, errs := ResolveGate(&b.spec, ""); len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), b.want) {
			t.Errorf("ResolveGate(%+v) = %v, want an error naming %s", b.spec, errs, b.want)
		}
	}
	if _, errs := ResolveGate(&meshv1alpha1.GateSpec{}, ""); len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), "spec.gate.prometheusURL") {
		t.Errorf("no URL: %v", errs)
	}
}
