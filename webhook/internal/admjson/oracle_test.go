package admjson

import (
	"sort"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
)

// The reference implementation PatchWriter is checked against: the same
// operations as jsonpatch values, marshalled by encoding/json.

// mapPatch is (reference) the JSON patch that sets set and deletes remove in the map at
// path whose current content is orig: one operation per changed key, sets in
// key order then removals (a whole-map add when orig is empty). Keys already
// at their value produce nothing.
func mapPatch(path string, orig, set map[string]string, remove []string) []jsonpatch.JsonPatchOperation {
	if len(orig) == 0 {
		if len(set) == 0 {
			return nil
		}
		return []jsonpatch.JsonPatchOperation{{Operation: "add", Path: path, Value: set}}
	}
	var ops []jsonpatch.JsonPatchOperation
	for _, k := range sortedKeys(set) {
		v := set[k]
		old, ok := orig[k]
		switch {
		case !ok:
			ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "add", Path: path + "/" + escapePointer(k), Value: v})
		case old != v:
			ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "replace", Path: path + "/" + escapePointer(k), Value: v})
		}
	}
	for _, k := range remove {
		if _, ok := orig[k]; ok {
			if _, isSet := set[k]; !isSet {
				ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "remove", Path: path + "/" + escapePointer(k)})
			}
		}
	}
	return ops
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// escapePointer escapes one JSON pointer token (RFC 6901): the reference
// for PatchWriter's appendPointerToken.
func escapePointer(s string) string {
	return pointerEscaper.Replace(s)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
