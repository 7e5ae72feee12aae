package policies

import (
	"math"
	"testing"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// fastExprs are expressions of the shapes fastDecorator replaces, and near
// misses it must leave alone or hand back to cel-go (shadowed variables, mixed
// number kinds, non-constant defaults). allocFree marks those whose fast
// evaluation must not allocate: it proves the replacement is in the plan.
var fastExprs = []struct {
	expr      string
	allocFree bool
}{
	{`traffic.requestRate > 100.0`, true},
	{`traffic.requestRate >= 400.0`, true},
	{`traffic.requestRate < 400.0`, true},
	{`traffic.requestRate <= 400.0`, true},
	{`100.0 < traffic.requestRate`, true},
	{`traffic.errorRate > 0.05`, true},
	{`traffic.errorRate <= traffic.requestRate`, true},
	{`traffic.requestRate > dyn(100)`, true},
	{`dyn(-3) >= traffic.connectionRate`, true},
	{`traffic.requestRate < dyn(9223372036854775807)`, true},
	{`traffic.retransmitRate >= dyn(2u)`, true},
	{`dyn(1u) < traffic.errorRate`, true},
	{`traffic.p99Latency > dyn(1.0)`, false},
	{`traffic.p99Latency < duration("5ms")`, true},
	{`traffic.p99Latency >= duration("12ms")`, true},
	{`duration("1m") <= traffic.age`, true},
	{`traffic.age > traffic.p99Latency`, true},
	{`traffic.requestRate > 100.0 && traffic.errorRate < 0.05 || traffic.p99Latency > duration("1s")`, true},
	{`workload.labels.?tier.orValue("") == "legacy"`, true},
	{`workload.labels[?"meshshift.io/opt-out"].orValue("") == "true"`, true},
	{`"web" != workload.labels.?app.orValue("")`, true},
	{`namespaceObject.labels.?team.orValue("") == "payments"`, true},
	{`namespaceObject.annotations.?owner.orValue("nobody") != "nobody"`, true},
	{`workload.labels.?app.orValue("none")`, false},
	{`namespaceObject.labels.?team.orValue(workload.name) == "payments"`, false},
	{`workload.labels.?app.orValue("") == workload.name`, false},
	{`workload.labels.?app.orValue("").size() > 2`, false},
	{`[{"requestRate": 1.0}].exists(traffic, traffic.requestRate > 0.5)`, false},
	{`[{"labels": {"a": "b"}}].exists(workload, workload.labels.?a.orValue("") == "b")`, false},
	{`[{"labels": {"a": "b"}}].exists(workload, workload.labels.?c.orValue("x") == "x")`, false},
	{`dyn(traffic.requestRate) > 1.0`, false},
}

// fastInputs vary what the expressions read: figures equal to, above and
// below the constants, NaN, huge and negative values, labels present and
// absent, interned and not.
func fastInputs() []Input {
	base := func() Input {
		in := baseInput(nil)
		in.HasTraffic = true
		in.Traffic = signals.WorkloadTraffic{RequestRate: 400, ErrorRate: 0.001, P99Latency: 12 * time.Millisecond,
			ConnectionRate: 20, RetransmitRate: 2, Protocols: []signals.Protocol{signals.ProtocolHTTP1},
			SampleTime: testNow.Add(-2 * time.Minute)}
		in.Namespace.Labels = map[string]string{"team": "payments"}
		in.Namespace.Annotations = map[string]string{"owner": "alice"}
		return in
	}
	edits := []func(in *Input){
		func(*Input) {},
		func(in *Input) { in.HasTraffic = false },
		func(in *Input) {
			in.Traffic.RequestRate, in.Traffic.ErrorRate = math.NaN(), math.NaN()
			in.Traffic.ConnectionRate = math.Inf(-1)
		},
		func(in *Input) {
			in.Traffic.RequestRate, in.Traffic.ErrorRate, in.Traffic.RetransmitRate = 1e19, -1, 1e30
			in.Traffic.ConnectionRate = -3
		},
		func(in *Input) {
			in.Traffic.RequestRate, in.Traffic.P99Latency = 100, 5*time.Millisecond
			in.Traffic.SampleTime = testNow.Add(-time.Minute)
		},
		func(in *Input) {
			in.Workload.Labels = map[string]string{"tier": "legacy", "meshshift.io/opt-out": "true", "app": "web"}
			in.Namespace.Labels, in.Namespace.Annotations = map[string]string{"team": "shop"}, nil
		},
		func(in *Input) {
			in.Workload.Labels = map[string]string{"app": "web-7d9f-abcde", "tier": ""}
			in.Workload.Name = "web-7d9f-abcde"
			in.Namespace.Labels = nil
		},
	}
	var out []Input
	for _, e := range edits {
		in := base()
		e(&in)
		out = append(out, in)
	}
	return out
}

// TestFastChainMatchesCEL compares the program planned with fastDecorator to
// cel-go's own plan of the same checked expression, value for value.
func TestFastChainMatchesCEL(t *testing.T) {
	env, err := celEnv()
	if err != nil {
		t.Fatal(err)
	}
	fenv, err := fastEnv()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range fastExprs {
		ast, iss := env.Compile(x.expr)
		if iss.Err() != nil {
			t.Fatalf("%s: %v", x.expr, iss.Err())
		}
		plain, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			t.Fatal(err)
		}
		fast, err := fenv.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			t.Fatal(err)
		}
		for i, in := range fastInputs() {
			act := activations.Get().(*activation)
			act.fill(&in, time.Minute+30*time.Second, v1alpha1.ModeSidecar)
			want, _, wantErr := plain.Eval(act)
			got, _, gotErr := fast.Eval(act)
			if (wantErr != nil) != (gotErr != nil) || (wantErr == nil && !sameVal(want, got)) {
				t.Errorf("%s, input %d: fast plan gives %v (%v), cel-go's %v (%v)", x.expr, i, got, gotErr, want, wantErr)
			}
			if x.allocFree {
				if n := testing.AllocsPerRun(20, func() { _, _, _ = fast.Eval(act) }); n != 0 {
					t.Errorf("%s, input %d: fast plan allocates %v times per evaluation, want 0", x.expr, i, n)
				}
			}
			act.release()
		}
	}
}

