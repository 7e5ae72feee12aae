package policies

import (
	"strconv"
	"time"

	"cel.dev/cel-go/cel"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meshshift/meshshift/api/v1alpha1"
)

// DefaultTrafficMaxAge is the policy's trafficMaxAge when it sets none.
const DefaultTrafficMaxAge = 5 * time.Minute

// Policy is a DataplanePolicy compiled for Decide: selectors parsed, CEL rules
// compiled and cost-checked. Compile it once per generation; it is immutable and
// safe for concurrent use.
type Policy struct {
	name          string
	generation    int64
	annotation    string // "<name>/<generation>"
	selector      labels.Selector
	selectorEmpty bool
	defaultMode   v1alpha1.RuleMode
	provider      v1alpha1.MeshProvider
	trafficMaxAge time.Duration
	allowed       []allowedEntry
	rules         []compiledRule
	ruleModes     []v1alpha1.RuleMode
	chains        []ruleChain
	// out holds the precomputed labels and annotations per rule and mode.
	out *outputs
}

type allowedEntry struct {
	selector labels.Selector
	modes    modeSet
}

// modeSet is a bit set of modes.
type modeSet uint8

func modeBit(m v1alpha1.Mode) modeSet {
	for i, x := range v1alpha1.Modes {
		if x == m {
			return 1 << i
		}
	}
	return 0
}

func (s modeSet) has(m v1alpha1.Mode) bool { return s&modeBit(m) != 0 }

func (s modeSet) String() string {
	var b []byte
	for _, m := range v1alpha1.Modes {
		if s.has(m) {
			if len(b) > 0 {
				b = append(b, ", "...)
			}
			b = append(b, m...)
		}
	}
	return string(b)
}

// Name is the policy's name; Generation its metadata.generation.
func (p *Policy) Name() string      { return p.name }
func (p *Policy) Generation() int64 { return p.generation }

// DefaultMode is the mode nothing else decides: a mode, or "current".
func (p *Policy) DefaultMode() v1alpha1.RuleMode { return p.defaultMode }

// Provider is the mesh serving the sidecar mode.
func (p *Policy) Provider() v1alpha1.MeshProvider { return p.provider }

// TrafficMaxAge is how old traffic may be before rules see it as stale.
func (p *Policy) TrafficMaxAge() time.Duration { return p.trafficMaxAge }

// Selects reports whether the policy governs a namespace with these labels.
func (p *Policy) Selects(nsLabels map[string]string) bool {
	return p.selector.Matches(labels.Set(nsLabels))
}

// Allows reports whether app teams may ask for mode m in a namespace with these
// labels (the first allowedModes entry whose selector matches decides; with
// none matching, or none at all, every mode is allowed).
func (p *Policy) Allows(nsLabels map[string]string, m v1alpha1.Mode) bool {
	s, ok := p.allowedModes(nsLabels)
	return !ok || s.has(m)
}

// AllowedModes returns the modes allowed in a namespace with these labels.
func (p *Policy) AllowedModes(nsLabels map[string]string) []v1alpha1.Mode {
	s, ok := p.allowedModes(nsLabels)
	var out []v1alpha1.Mode
	for _, m := range v1alpha1.Modes {
		if !ok || s.has(m) {
			out = append(out, m)
		}
	}
	return out
}

func (p *Policy) allowedModes(nsLabels map[string]string) (modeSet, bool) {
	for _, a := range p.allowed {
		if a.selector.Matches(labels.Set(nsLabels)) {
			return a.modes, true
		}
	}
	return 0, false
}

// Builtin is the policy used when no DataplanePolicy governs a namespace:
// default "current" (every workload keeps the mode it runs in; installing
// meshshift changes no pod's dataplane), Istio, no rules, every mode allowed.
func Builtin() *Policy { return builtin }

