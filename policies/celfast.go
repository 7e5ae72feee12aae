package policies

import (
	"math"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// The chained program without cost tracking (ruleChain.fast) is planned with
// fastDecorator, which replaces the shapes rules use most with nodes that read
// the activation's Go values in place instead of boxing them into ref.Val:
//
//   - an ordering (<, <=, >, >=) between traffic's numeric fields and number or
//     duration constants: `traffic.requestRate > 100.0`;
//   - a label lookup with a default, `m.?k.orValue(d)` or `m[?"k"].orValue(d)`,
//     on workload's or namespaceObject's labels or annotations, and its
//     equality (==, !=) with a string constant.
//
// Each node computes exactly what cel-go's standard library computes (the
// comparisons follow common/types' rules, NaN orders false); whenever the
// values are not the ones expected (a comprehension variable shadows
// `traffic`, a type only dyn() allows) it evaluates the original node instead.
// Programs with cost tracking (ruleChain.limited, the per-rule programs) are
// planned without it, so their cost accounting is cel-go's own.

// fastLib adds fastDecorator to the programs of the environment it is part of.
// It must come before cel.OptionalTypes(): the optional library replaces
// orValue calls by nodes whose arguments cannot be inspected.
type fastLib struct{}

func (fastLib) CompileOptions() []cel.EnvOption { return nil }

func (fastLib) ProgramOptions() []cel.ProgramOption {
	return []cel.ProgramOption{cel.CustomDecoratorV2(fastDecorator)}
}

func fastDecorator(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
	call, ok := i.(interpreter.InterpretableCall)
	if !ok || len(call.Args()) != 2 {
		return i, nil
	}
	switch call.Function() {
	case operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals:
		if n := newTrafficCompare(call); n != nil {
			return n, nil
		}
	case operators.Equals, operators.NotEquals:
		if n := newLabelEquals(call); n != nil {
			return n, nil
		}
	case "orValue":
		if id := call.OverloadID(); id == "" || id == "optional_orValue_value" {
			if n := newLabelOrValue(call); n != nil {
				return n, nil
			}
		}
	}
	return i, nil
}

// num is a CEL number or duration held without boxing.
type num struct {
	kind numKind
	f    float64 // numDouble
	i    int64   // numInt, numDuration (nanoseconds)
	u    uint64  // numUint
}

type numKind uint8

const (
	numDouble numKind = iota + 1
	numInt
	numUint
	numDuration
)

func constNum(v ref.Val) (num, bool) {
	switch x := v.(type) {
	case types.Double:
		return num{kind: numDouble, f: float64(x)}, true
	case types.Int:
		return num{kind: numInt, i: int64(x)}, true
	case types.Uint:
		return num{kind: numUint, u: uint64(x)}, true
	case types.Duration:
		return num{kind: numDuration, i: int64(x.Duration)}, true
	}
	return num{}, false
}

func doubleField(get func(*Traffic) float64) func(*Traffic) num {
	return func(t *Traffic) num { return num{kind: numDouble, f: get(t)} }
}

func durationField(get func(*Traffic) time.Duration) func(*Traffic) num {
	return func(t *Traffic) num { return num{kind: numDuration, i: int64(get(t))} }
}

// trafficNums reads the numeric fields of `traffic` (the getters of
// celStructs[celTrafficType] without the boxing).
var trafficNums = map[string]func(*Traffic) num{
	"age":            durationField(func(t *Traffic) time.Duration { return t.Age }),
	"p99Latency":     durationField(func(t *Traffic) time.Duration { return t.P99Latency }),
	"requestRate":    doubleField(func(t *Traffic) float64 { return t.RequestRate }),
	"errorRate":      doubleField(func(t *Traffic) float64 { return t.ErrorRate }),
	"connectionRate": doubleField(func(t *Traffic) float64 { return t.ConnectionRate }),
	"retransmitRate": doubleField(func(t *Traffic) float64 { return t.RetransmitRate }),
}

// operand is one side of a trafficCompare: a constant or a traffic field.
type operand struct {
	field func(*Traffic) num // nil for a constant
	konst num
}

func (o *operand) get(t *Traffic) num {
	if o.field != nil {
		return o.field(t)
	}
	return o.konst
}

// attrPath returns the variable and the constant, non-optional qualifiers of
// an attribute node; ok is false for any other node.
func attrPath(i interpreter.InterpretableV2) (name string, quals []interpreter.Qualifier, ok bool) {
	ia, ok := i.(interpreter.InterpretableAttribute)
	if !ok {
		return "", nil, false
	}
	na, ok := ia.Attr().(interpreter.NamespacedAttribute)
	if !ok || len(na.CandidateVariableNames()) != 1 {
		return "", nil, false
	}
	return na.CandidateVariableNames()[0], na.Qualifiers(), true
}

// constField is the field name of a constant string qualifier.
func constField(q interpreter.Qualifier) (string, bool) {
	cq, ok := q.(interpreter.ConstantQualifier)
	if !ok {
		return "", false
	}
	s, ok := cq.Value().(types.String)
	return string(s), ok
}

func newOperand(i interpreter.InterpretableV2) (operand, bool) {
	if c, ok := i.(interpreter.InterpretableConst); ok {
		n, ok := constNum(c.Value())
		return operand{konst: n}, ok
	}
	name, quals, ok := attrPath(i)
	if !ok || name != VarTraffic || len(quals) != 1 || quals[0].IsOptional() {
		return operand{}, false
	}
	field, ok := constField(quals[0])
	if !ok {
		return operand{}, false
	}
	get, ok := trafficNums[field]
	return operand{field: get}, ok
}

// trafficCompare is an ordering with a traffic field on at least one side and
// a constant or traffic field on the other.
type trafficCompare struct {
	orig     interpreter.InterpretableCall
	lhs, rhs operand
	// less and equal say which comparison results make the ordering true.
	less, equal, greater bool
}

func newTrafficCompare(call interpreter.InterpretableCall) interpreter.InterpretableV2 {
	args := call.Args()
	lhs, lok := newOperand(args[0])
	rhs, rok := newOperand(args[1])
	if !lok || !rok || (lhs.field == nil && rhs.field == nil) {
		return nil
	}
	n := &trafficCompare{orig: call, lhs: lhs, rhs: rhs}
	switch call.Function() {
	case operators.Less:
		n.less = true
	case operators.LessEquals:
		n.less, n.equal = true, true
	case operators.Greater:
		n.greater = true
	case operators.GreaterEquals:
		n.greater, n.equal = true, true
	}
	return n
}

func (n *trafficCompare) ID() int64 { return n.orig.ID() }

func (n *trafficCompare) Eval(act interpreter.Activation) ref.Val {
	return interpreter.EvalActivation(act, n.Exec)
}

func (n *trafficCompare) Exec(f *interpreter.ExecutionFrame) ref.Val {
	v, _ := f.ResolveName(VarTraffic)
	t, ok := v.(*celTraffic)
	if !ok {
		return n.orig.Exec(f)
	}
	l, r := n.lhs.get(&t.t), n.rhs.get(&t.t)
	if (l.kind == numDouble && math.IsNaN(l.f)) || (r.kind == numDouble && math.IsNaN(r.f)) {
		return types.False // the standard library orders NaN false
	}
	cmp, ok := compareNums(l, r)
	if !ok {
		return n.orig.Exec(f)
	}
	return types.Bool((cmp < 0 && n.less) || (cmp == 0 && n.equal) || (cmp > 0 && n.greater))
}

// compareNums orders two non-NaN values as common/types' Compare methods do;
// ok is false for kinds they do not order (a duration with a number).
func compareNums(l, r num) (int, bool) {
	switch {
	case l.kind == r.kind:
		switch l.kind {
		case numDouble:
			return cmpOrdered(l.f, r.f), true
		case numInt, numDuration:
			return cmpOrdered(l.i, r.i), true
		case numUint:
			return cmpOrdered(l.u, r.u), true
		}
	case l.kind == numDouble && r.kind == numInt:
		return compareDoubleInt(l.f, r.i), true
	case l.kind == numInt && r.kind == numDouble:
		return -compareDoubleInt(r.f, l.i), true
	case l.kind == numDouble && r.kind == numUint:
		return compareDoubleUint(l.f, r.u), true
	case l.kind == numUint && r.kind == numDouble:
		return -compareDoubleUint(r.f, l.u), true
	}
	return 0, false
}

func cmpOrdered[T int64 | uint64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareDoubleInt and compareDoubleUint are common/types' rules.
func compareDoubleInt(d float64, i int64) int {
	if d < math.MinInt64 {
		return -1
	}
	if d > math.MaxInt64 {
		return 1
	}
	return cmpOrdered(d, float64(i))
}

func compareDoubleUint(d float64, u uint64) int {
	if d < 0 {
		return -1
	}
	if d > math.MaxUint64 {
		return 1
	}
	return cmpOrdered(d, float64(u))
}

// labelOrValue is `m.?k.orValue(d)` (or `m[?"k"].orValue(d)`) with m a
// variable's field path and k a constant: when m is one of the activation's
// label or annotation maps, the key is looked up without an optional wrapper.
type labelOrValue struct {
	orig   interpreter.InterpretableCall
	opt    interpreter.InterpretableV2 // the optional lookup, orig's receiver
	name   string                      // the variable
	path   []interpreter.Qualifier     // from the variable to the map
	key    string
	def    interpreter.InterpretableV2
	defStr types.String // def's value when it is a string constant
	defOK  bool
}

func newLabelOrValue(call interpreter.InterpretableCall) interpreter.InterpretableV2 {
	args := call.Args()
	name, quals, ok := attrPath(args[0])
	if !ok || len(quals) == 0 || !quals[len(quals)-1].IsOptional() {
		return nil
	}
	for _, q := range quals[:len(quals)-1] {
		if q.IsOptional() {
			return nil
		}
	}
	key, ok := constField(quals[len(quals)-1])
	if !ok {
		return nil
	}
	n := &labelOrValue{orig: call, opt: args[0], name: name, path: quals[:len(quals)-1], key: key, def: args[1]}
	if c, ok := args[1].(interpreter.InterpretableConst); ok {
		n.defStr, n.defOK = c.Value().(types.String)
	}
	return n
}

// strMap resolves the map; ok is false when it is not a *strMap (then slow
// decides).
func (n *labelOrValue) strMap(f *interpreter.ExecutionFrame) (*strMap, bool) {
	obj, found := f.ResolveName(n.name)
	if !found {
		return nil, false
	}
	switch obj.(type) {
	case *celWorkload, *celNamespace:
	default:
		return nil, false
	}
	for _, q := range n.path {
		var err error
		if obj, err = q.Qualify(f, obj); err != nil {
			return nil, false
		}
	}
	m, ok := obj.(*strMap)
	return m, ok
}

func (n *labelOrValue) ID() int64 { return n.orig.ID() }

func (n *labelOrValue) Eval(act interpreter.Activation) ref.Val {
	return interpreter.EvalActivation(act, n.Exec)
}

func (n *labelOrValue) Exec(f *interpreter.ExecutionFrame) ref.Val {
	m, ok := n.strMap(f)
	if !ok {
		return n.slow(f)
	}
	if v, found := m.m[n.key]; found {
		return str(v)
	}
	return n.def.Exec(f)
}

// slow is what the optional library's orValue node does (the call itself has
// no binding: that library always replaces it).
func (n *labelOrValue) slow(f *interpreter.ExecutionFrame) ref.Val {
	lhs := n.opt.Exec(f)
	switch v := lhs.(type) {
	case *types.Err, *types.Unknown:
		return lhs
	case *types.Optional:
		if v.HasValue() {
			return v.GetValue()
		}
		return n.def.Exec(f)
	}
	return types.NoSuchOverloadErr()
}

// labelEquals is a labelOrValue with a string constant default compared (==,
// !=) with a string constant: no value is boxed.
type labelEquals struct {
	orig   interpreter.InterpretableCall
	lookup *labelOrValue
	want   string
	ne     bool
}

func newLabelEquals(call interpreter.InterpretableCall) interpreter.InterpretableV2 {
	args := call.Args()
	for i := range 2 {
		lv, ok := args[i].(*labelOrValue)
		if !ok || !lv.defOK {
			continue
		}
		c, ok := args[1-i].(interpreter.InterpretableConst)
		if !ok {
			continue
		}
		if s, ok := c.Value().(types.String); ok {
			return &labelEquals{orig: call, lookup: lv, want: string(s), ne: call.Function() == operators.NotEquals}
		}
	}
	return nil
}

func (n *labelEquals) ID() int64 { return n.orig.ID() }

func (n *labelEquals) Eval(act interpreter.Activation) ref.Val {
	return interpreter.EvalActivation(act, n.Exec)
}

func (n *labelEquals) Exec(f *interpreter.ExecutionFrame) ref.Val {
	m, ok := n.lookup.strMap(f)
	if !ok {
		return n.orig.Exec(f)
	}
	v, found := m.m[n.lookup.key]
	if !found {
		v = string(n.lookup.defStr)
	}
	return types.Bool((v == n.want) != n.ne)
}
