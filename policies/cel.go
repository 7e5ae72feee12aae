package policies

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"github.com/meshshift/meshshift/api/v1alpha1"
)

// Cost limit of one rule expression, in CEL cost units (about one per
// operation; the units Kubernetes' CEL validation uses).
//
// ValidateDataplanePolicy rejects a rule whose worst case, estimated with every
// map and list at most MaxCollectionSize entries and every string at most
// MaxStringSize bytes, exceeds RuleCostLimit. Inputs within those sizes
// therefore cannot exceed it, and Decide evaluates them without tracking cost.
// Larger inputs (a pod with 300 labels) are evaluated with the limit enforced:
// an evaluation that exceeds it stops, counts as "no match" and is reported as
// a warning.
const (
	RuleCostLimit     = 100000
	MaxCollectionSize = 256
	MaxStringSize     = 4096
)

// Traffic is what CEL rules see as `traffic` (fields available, stale, age,
// requestRate, errorRate, p99Latency, connectionRate, retransmitRate,
// protocols).
type Traffic struct {
	// Available is false when there is no data for the workload.
	Available bool
	// Stale is true when the data is older than the policy's trafficMaxAge (or
	// missing): rules should not trust the figures then.
	Stale bool
	// Age of the sample.
	Age time.Duration
	// Figures of signals.WorkloadTraffic (zero without data).
	RequestRate    float64
	ErrorRate      float64
	P99Latency     time.Duration
	ConnectionRate float64
	RetransmitRate float64
	// Protocols seen: "http1", "http2", "tls", "other".
	Protocols []string
}

// Variables CEL rules see. The namespace is `namespaceObject` because
// `namespace` is a reserved word in CEL (Kubernetes' admission policies use the
// same name for the same reason).
const (
	VarWorkload  = "workload"
	VarNamespace = "namespaceObject"
	VarTraffic   = "traffic"
	VarFeatures  = "features"
	// VarCurrentMode is the workload's current mode (CurrentMode), "" when unknown.
	VarCurrentMode = "currentMode"
)

// celEnv compiles every expression and plans the programs that track cost;
// fastEnv, the same declarations with fastLib, plans ruleChain.fast.
var (
	celEnv  = sync.OnceValues(func() (*cel.Env, error) { return newCELEnv(false) })
	fastEnv = sync.OnceValues(func() (*cel.Env, error) { return newCELEnv(true) })
)

func newCELEnv(fast bool) (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.Variable(VarWorkload, cel.ObjectType(celWorkloadType)),
		cel.Variable(VarNamespace, cel.ObjectType(celNamespaceType)),
		cel.Variable(VarTraffic, cel.ObjectType(celTrafficType)),
		cel.Variable(VarFeatures, cel.ListType(cel.StringType)),
		cel.Variable(VarCurrentMode, cel.StringType),
		ext.Strings(),
	}
	if fast {
		// Before cel.OptionalTypes(): see fastLib.
		opts = append(opts, cel.Lib(fastLib{}))
	}
	opts = append(opts,
		cel.OptionalTypes(),
		// Last: options above may register types with the default provider.
		withInputTypes(),
	)
	return cel.NewEnv(opts...)
}

// compiledRule is one DataplanePolicy rule ready to evaluate.
type compiledRule struct {
	name string
	id   string // RulePolicyPrefix + name
	prg  cel.Program
}

// compileExpr parses, type-checks and cost-checks one `when` expression.
// The error text carries CEL's own message with line and column.
func compileExpr(expr string) (cel.Program, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("expression must evaluate to bool, not %s", ast.OutputType())
	}
	est, err := env.EstimateCost(ast, sizeEstimator{})
	if err != nil {
		return nil, fmt.Errorf("estimate cost: %w", err)
	}
	if est.Max > RuleCostLimit {
		return nil, fmt.Errorf("estimated cost %d exceeds the limit %d: simplify the expression", est.Max, RuleCostLimit)
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(RuleCostLimit))
	if err != nil {
		return nil, fmt.Errorf("program: %w", err)
	}
	return prg, nil
}

// compileChain compiles rules (already validated one by one) into one
// expression returning the index of the first rule that matches, or -1. A rule
// with mode "current" matches only when the current mode is known. It returns
// a program without cost tracking (for inputs within the estimator's sizes;
// planned in fastEnv) and one with the limit enforced for the whole chain.
func compileChain(whens []string, current []bool) (fast, limited cel.Program, err error) {
	env, err := celEnv()
	if err != nil {
		return nil, nil, fmt.Errorf("cel environment: %w", err)
	}
	var b strings.Builder
	for i, w := range whens {
		b.WriteString("((")
		b.WriteString(w)
		b.WriteString(")")
		if current[i] {
			b.WriteString(" && " + VarCurrentMode + ` != ""`)
		}
		fmt.Fprintf(&b, ") ? %d : ", i)
	}
	b.WriteString("-1")
	ast, iss := env.Compile(b.String())
	if iss.Err() != nil {
		return nil, nil, fmt.Errorf("rule chain: %w", iss.Err())
	}
	fenv, err := fastEnv()
	if err != nil {
		return nil, nil, fmt.Errorf("cel environment: %w", err)
	}
	if fast, err = fenv.Program(ast, cel.EvalOptions(cel.OptOptimize)); err != nil {
		return nil, nil, fmt.Errorf("rule chain: %w", err)
	}
	limited, err = env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(uint64(RuleCostLimit*len(whens))))
	if err != nil {
		return nil, nil, fmt.Errorf("rule chain: %w", err)
	}
	return fast, limited, nil
}