// sameVal is CEL equality, except that NaN is the same as NaN.
func sameVal(a, b ref.Val) bool {
	if a.Type() != b.Type() {
		return false
	}
	if x, ok := a.(types.Double); ok && math.IsNaN(float64(x)) {
		y, ok := b.(types.Double)
		return ok && math.IsNaN(float64(y))
	}
	return a.Equal(b) == types.True
}

// TestDecideAllocs holds BenchmarkDecide's decision (ten rules, the ninth
// matches, reading labels, traffic figures and features) to the issue's
// allocation budget.
func TestDecideAllocs(t *testing.T) {
	p := mustCompile(t, "bench", 1, v1alpha1.DataplanePolicySpec{DefaultMode: v1alpha1.RuleMode(v1alpha1.ModeSidecar), Rules: benchRules})
	in := baseInput(p)
	in.Namespace = Namespace{Name: "ns-42", Labels: map[string]string{"kubernetes.io/metadata.name": "ns-42", "team": "shop"}}
	in.Workload.Namespace = "ns-42"
	in.Workload.Labels = map[string]string{"app": "svc-41", "version": "v1", "pod-template-hash": "7d9f"}
	in.HasTraffic = true
	in.Traffic = signals.WorkloadTraffic{RequestRate: 400, ErrorRate: 0.001, P99Latency: 12 * time.Millisecond,
		ConnectionRate: 20, Protocols: []signals.Protocol{signals.ProtocolHTTP1}, SampleTime: testNow.Add(-10 * time.Second)}
	in.Features = signals.Features{{Feature: signals.FeatureMTLS, Kind: "PeerAuthentication", Namespace: "ns-42", Name: "svc-41-1"}}
	if d := Decide(in); d.Mode != v1alpha1.ModeAmbient || d.Rule != "rule:high-rate-l4" {
		t.Fatalf("decided %s by %s (%q), want ambient by rule:high-rate-l4", d.Mode, d.Rule, d.Reason)
	}
	const budget = 5
	if n := testing.AllocsPerRun(200, func() { Decide(in) }); n > budget {
		t.Errorf("Decide allocates %v times per decision, want at most %d", n, budget)
	}
}

// FuzzFastChain checks fastDecorator on arbitrary expressions: every checked
// expression within the rule cost limit evaluates to the same value (or an
// error in both) in the fast plan and in cel-go's own.
func FuzzFastChain(f *testing.F) {
	for _, x := range fastExprs {
		f.Add(x.expr)
	}
	env, err := celEnv()
	if err != nil {
		f.Fatal(err)
	}
	fenv, err := fastEnv()
	if err != nil {
		f.Fatal(err)
	}
	inputs := fastInputs()
	f.Fuzz(func(t *testing.T, expr string) {
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			return
		}
		if est, err := env.EstimateCost(ast, sizeEstimator{}); err != nil || est.Max > RuleCostLimit {
			return
		}
		plain, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			return
		}
		fast, err := fenv.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			t.Fatalf("fast plan of %s: %v", expr, err)
		}
		for i := range inputs {
			act := activations.Get().(*activation)
			act.fill(&inputs[i], time.Minute+30*time.Second, v1alpha1.ModeSidecar)
			want, _, wantErr := plain.Eval(act)
			got, _, gotErr := fast.Eval(act)
			act.release()
			if (wantErr != nil) != (gotErr != nil) || (wantErr == nil && !sameVal(want, got)) {
				t.Fatalf("%s, input %d: fast plan gives %v (%v), cel-go's %v (%v)", expr, i, got, gotErr, want, wantErr)
			}
		}
	})
}
