package l7policy

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// IsNarrowed reports whether u is an original that a migration narrowed: it
// carries AnnotationOriginal.
func IsNarrowed(u *unstructured.Unstructured) bool {
	if u == nil || u.Object == nil {
		return false
	}
	_, ok := u.GetAnnotations()[AnnotationOriginal]
	return ok
}

// Restore rebuilds the original from a narrowed policy: the spec recorded
// in AnnotationOriginal, exactly, and the metadata of the narrowed object
// (resourceVersion included, so one Update writes it) without
// AnnotationOriginal; an annotation map left empty is dropped, as the API
// server drops it.
func Restore(narrowed *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	if narrowed == nil || narrowed.Object == nil {
		return nil, errors.New("restore policy: no object")
	}
	ref := narrowed.GetKind() + "/" + narrowed.GetNamespace() + "/" + narrowed.GetName()
	raw, ok := narrowed.GetAnnotations()[AnnotationOriginal]
	if !ok {
		return nil, fmt.Errorf("restore %s: no %s annotation: it was not narrowed", ref, AnnotationOriginal)
	}
	var rec map[string]interface{}
	if err := utiljson.Unmarshal([]byte(raw), &rec); err != nil {
		return nil, fmt.Errorf("restore %s: annotation %s: %w", ref, AnnotationOriginal, err)
	}
	if rec == nil {
		return nil, fmt.Errorf("restore %s: annotation %s: want a JSON object {\"spec\": ...}", ref, AnnotationOriginal)
	}
	out, err := copyObject(narrowed)
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", ref, err)
	}
	if spec, ok := rec["spec"]; ok && spec != nil {
		if _, isMap := spec.(map[string]interface{}); !isMap {
			return nil, fmt.Errorf("restore %s: annotation %s: spec: want an object, got %T", ref, AnnotationOriginal, spec)
		}
		out.Object["spec"] = spec
	} else {
		delete(out.Object, "spec")
	}
	ann := out.GetAnnotations()
	delete(ann, AnnotationOriginal)
	if len(ann) == 0 {
		unstructured.RemoveNestedField(out.Object, "metadata", "annotations")
	} else {
		out.SetAnnotations(ann)
	}
	return out, nil
}