var builtin = func() *Policy {
	p, errs := Compile(&v1alpha1.DataplanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "builtin"}})
	if len(errs) > 0 {
		panic("builtin policy does not compile: " + errs.ToAggregate().Error())
	}
	return p
}()

// Compile validates and compiles a DataplanePolicy. It returns nil and the
// errors (ValidateDataplanePolicy's) when the policy is invalid.
func Compile(dp *v1alpha1.DataplanePolicy) (*Policy, field.ErrorList) {
	if dp == nil {
		return nil, field.ErrorList{field.Required(field.NewPath("spec"), "a DataplanePolicy is required")}
	}
	prgs, errs := validate(dp)
	if len(errs) > 0 {
		return nil, errs
	}
	spec := &dp.Spec
	p := &Policy{
		name:          dp.Name,
		generation:    dp.Generation,
		annotation:    dp.Name + "/" + strconv.FormatInt(dp.Generation, 10),
		defaultMode:   spec.DefaultMode,
		provider:      spec.MeshProvider,
		trafficMaxAge: DefaultTrafficMaxAge,
	}
	if p.defaultMode == "" {
		p.defaultMode = v1alpha1.RuleModeCurrent
	}
	if p.provider == "" {
		p.provider = v1alpha1.MeshProviderIstio
	}
	if spec.TrafficMaxAge != nil {
		p.trafficMaxAge = spec.TrafficMaxAge.Duration
	}
	// Selectors were validated; conversion cannot fail here.
	p.selector, _ = selectorOf(spec.NamespaceSelector)
	p.selectorEmpty = spec.NamespaceSelector == nil || (len(spec.NamespaceSelector.MatchLabels) == 0 && len(spec.NamespaceSelector.MatchExpressions) == 0)
	for _, a := range spec.AllowedModes {
		sel, _ := selectorOf(a.NamespaceSelector)
		var s modeSet
		for _, m := range a.Modes {
			s |= modeBit(m)
		}
		p.allowed = append(p.allowed, allowedEntry{selector: sel, modes: s})
	}
	for i, r := range spec.Rules {
		p.rules = append(p.rules, compiledRule{name: r.Name, id: RulePolicyPrefix + r.Name, prg: prgs[i]})
		p.ruleModes = append(p.ruleModes, r.Mode)
	}
	for start := 0; start < len(spec.Rules); start += chainLength {
		end := min(start+chainLength, len(spec.Rules))
		var whens []string
		var current []bool
		for _, r := range spec.Rules[start:end] {
			whens = append(whens, r.When)
			current = append(current, r.Mode == v1alpha1.RuleModeCurrent)
		}
		fast, limited, err := compileChain(whens, current)
		if err != nil {
			return nil, field.ErrorList{field.InternalError(field.NewPath("spec", "rules"), err)}
		}
		p.chains = append(p.chains, ruleChain{start: start, fast: fast, limited: limited})
	}
	p.out = newOutputs(p)
	return p, nil
}

// chainLength is how many rules one chained program holds (CEL's parser limits
// nesting depth; one chain is one evaluation).
const chainLength = 16

// ruleChain evaluates rules[start:start+chainLength] in one program.
type ruleChain struct {
	start         int
	fast, limited cel.Program
}

func selectorOf(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

// Select picks the policy governing a namespace: among the policies whose
// non-empty namespaceSelector matches, the first by name; else the first by name
// with an empty selector; else Builtin(). policies need not be sorted.
func Select(policies []*Policy, nsLabels map[string]string) *Policy {
	var specific, catchAll *Policy
	for _, p := range policies {
		if p == nil || !p.Selects(nsLabels) {
			continue
		}
		if p.selectorEmpty {
			if catchAll == nil || p.name < catchAll.name {
				catchAll = p
			}
			continue
		}
		if specific == nil || p.name < specific.name {
			specific = p
		}
	}
	switch {
	case specific != nil:
		return specific
	case catchAll != nil:
		return catchAll
	}
	return builtin
}
