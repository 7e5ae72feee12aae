package migrator

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
)

// PlanWaves cuts a migration's namespaces into waves: the explicit waves, or
// the selected namespaces sorted by name in batches of spec.batchSize (one
// wave without it). all lists the cluster's namespaces for a selector.
func PlanWaves(spec *meshv1alpha1.MeshMigrationSpec, all []corev1.Namespace) ([]meshv1alpha1.WaveStatus, *field.Error) {
	seen := map[string]string{}
	check := func(p *field.Path, ns, wave string) *field.Error {
		for _, s := range policies.SystemNamespaces {
			if ns == s {
				return field.Invalid(p, ns, "a system or mesh namespace is never migrated")
			}
		}
		if other, dup := seen[ns]; dup {
			return field.Duplicate(p, ns+" (also in wave "+other+")")
		}
		seen[ns] = wave
		return nil
	}
	if len(spec.Waves) > 0 {
		out := make([]meshv1alpha1.WaveStatus, 0, len(spec.Waves))
		for i, w := range spec.Waves {
			for j, ns := range w.Namespaces {
				if err := check(field.NewPath("spec", "waves").Index(i).Child("namespaces").Index(j), ns, w.Name); err != nil {
					return nil, err
				}
			}
			out = append(out, meshv1alpha1.WaveStatus{Name: w.Name, Namespaces: append([]string(nil), w.Namespaces...), Phase: meshv1alpha1.WavePending})
		}
		return out, nil
	}
	p := field.NewPath("spec", "namespaces")
	if spec.Namespaces == nil {
		return nil, field.Required(p, "namespaces is required unless explicit waves list them")
	}
	var names []string
	if len(spec.Namespaces.Names) > 0 {
		for i, n := range spec.Namespaces.Names {
			if err := check(p.Child("names").Index(i), n, ""); err != nil {
				return nil, err
			}
			names = append(names, n)
		}
	} else {
		sel, err := metav1.LabelSelectorAsSelector(spec.Namespaces.Selector)
		if err != nil {
			return nil, field.Invalid(p.Child("selector"), spec.Namespaces.Selector, err.Error())
		}
		for _, ns := range all {
			if sel.Matches(labels.Set(ns.Labels)) && check(p.Child("selector"), ns.Name, "") == nil {
				names = append(names, ns.Name)
			}
		}
	}
	if len(names) == 0 {
		return nil, field.Invalid(p, "", "selects no namespace to migrate")
	}
	sort.Strings(names)
	size := len(names)
	if spec.BatchSize != nil {
		n, err := intstr.GetScaledValueFromIntOrPercent(spec.BatchSize, len(names), true)
		if err != nil || n < 1 {
			return nil, field.Invalid(field.NewPath("spec", "batchSize"), spec.BatchSize.String(), "must be a positive count or a percentage from 1% to 100%")
		}
		size = n
	}
	var out []meshv1alpha1.WaveStatus
	for i := 0; i < len(names); i += size {
		end := min(i+size, len(names))
		out = append(out, meshv1alpha1.WaveStatus{
			Name: fmt.Sprintf("wave-%d", len(out)+1), Namespaces: append([]string(nil), names[i:end]...), Phase: meshv1alpha1.WavePending,
		})
	}
	return out, nil
}

