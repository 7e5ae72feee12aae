package webhook

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/meshshift/meshshift/api/v1alpha1"
)

var decimalRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// BuiltinSLIs are the SLI names that have a built-in query.
var BuiltinSLIs = []string{"errorRate", "latencyP99", "tcpRetransmitRate", "tcpResetRate"}

// MeshMigrationValidator rejects MeshMigrations whose spec is invalid and
// those that would own a namespace another unfinished migration owns.
type MeshMigrationValidator struct {
	Inputs *Inputs
}

// Handle implements admission.Handler.
func (v *MeshMigrationValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) || req.SubResource != "" {
		return admission.Allowed("")
	}
	var mm v1alpha1.MeshMigration
	if len(req.Object.Raw) == 0 {
		return undecodable(kindMeshMigration, fmt.Errorf("decode MeshMigration: empty object"))
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, &mm); err != nil {
		return undecodable(kindMeshMigration, fmt.Errorf("decode MeshMigration: %w", err))
	}
	if errs := ValidateMeshMigrationSpec(&mm.Spec); len(errs) > 0 {
		return invalid(groupMesh, kindMeshMigration, mm.Name, ReasonInvalidSpec, errs)
	}
	if v.Inputs == nil || v.Inputs.Cache == nil {
		return admission.Allowed("")
	}
	if errs, err := v.ownership(ctx, &mm); err != nil {
		return admission.Errored(500, fmt.Errorf("list meshmigrations and namespaces from cache: %w", err))
	} else if len(errs) > 0 {
		return invalid(groupMesh, kindMeshMigration, mm.Name, ReasonNamespaceOwnedByOther, errs)
	}
	return admission.Allowed("")
}

// ownership finds namespaces mm would share with another unfinished migration.
func (v *MeshMigrationValidator) ownership(ctx context.Context, mm *v1alpha1.MeshMigration) (field.ErrorList, error) {
	var list v1alpha1.MeshMigrationList
	if err := v.Inputs.Cache.List(ctx, &list); err != nil {
		return nil, err
	}
	var nsList corev1.NamespaceList
	needNS := mm.Spec.Namespaces != nil && mm.Spec.Namespaces.Selector != nil
	for i := range list.Items {
		if t := list.Items[i].Spec.Namespaces; t != nil && t.Selector != nil {
			needNS = true
		}
	}
	if needNS {
		if err := v.Inputs.Cache.List(ctx, &nsList); err != nil {
			return nil, err
		}
	}
	mine := ownedNamespaces(mm, nsList.Items)
	var errs field.ErrorList
	for i := range list.Items {
		other := &list.Items[i]
		if other.Name == mm.Name || migrationFinished(other) {
			continue
		}
		theirs := ownedNamespaces(other, nsList.Items)
		var shared []string
		for ns := range mine {
			if theirs[ns] {
				shared = append(shared, ns)
			}
		}
		if len(shared) == 0 {
			continue
		}
		sort.Strings(shared)
		errs = append(errs, field.Forbidden(field.NewPath("spec", "namespaces"),
			fmt.Sprintf("namespaces %s are owned by MeshMigration %s, which has not finished; two migrations may not own the same namespace: leave them out, or wait until %s succeeds, fails or is rolled back",
				strings.Join(shared, ", "), other.Name, other.Name)))
	}
	return errs, nil
}

// migrationFinished reports whether a migration no longer owns its namespaces.
func migrationFinished(mm *v1alpha1.MeshMigration) bool {
	for _, c := range []string{"Succeeded", "RolledBack", "Failed"} {
		if meta.IsStatusConditionTrue(mm.Status.Conditions, c) {
			return true
		}
	}
	return false
}

// ownedNamespaces is every namespace mm names or selects (among all).
func ownedNamespaces(mm *v1alpha1.MeshMigration, all []corev1.Namespace) map[string]bool {
	out := map[string]bool{}
	if t := mm.Spec.Namespaces; t != nil {
		for _, n := range t.Names {
			out[n] = true
		}
		if t.Selector != nil {
			if sel, err := metav1.LabelSelectorAsSelector(t.Selector); err == nil && !sel.Empty() {
				for i := range all {
					if sel.Matches(labels.Set(all[i].Labels)) {
						out[all[i].Name] = true
					}
				}
			}
		}
	}
	for _, w := range mm.Spec.Waves {
		for _, n := range w.Namespaces {
			out[n] = true
		}
	}
	for _, w := range mm.Status.Waves {
		for _, n := range w.Namespaces {
			out[n] = true
		}
	}
	return out
}

