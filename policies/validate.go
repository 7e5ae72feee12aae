package policies

import (
	"strings"

	"cel.dev/cel-go/cel"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meshshift/meshshift/api/v1alpha1"
)

// Limits of a DataplanePolicy (the same as the CRD's schema).
const (
	MaxRules        = 128
	MaxAllowedModes = 64
	MaxRuleLength   = 4096
)

func modeNames() []string {
	out := make([]string, len(v1alpha1.Modes))
	for i, m := range v1alpha1.Modes {
		out[i] = string(m)
	}
	return out
}

func ruleModeNames() []string { return append(modeNames(), string(v1alpha1.RuleModeCurrent)) }

// ValidateDataplanePolicy checks a DataplanePolicy and compiles its CEL rules.
// Every error names its field (spec.rules[2].when, ...) and what is allowed; a
// CEL error carries the compiler's message with line and column.
func ValidateDataplanePolicy(dp *v1alpha1.DataplanePolicy) field.ErrorList {
	if dp == nil {
		return field.ErrorList{field.Required(field.NewPath("spec"), "a DataplanePolicy is required")}
	}
	_, errs := validate(dp)
	return errs
}

// validate returns the compiled program of each rule (nil where it failed).
func validate(dp *v1alpha1.DataplanePolicy) ([]cel.Program, field.ErrorList) {
	var errs field.ErrorList
	spec := &dp.Spec
	sp := field.NewPath("spec")
	if spec.DefaultMode != "" && !spec.DefaultMode.Valid() {
		errs = append(errs, field.NotSupported(sp.Child("defaultMode"), spec.DefaultMode, ruleModeNames()))
	}
	switch spec.MeshProvider {
	case "", v1alpha1.MeshProviderIstio, v1alpha1.MeshProviderLinkerd:
	default:
		errs = append(errs, field.NotSupported(sp.Child("meshProvider"), spec.MeshProvider,
			[]string{string(v1alpha1.MeshProviderIstio), string(v1alpha1.MeshProviderLinkerd)}))
	}
	if spec.NamespaceSelector != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(spec.NamespaceSelector,
			metav1validation.LabelSelectorValidationOptions{}, sp.Child("namespaceSelector"))...)
	}
	if spec.TrafficMaxAge != nil && spec.TrafficMaxAge.Duration <= 0 {
		errs = append(errs, field.Invalid(sp.Child("trafficMaxAge"), spec.TrafficMaxAge.Duration.String(), "must be a positive duration"))
	}

	ap := sp.Child("allowedModes")
	if len(spec.AllowedModes) > MaxAllowedModes {
		errs = append(errs, field.TooMany(ap, len(spec.AllowedModes), MaxAllowedModes))
	}
	for i, a := range spec.AllowedModes {
		ip := ap.Index(i)
		if a.NamespaceSelector != nil {
			errs = append(errs, metav1validation.ValidateLabelSelector(a.NamespaceSelector,
				metav1validation.LabelSelectorValidationOptions{}, ip.Child("namespaceSelector"))...)
		}
		if len(a.Modes) == 0 {
			errs = append(errs, field.Required(ip.Child("modes"), "list at least one of "+strings.Join(modeNames(), ", ")))
		}
		seen := map[v1alpha1.Mode]bool{}
		for j, m := range a.Modes {
			switch {
			case !m.Valid():
				errs = append(errs, field.NotSupported(ip.Child("modes").Index(j), m, modeNames()))
			case seen[m]:
				errs = append(errs, field.Duplicate(ip.Child("modes").Index(j), m))
			}
			seen[m] = true
		}
	}

	rp := sp.Child("rules")
	if len(spec.Rules) > MaxRules {
		errs = append(errs, field.TooMany(rp, len(spec.Rules), MaxRules))
	}
	prgs := make([]cel.Program, len(spec.Rules))
	names := map[string]bool{}
	for i, r := range spec.Rules {
		ip := rp.Index(i)
		switch {
		case r.Name == "":
			errs = append(errs, field.Required(ip.Child("name"), "a DNS label: lowercase letters, digits and '-'"))
		case names[r.Name]:
			errs = append(errs, field.Duplicate(ip.Child("name"), r.Name))
		default:
			for _, msg := range validation.IsDNS1123Label(r.Name) {
				errs = append(errs, field.Invalid(ip.Child("name"), r.Name, msg))
			}
		}
		names[r.Name] = true
		if !r.Mode.Valid() {
			errs = append(errs, field.NotSupported(ip.Child("mode"), r.Mode, ruleModeNames()))
		}
		wp := ip.Child("when")
		switch {
		case strings.TrimSpace(r.When) == "":
			errs = append(errs, field.Required(wp, "a CEL expression over workload, namespaceObject, traffic and features that evaluates to bool"))
		case len(r.When) > MaxRuleLength:
			errs = append(errs, field.TooLong(wp, "", MaxRuleLength))
		default:
			prg, err := compileExpr(r.When)
			if err != nil {
				errs = append(errs, field.Invalid(wp, r.When, "CEL: "+err.Error()))
				continue
			}
			prgs[i] = prg
		}
	}
	return prgs, errs
}