// sizeEstimator bounds collections by MaxCollectionSize and strings by
// MaxStringSize, so the worst-case estimate of comprehensions is finite.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	if n.Type() != nil && n.Type().Kind() == types.StringKind {
		return &cost.SizeEstimate{Min: 0, Max: MaxStringSize}
	}
	return &cost.SizeEstimate{Min: 0, Max: MaxCollectionSize}
}

// withinEstimate reports whether every input is within the sizes the cost
// estimate assumed (then no rule can exceed RuleCostLimit).
func withinEstimate(in *Input) bool {
	// Label keys and values are far below MaxStringSize once the API server
	// validated them (keys ≤ 317 bytes, values ≤ 63): only their count is checked.
	small := func(m map[string]string) bool {
		if len(m) > MaxCollectionSize {
			return false
		}
		for _, v := range m {
			if len(v) > MaxStringSize {
				return false
			}
		}
		return true
	}
	w := &in.Workload
	return len(w.Labels) <= MaxCollectionSize && small(w.Annotations) &&
		len(in.Namespace.Labels) <= MaxCollectionSize && small(in.Namespace.Annotations) &&
		len(in.Features) <= MaxCollectionSize && len(in.Traffic.Protocols) <= MaxCollectionSize &&
		len(w.Name) <= MaxStringSize && len(w.OwnerName) <= MaxStringSize && len(w.Workload) <= MaxStringSize
}

func (sizeEstimator) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// activation resolves the variables without building a map. Decide takes one
// from a pool; the arrays back features and protocols for the usual sizes.
type activation struct {
	wl          celWorkload
	ns          celNamespace
	tr          celTraffic
	features    strList
	currentMode ref.Val

	featureArr  [32]ref.Val
	protocolArr [4]ref.Val
}

var activations = sync.Pool{New: func() any {
	a := new(activation)
	a.wl.typ = celStructs[celWorkloadType].typ
	a.ns.typ = celStructs[celNamespaceType].typ
	a.tr.typ = celStructs[celTrafficType].typ
	return a
}}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case VarWorkload:
		return &a.wl, true
	case VarNamespace:
		return &a.ns, true
	case VarTraffic:
		return &a.tr, true
	case VarFeatures:
		return &a.features, true
	case VarCurrentMode:
		return a.currentMode, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// fill points the activation at one decision's inputs.
func (a *activation) fill(in *Input, maxAge time.Duration, currentMode v1alpha1.Mode) {
	// Copies, not pointers: the Input stays on the caller's stack.
	a.wl.w, a.wl.labels.m, a.wl.annotations.m = in.Workload, in.Workload.Labels, in.Workload.Annotations
	a.ns.ns, a.ns.labels.m, a.ns.annotations.m = in.Namespace, in.Namespace.Labels, in.Namespace.Annotations
	t := &a.tr.t
	*t = Traffic{Available: in.HasTraffic, Stale: true}
	a.tr.protocols.vals = a.protocolArr[:0]
	if in.HasTraffic {
		tr := &in.Traffic
		t.Stale = tr.Stale(in.Now, maxAge)
		t.Age = tr.Age(in.Now)
		t.RequestRate, t.ErrorRate, t.P99Latency = tr.RequestRate, tr.ErrorRate, tr.P99Latency
		t.ConnectionRate, t.RetransmitRate = tr.ConnectionRate, tr.RetransmitRate
		for _, pr := range tr.Protocols {
			a.tr.protocols.vals = append(a.tr.protocols.vals, str(string(pr)))
		}
	}
	a.features.vals = a.featureArr[:0]
	last := ""
	for i := range in.Features {
		if f := string(in.Features[i].Feature); f != last {
			a.features.vals = append(a.features.vals, str(f))
			last = f
		}
	}
	a.currentMode = str(string(currentMode))
}

// release clears the references and returns a to the pool.
func (a *activation) release() {
	a.wl.w, a.wl.labels.m, a.wl.annotations.m = Workload{}, nil, nil
	a.ns.ns, a.ns.labels.m, a.ns.annotations.m = Namespace{}, nil, nil
	a.tr.protocols.vals, a.features.vals = nil, nil
	clear(a.featureArr[:])
	clear(a.protocolArr[:])
	activations.Put(a)
}

var errNoNative = errors.New("rule inputs cannot be converted to Go values")