// ValidateMeshMigrationSpec checks a MeshMigration's spec. Every error names its
// field and what is allowed.
func ValidateMeshMigrationSpec(spec *v1alpha1.MeshMigrationSpec) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	if !spec.TargetMode.Valid() {
		errs = append(errs, field.NotSupported(sp.Child("targetMode"), spec.TargetMode, modeNames()))
	}
	if spec.Namespaces == nil && len(spec.Waves) == 0 {
		errs = append(errs, field.Required(sp.Child("namespaces"), "give namespaces (names or a selector) or explicit waves"))
	}
	if t := spec.Namespaces; t != nil {
		tp := sp.Child("namespaces")
		if len(t.Names) == 0 && t.Selector == nil {
			errs = append(errs, field.Required(tp, "give names or a selector"))
		}
		errs = append(errs, validateNamespaceNames(tp.Child("names"), t.Names)...)
		if t.Selector != nil {
			errs = append(errs, metav1validation.ValidateLabelSelector(t.Selector, metav1validation.LabelSelectorValidationOptions{}, tp.Child("selector"))...)
		}
	}
	errs = append(errs, validateWaves(sp.Child("waves"), spec.Waves)...)
	if spec.BatchSize != nil {
		bp := sp.Child("batchSize")
		if len(spec.Waves) > 0 {
			errs = append(errs, field.Forbidden(bp, "waves and batchSize are exclusive: give explicit waves or a batch size, not both"))
		}
		errs = append(errs, validateBatchSize(bp, spec.BatchSize)...)
	}
	if spec.BakeTime != nil && spec.BakeTime.Duration < 0 {
		errs = append(errs, field.Invalid(sp.Child("bakeTime"), spec.BakeTime.Duration.String(), "must be zero or a positive duration"))
	}
	switch spec.Approval {
	case "", v1alpha1.ApprovalAutomatic, v1alpha1.ApprovalManual:
	default:
		errs = append(errs, field.NotSupported(sp.Child("approval"), spec.Approval, []string{string(v1alpha1.ApprovalAutomatic), string(v1alpha1.ApprovalManual)}))
	}
	if spec.ApprovedWaves < 0 {
		errs = append(errs, field.Invalid(sp.Child("approvedWaves"), spec.ApprovedWaves, "must be zero or more"))
	}
	switch spec.PolicyMigration {
	case "", v1alpha1.PolicyMigrationPropose, v1alpha1.PolicyMigrationApply:
	default:
		errs = append(errs, field.NotSupported(sp.Child("policyMigration"), spec.PolicyMigration,
			[]string{string(v1alpha1.PolicyMigrationPropose), string(v1alpha1.PolicyMigrationApply)}))
	}
	switch spec.OriginalPolicies {
	case "", v1alpha1.OriginalPoliciesKeep:
	case v1alpha1.OriginalPoliciesRemove:
		if spec.PolicyMigration != v1alpha1.PolicyMigrationApply {
			errs = append(errs, field.Invalid(sp.Child("originalPolicies"), spec.OriginalPolicies, "Remove needs spec.policyMigration Apply"))
		}
	default:
		errs = append(errs, field.NotSupported(sp.Child("originalPolicies"), spec.OriginalPolicies,
			[]string{string(v1alpha1.OriginalPoliciesKeep), string(v1alpha1.OriginalPoliciesRemove)}))
	}
	if spec.Gate != nil {
		errs = append(errs, validateGate(sp.Child("gate"), spec.Gate)...)
	}
	return errs
}

func modeNames() []string {
	out := make([]string, len(v1alpha1.Modes))
	for i, m := range v1alpha1.Modes {
		out[i] = string(m)
	}
	return out
}

func validateNamespaceNames(p *field.Path, names []string) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, n := range names {
		for _, msg := range validation.IsDNS1123Label(n) {
			errs = append(errs, field.Invalid(p.Index(i), n, "a namespace name: "+msg))
		}
		if seen[n] {
			errs = append(errs, field.Duplicate(p.Index(i), n))
		}
		seen[n] = true
	}
	return errs
}

