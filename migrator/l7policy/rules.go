package l7policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// sourceKey reports whether a condition key depends on who the caller is or
// on its JWT: what reads differently once the request arrives from the
// waypoint (the peer is the waypoint, and the waypoint drops the token
// unless the jwtRule sets forwardOriginalToken).
func sourceKey(k string) bool {
	return strings.HasPrefix(k, "source.") || strings.HasPrefix(k, "request.auth.") || k == "remote.ip"
}

// sourceDependent reports whether a rule (unstructured) looks at the caller:
// any `from` clause, or a `when` condition on the caller or its JWT.
func sourceDependent(rule map[string]interface{}) bool {
	if from, ok := rule["from"].([]interface{}); ok && len(from) > 0 {
		return true
	}
	for _, c := range asList(rule["when"]) {
		if m, ok := c.(map[string]interface{}); ok {
			if k, _ := m["key"].(string); sourceKey(k) {
				return true
			}
		}
	}
	return false
}

// waypointRules are the ALLOW rules that admit the waypoint's principal for
// what the given rules allow, the waypoint having checked the caller: one
// rule per rule that looks at the caller, with that rule's `to` and those
// of its `when` conditions that do not depend on the caller or its JWT. A
// rule that does not look at the caller already admits the waypoint and
// gets none. Duplicates are dropped.
func waypointRules(rules []interface{}, principal string) []interface{} {
	var out []interface{}
	seen := map[string]bool{}
	for _, r := range rules {
		rule, ok := r.(map[string]interface{})
		if !ok || !sourceDependent(rule) {
			continue
		}
		w := map[string]interface{}{
			"from": []interface{}{map[string]interface{}{"source": map[string]interface{}{"principals": []interface{}{principal}}}},
		}
		if to, ok := rule["to"].([]interface{}); ok && len(to) > 0 {
			w["to"] = to
		}
		var when []interface{}
		for _, c := range asList(rule["when"]) {
			if m, ok := c.(map[string]interface{}); ok {
				if k, _ := m["key"].(string); !sourceKey(k) {
					when = append(when, c)
				}
			}
		}
		if len(when) > 0 {
			w["when"] = when
		}
		b, err := json.Marshal(w)
		if err != nil || seen[string(b)] {
			continue
		}
		seen[string(b)] = true
		out = append(out, w)
	}
	return out
}

// exemptWaypoint returns the rule with one more condition, source.principal
// not the waypoint's: the rule no longer matches requests the waypoint
// forwards (it has already applied the rule to the real caller).
func exemptWaypoint(rule map[string]interface{}, principal string) map[string]interface{} {
	out := make(map[string]interface{}, len(rule)+1)
	for k, v := range rule {
		out[k] = v
	}
	when := append([]interface{}(nil), asList(rule["when"])...)
	when = append(when, map[string]interface{}{"key": "source.principal", "notValues": []interface{}{principal}})
	out["when"] = when
	return out
}

func asList(v interface{}) []interface{} {
	l, _ := v.([]interface{})
	return l
}

// copyJSON deep-copies a JSON-shaped value through its encoding, with
// numbers decoded as unstructured decodes them (int64 or float64). Unlike
// runtime.DeepCopyJSONValue it returns an error, never panics, on a value
// JSON cannot hold.
func copyJSON(v interface{}) (interface{}, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out interface{}
	if err := utiljson.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func copyMap(m map[string]interface{}) (map[string]interface{}, error) {
	v, err := copyJSON(m)
	if err != nil {
		return nil, err
	}
	out, _ := v.(map[string]interface{})
	if out == nil {
		out = map[string]interface{}{}
	}
	return out, nil
}

func copyObject(u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	m, err := copyMap(u.Object)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// objectName is base+suffix, shortened with a hash of the whole when it would
// pass the 253 characters of a DNS subdomain name.
func objectName(base, suffix string) string {
	const limit = 253
	if len(base)+len(suffix) <= limit {
		return base + suffix
	}
	sum := sha256.Sum256([]byte(base + suffix))
	h := "-" + hex.EncodeToString(sum[:])[:8]
	cut := strings.TrimRight(base[:limit-len(suffix)-len(h)], "-.")
	return cut + h + suffix
}

// newPolicy builds an object a migration creates: labelled with the
// migration, annotated with its source.
func newPolicy(apiVersion, kind, namespace, name, migration, source string, spec map[string]interface{}) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": apiVersion,
		"kind":       kind,
		"metadata": map[string]interface{}{
			"name":        name,
			"namespace":   namespace,
			"labels":      map[string]interface{}{LabelMigration: migration},
			"annotations": map[string]interface{}{AnnotationSource: source},
		},
		"spec": spec,
	}}
}

func stringMapToJSON(m map[string]string) map[string]interface{} {
	out := make(map[string]interface{}, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// subset reports whether every label of a is in b with the same value.
func subset(a, b map[string]string) bool {
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func labelsString(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Sprint(m)
	}
	return string(b)
}