// start plans the waves and claims every namespace of the migration; a
// namespace another live migration owns rejects this one.
func (r *Reconciler) start(ctx context.Context, mm *meshv1alpha1.MeshMigration) (ctrl.Result, error) {
	var all corev1.NamespaceList
	if mm.Spec.Namespaces != nil && mm.Spec.Namespaces.Selector != nil {
		if err := r.Client.List(ctx, &all); err != nil {
			return ctrl.Result{}, fmt.Errorf("list namespaces: %w", err)
		}
	}
	waves, ferr := PlanWaves(&mm.Spec, all.Items)
	if ferr != nil {
		return ctrl.Result{}, r.fail(ctx, mm, ReasonInvalidSpec, ferr.Error())
	}
	var owned []string
	for _, w := range waves {
		for _, n := range w.Namespaces {
			owner, err := r.liveOwner(ctx, n, mm.Name)
			if err != nil {
				return ctrl.Result{}, err
			}
			if owner != "" {
				owned = append(owned, n+" (owned by MeshMigration "+owner+")")
			}
		}
	}
	if len(owned) > 0 {
		return ctrl.Result{}, r.fail(ctx, mm, ReasonNamespaceOwned,
			"namespaces claimed by another migration: "+strings.Join(owned, ", ")+"; delete that migration first")
	}
	for _, w := range waves {
		for _, n := range w.Namespaces {
			if err := r.claim(ctx, n, mm.Name); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	mm.Status.Waves = waves
	mm.Status.CurrentWave = 0
	var desc []string
	for _, w := range waves {
		desc = append(desc, w.Name+"="+strings.Join(w.Namespaces, ","))
	}
	msg := fmt.Sprintf("%d waves to %s: %s", len(waves), mm.Spec.TargetMode, strings.Join(desc, " "))
	setCondition(mm, ConditionProgressing, true, ReasonPlanned, msg)
	r.event(mm, false, ReasonPlanned, "Plan", "%s", msg)
	return ctrl.Result{RequeueAfter: time.Millisecond}, nil
}

// liveOwner returns the migration other than self that owns a namespace, when
// that migration still exists, is not being deleted and has not finished
// (Succeeded, RolledBack or Failed; the webhook's rule too).
func (r *Reconciler) liveOwner(ctx context.Context, namespace, self string) (string, error) {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return "", nil // the precheck reports it
		}
		return "", fmt.Errorf("get namespace %s: %w", namespace, err)
	}
	owner := ns.Annotations[AnnotationMigration]
	if owner == "" || owner == self {
		return "", nil
	}
	other := &meshv1alpha1.MeshMigration{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: owner}, other); err != nil {
		if apierrors.IsNotFound(err) {
			return "", nil
		}
		return "", fmt.Errorf("get owner migration %s: %w", owner, err)
	}
	if !other.DeletionTimestamp.IsZero() || isTrue(other, ConditionSucceeded) || isTrue(other, ConditionRolledBack) || isTrue(other, ConditionFailed) {
		return "", nil // a finished migration no longer owns its namespaces
	}
	return owner, nil
}

func (r *Reconciler) claim(ctx context.Context, namespace, migration string) error {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get namespace %s: %w", namespace, err)
	}
	rec, err := readRecord(ns)
	if err != nil {
		return err
	}
	return r.applySteps(ctx, ns, []nsStep{func(ns *corev1.Namespace) {
		ns.Annotations[AnnotationMigration] = migration
		if rec != nil && rec.Migration != migration {
			// The record of a finished migration: its undo no longer applies
			// once another migration takes the namespace over.
			delete(ns.Annotations, AnnotationPreviousLabels)
		}
	}})
}

// release removes the migration's claim from a namespace that carries no
// record of it (a namespace it flipped keeps both until undone or deleted),
// or, with all, the claim and the record.
func (r *Reconciler) release(ctx context.Context, namespace, migration string, all bool) error {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get namespace %s: %w", namespace, err)
	}
	rec, err := readRecord(ns)
	if err != nil && !all {
		return err
	}
	ours := rec != nil && rec.Migration == migration
	if ours && !all {
		return nil
	}
	return r.applySteps(ctx, ns, []nsStep{func(ns *corev1.Namespace) {
		if ns.Annotations[AnnotationMigration] == migration {
			delete(ns.Annotations, AnnotationMigration)
		}
		if ours {
			delete(ns.Annotations, AnnotationPreviousLabels)
		}
	}})
}

// releaseUntouched releases the namespaces of waves that changed nothing.
func (r *Reconciler) releaseUntouched(ctx context.Context, mm *meshv1alpha1.MeshMigration) error {
	for _, w := range mm.Status.Waves {
		for _, n := range w.Namespaces {
			if err := r.release(ctx, n, mm.Name, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// finalize releases every namespace of a deleted migration and drops the
// finalizer. Deleting a migration does not undo it: flipped namespaces stay
// flipped, and a flip or undo in progress is completed first.
func (r *Reconciler) finalize(ctx context.Context, mm *meshv1alpha1.MeshMigration) error {
	if !controllerutil.ContainsFinalizer(mm, Finalizer) {
		return nil
	}
	for _, w := range mm.Status.Waves {
		for _, n := range w.Namespaces {
			// Never leave a namespace between two modes: finish a flip or
			// an undo the deletion interrupted.
			var err error
			switch w.Phase {
			case meshv1alpha1.WaveFlipping:
				err = r.flipNamespace(ctx, mm, w.Name, n)
			case meshv1alpha1.WaveRollingBack:
				// Moved policies stay moved (narrowed originals, copies,
				// waypoint): the pods may not all be on sidecars yet.
				err = r.undoNamespace(ctx, mm.Name, n, false)
			}
			if err != nil {
				return err
			}
			if err := r.release(ctx, n, mm.Name, true); err != nil {
				return err
			}
		}
	}
	forgetMigration(mm.Name)
	cp := mm.DeepCopy()
	controllerutil.RemoveFinalizer(cp, Finalizer)
	if err := r.Client.Patch(ctx, cp, client.MergeFromWithOptions(mm, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("remove finalizer: %w", err)
	}
	return nil
}