func validateWaves(p *field.Path, waves []v1alpha1.WaveSpec) field.ErrorList {
	var errs field.ErrorList
	names := map[string]bool{}
	inWave := map[string]string{}
	for i, w := range waves {
		wp := p.Index(i)
		for _, msg := range validation.IsDNS1123Label(w.Name) {
			errs = append(errs, field.Invalid(wp.Child("name"), w.Name, msg))
		}
		if names[w.Name] {
			errs = append(errs, field.Duplicate(wp.Child("name"), w.Name))
		}
		names[w.Name] = true
		if len(w.Namespaces) == 0 {
			errs = append(errs, field.Required(wp.Child("namespaces"), "list at least one namespace"))
		}
		errs = append(errs, validateNamespaceNames(wp.Child("namespaces"), w.Namespaces)...)
		for j, n := range w.Namespaces {
			if prev, ok := inWave[n]; ok && prev != w.Name {
				errs = append(errs, field.Invalid(wp.Child("namespaces").Index(j), n, "already in wave "+prev+": a namespace belongs to one wave"))
			}
			inWave[n] = w.Name
		}
	}
	return errs
}

func validateBatchSize(p *field.Path, b *intstr.IntOrString) field.ErrorList {
	const allowed = "a positive count (2) or a percentage from 1% to 100% (\"25%\")"
	if b.Type == intstr.Int {
		if b.IntVal < 1 {
			return field.ErrorList{field.Invalid(p, b.IntVal, "must be "+allowed)}
		}
		return nil
	}
	n, ok := strings.CutSuffix(b.StrVal, "%")
	v, err := strconv.Atoi(n)
	if !ok || err != nil || v < 1 || v > 100 || strconv.Itoa(v) != n {
		return field.ErrorList{field.Invalid(p, b.StrVal, "must be "+allowed)}
	}
	return nil
}

func validateGate(p *field.Path, g *v1alpha1.GateSpec) field.ErrorList {
	var errs field.ErrorList
	if g.PrometheusURL != "" {
		u, err := url.Parse(g.PrometheusURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, field.Invalid(p.Child("prometheusURL"), g.PrometheusURL, "must be an http:// or https:// URL with a host"))
		}
	}
	if g.Interval != nil && g.Interval.Duration <= 0 {
		errs = append(errs, field.Invalid(p.Child("interval"), g.Interval.Duration.String(), "must be a positive duration"))
	}
	if g.FailuresToBreach < 0 {
		errs = append(errs, field.Invalid(p.Child("failuresToBreach"), g.FailuresToBreach, "must be 1 or more"))
	}
	if g.InconclusiveLimit < 0 {
		errs = append(errs, field.Invalid(p.Child("inconclusiveLimit"), g.InconclusiveLimit, "must be 1 or more"))
	}
	names := map[string]bool{}
	for i, s := range g.SLIs {
		sp := p.Child("slis").Index(i)
		if s.Name == "" {
			errs = append(errs, field.Required(sp.Child("name"), "a name: "+strings.Join(BuiltinSLIs, ", ")+" or your own with a query"))
		} else if names[s.Name] {
			errs = append(errs, field.Duplicate(sp.Child("name"), s.Name))
		}
		names[s.Name] = true
		builtin := false
		for _, b := range BuiltinSLIs {
			builtin = builtin || b == s.Name
		}
		if !builtin && strings.TrimSpace(s.Query) == "" && s.Name != "" {
			errs = append(errs, field.Required(sp.Child("query"), "SLI "+s.Name+" has no built-in query ("+strings.Join(BuiltinSLIs, ", ")+" do): give PromQL"))
		}
		if s.Max == "" && s.MaxIncrease == "" {
			errs = append(errs, field.Required(sp.Child("max"), "an SLI needs max, maxIncrease, or both"))
		}
		for _, d := range []struct{ name, v string }{{"max", s.Max}, {"maxIncrease", s.MaxIncrease}} {
			if d.v == "" {
				continue
			}
			if !decimalRE.MatchString(d.v) {
				errs = append(errs, field.Invalid(sp.Child(d.name), d.v, "must be a non-negative decimal such as 0.05"))
			}
		}
		if s.MinSample < 0 {
			errs = append(errs, field.Invalid(sp.Child("minSample"), s.MinSample, "must be zero or more"))
		}
	}
	return errs
}
