package webhook

import (
	"context"
	"fmt"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
)

// NamespaceValidator rejects namespaces with an unknown meshshift.io/mode,
// with both istio-injection and istio.io/rev, and changes to the mesh labels or
// annotations of a namespace an active MeshMigration wave owns, unless the
// migrator makes them.
type NamespaceValidator struct {
	Inputs *Inputs
	// MigratorUsername is the user the migrator acts as
	// ("system:serviceaccount:<namespace>:<name>"); empty means nobody may
	// change an owned namespace's mesh metadata.
	MigratorUsername string
}

// Handle implements admission.Handler.
func (v *NamespaceValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) || req.SubResource != "" {
		return admission.Allowed("")
	}
	ns, err := namespaceOf(req.Object.Raw)
	if err != nil {
		return undecodable(kindNamespace, err)
	}
	errs, reason := ValidateNamespaceMeshMetadata(ns)
	var old *corev1.Namespace
	if req.Operation == admissionv1.Update {
		if old, err = namespaceOf(req.OldObject.Raw); err != nil {
			return undecodable(kindNamespace, err)
		}
		oldErrs, _ := ValidateNamespaceMeshMetadata(old)
		errs = newErrors(errs, oldErrs)
	}
	if len(errs) > 0 {
		return invalid(groupCore, kindNamespace, ns.Name, reason, errs)
	}
	if old == nil || !meshMetadataChanged(old, ns) || (v.MigratorUsername != "" && req.UserInfo.Username == v.MigratorUsername) {
		return admission.Allowed("")
	}
	if mm, wave := v.owningWave(ctx, ns.Name); mm != "" {
		allowed := "only the migrator (" + v.MigratorUsername + ") may change them until the wave is promoted or rolled back"
		if v.MigratorUsername == "" {
			allowed = "nobody may change them until the wave is promoted or rolled back"
		}
		return forbidden(groupCore, kindNamespace, "namespaces", ns.Name, ReasonOwnedByMigration,
			fmt.Errorf("metadata: the mesh labels and annotations of namespace %s belong to wave %s of MeshMigration %s; %s", ns.Name, wave, mm, allowed))
	}
	return admission.Allowed("")
}

// owningWave names the MeshMigration and wave in progress that owns namespace ns.
func (v *NamespaceValidator) owningWave(ctx context.Context, ns string) (migration, wave string) {
	if v.Inputs == nil || v.Inputs.Cache == nil {
		return "", ""
	}
	var list v1alpha1.MeshMigrationList
	if err := v.Inputs.Cache.List(ctx, &list); err != nil {
		logf.FromContext(ctx).Info("meshmigrations not listed from cache", "error", err.Error())
		return "", ""
	}
	for i := range list.Items {
		mm := &list.Items[i]
		for _, w := range mm.Status.Waves {
			if !waveActive(w.Phase) {
				continue
			}
			for _, n := range w.Namespaces {
				if n == ns {
					return mm.Name, w.Name
				}
			}
		}
	}
	return "", ""
}

// waveActive reports whether a wave in phase p owns its namespaces.
func waveActive(p v1alpha1.WavePhase) bool {
	switch p {
	case v1alpha1.WavePrechecking, v1alpha1.WaveMovingPolicies, v1alpha1.WaveFlipping, v1alpha1.WaveRestarting, v1alpha1.WaveBaking, v1alpha1.WaveRollingBack:
		return true
	}
	return false
}

// meshLabelKeys and meshAnnotationKeys are the namespace metadata the meshes
// and meshshift read; keys under meshshift.io/ count too.
var (
	meshLabelKeys = []string{policies.LabelIstioInjection, policies.LabelIstioRev, policies.LabelIstioDataplaneMode,
		policies.LabelIstioUseWaypoint, policies.LabelIstioInject}
	meshAnnotationKeys = []string{policies.AnnotationLinkerdInject}
)

func isMeshKey(k string, keys []string) bool {
	if strings.HasPrefix(k, "meshshift.io/") {
		return true
	}
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

func meshMetadataChanged(old, cur *corev1.Namespace) bool {
	return meshMapChanged(old.Labels, cur.Labels, meshLabelKeys) || meshMapChanged(old.Annotations, cur.Annotations, meshAnnotationKeys)
}

func meshMapChanged(a, b map[string]string, keys []string) bool {
	for k, v := range a {
		if isMeshKey(k, keys) {
			if w, ok := b[k]; !ok || w != v {
				return true
			}
		}
	}
	for k := range b {
		if isMeshKey(k, keys) {
			if _, ok := a[k]; !ok {
				return true
			}
		}
	}
	return false
}

// ValidateNamespaceMeshMetadata checks a namespace's meshshift.io/mode
// annotation and its Istio injection labels. The reason names the first kind of
// problem found (a meshshift_webhook_rejections_total reason).
func ValidateNamespaceMeshMetadata(ns *corev1.Namespace) (field.ErrorList, string) {
	var errs field.ErrorList
	reason := ""
	mp := field.NewPath("metadata")
	if v, ok := ns.Annotations[v1alpha1.AnnotationMode]; ok {
		if _, err := policies.ParseMode(mp.Child("annotations").Key(v1alpha1.AnnotationMode), v); err != nil {
			errs = append(errs, err)
			reason = ReasonInvalidMode
		}
	}
	inj, hasInj := ns.Labels[policies.LabelIstioInjection]
	if rev, ok := ns.Labels[policies.LabelIstioRev]; ok && hasInj {
		errs = append(errs, field.Invalid(mp.Child("labels").Key(policies.LabelIstioRev), rev,
			"cannot be set together with "+policies.LabelIstioInjection+"="+inj+": Istio reads one or the other; keep only one of them"))
		if reason == "" {
			reason = ReasonConflictingInjection
		}
	}
	if hasInj && inj != "enabled" && inj != "disabled" {
		errs = append(errs, field.NotSupported(mp.Child("labels").Key(policies.LabelIstioInjection), inj, []string{"enabled", "disabled"}))
		if reason == "" {
			reason = ReasonInvalidMeshMetadata
		}
	}
	if dm, ok := ns.Labels[policies.LabelIstioDataplaneMode]; ok && dm != "ambient" && dm != "none" {
		errs = append(errs, field.NotSupported(mp.Child("labels").Key(policies.LabelIstioDataplaneMode), dm, []string{"ambient", "none"}))
		if reason == "" {
			reason = ReasonInvalidMeshMetadata
		}
	}
	return errs, reason
}
