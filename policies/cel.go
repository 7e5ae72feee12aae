package policies

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
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

// Traffic is what CEL rules see as `traffic`.
type Traffic struct {
	// Available is false when there is no data for the workload.
	Available bool `cel:"available"`
	// Stale is true when the data is older than the policy's trafficMaxAge (or
	// missing): rules should not trust the figures then.
	Stale bool `cel:"stale"`
	// Age of the sample.
	Age time.Duration `cel:"age"`
	// Figures of signals.WorkloadTraffic (zero without data).
	RequestRate    float64       `cel:"requestRate"`
	ErrorRate      float64       `cel:"errorRate"`
	P99Latency     time.Duration `cel:"p99Latency"`
	ConnectionRate float64       `cel:"connectionRate"`
	RetransmitRate float64       `cel:"retransmitRate"`
	// Protocols seen: "http1", "http2", "tls", "other".
	Protocols []string `cel:"protocols"`
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

var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(reflect.TypeFor[Workload](), reflect.TypeFor[Namespace](), reflect.TypeFor[Traffic](),
			ext.ParseStructTags(true)),
		cel.Variable(VarWorkload, cel.ObjectType("policies.Workload")),
		cel.Variable(VarNamespace, cel.ObjectType("policies.Namespace")),
		cel.Variable(VarTraffic, cel.ObjectType("policies.Traffic")),
		cel.Variable(VarFeatures, cel.ListType(cel.StringType)),
		cel.Variable(VarCurrentMode, cel.StringType),
		ext.Strings(),
		cel.OptionalTypes(),
	)
})

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
// a program without cost tracking (for inputs within the estimator's sizes)
// and one with the limit enforced for the whole chain.
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
	if fast, err = env.Program(ast, cel.EvalOptions(cel.OptOptimize)); err != nil {
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
	small := func(m map[string]string) bool {
		if len(m) > MaxCollectionSize {
			return false
		}
		for k, v := range m {
			if len(k) > MaxStringSize || len(v) > MaxStringSize {
				return false
			}
		}
		return true
	}
	w := &in.Workload
	return small(w.Labels) && small(w.Annotations) && small(in.Namespace.Labels) && small(in.Namespace.Annotations) &&
		len(in.Features) <= MaxCollectionSize && len(in.Traffic.Protocols) <= MaxCollectionSize &&
		len(w.Name) <= MaxStringSize && len(w.OwnerName) <= MaxStringSize && len(w.Workload) <= MaxStringSize
}

func (sizeEstimator) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// activation resolves the variables without building a map. Decide takes one
// from a pool; the arrays back features and protocols for the usual sizes.
type activation struct {
	w           *Workload
	ns          *Namespace
	t           Traffic
	features    []string
	currentMode string

	featureArr  [32]string
	protocolArr [4]string
}

var activations = sync.Pool{New: func() any { return new(activation) }}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case VarWorkload:
		return a.w, true
	case VarNamespace:
		return a.ns, true
	case VarTraffic:
		return &a.t, true
	case VarFeatures:
		return a.features, true
	case VarCurrentMode:
		return a.currentMode, true
	}
	return nil, false
}

// release clears the references and returns a to the pool.
func (a *activation) release() {
	a.w, a.ns, a.features = nil, nil, nil
	a.t = Traffic{}
	clear(a.featureArr[:])
	activations.Put(a)
}

func (a *activation) Parent() interpreter.Activation { return nil }
