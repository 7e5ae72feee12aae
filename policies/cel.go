package policies

import (
	"fmt"
	"reflect"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// Cost limits of one rule expression, in CEL cost units (about one per
// operation; the same units Kubernetes' CEL validation uses).
const (
	// RuleCostLimit bounds one evaluation; an evaluation that exceeds it stops,
	// counts as "no match" and is reported as a warning.
	RuleCostLimit = 10000
	// RuleEstimatedCostLimit bounds the worst case estimated at compile time;
	// a rule over it is rejected by ValidateDataplanePolicy.
	RuleEstimatedCostLimit = 100000
	// maxCollectionSize is the size the estimator assumes for maps and lists
	// (labels, annotations, features, protocols) and strings.
	maxCollectionSize = 256
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
)

var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(reflect.TypeFor[Workload](), reflect.TypeFor[Namespace](), reflect.TypeFor[Traffic](),
			ext.ParseStructTags(true)),
		cel.Variable(VarWorkload, cel.ObjectType("policies.Workload")),
		cel.Variable(VarNamespace, cel.ObjectType("policies.Namespace")),
		cel.Variable(VarTraffic, cel.ObjectType("policies.Traffic")),
		cel.Variable(VarFeatures, cel.ListType(cel.StringType)),
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
	if est.Max > RuleEstimatedCostLimit {
		return nil, fmt.Errorf("estimated cost %d exceeds the limit %d: simplify the expression", est.Max, RuleEstimatedCostLimit)
	}
	prg, err := env.Program(ast,
		cel.EvalOptions(cel.OptOptimize),
		cel.CostLimit(RuleCostLimit),
	)
	if err != nil {
		return nil, fmt.Errorf("program: %w", err)
	}
	return prg, nil
}

// sizeEstimator bounds every collection and string by maxCollectionSize, so the
// worst-case estimate of comprehensions is finite.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(cost.AstNode) *cost.SizeEstimate {
	return &cost.SizeEstimate{Min: 0, Max: maxCollectionSize}
}

func (sizeEstimator) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// activation resolves the four variables without building a map.
type activation struct {
	w        *Workload
	ns       *Namespace
	t        *Traffic
	features []string
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case VarWorkload:
		return a.w, true
	case VarNamespace:
		return a.ns, true
	case VarTraffic:
		return a.t, true
	case VarFeatures:
		return a.features, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }
