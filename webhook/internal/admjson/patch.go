package admjson

import (
	"slices"
	"unicode/utf8"
)

// PatchWriter writes a JSON patch document operation by operation, without
// building jsonpatch.JsonPatchOperation values or reflecting over them.
// FuzzEncodePatch checks it against encoding/json of the same operations.
// The zero value is ready to use.
type PatchWriter struct {
	b []byte
	n int // operations written
}

// Reserve makes room for n bytes of patch without growing.
func (w *PatchWriter) Reserve(n int) { w.b = slices.Grow(w.b, n) }

// Ops is the number of operations written so far.
func (w *PatchWriter) Ops() int { return w.n }

// op writes one operation on path, or on the member key of path when member
// (an empty key is a member too: "/metadata/labels/" names the label ""),
// with value when not nil.
func (w *PatchWriter) op(op, path string, member bool, key string, value *string) {
	if w.n == 0 {
		w.b = append(w.b, '[')
	} else {
		w.b = append(w.b, ',')
	}
	w.n++
	w.b = append(w.b, `{"op":`...)
	w.b = AppendJSONString(w.b, op)
	w.b = append(w.b, `,"path":"`...)
	w.b = appendJSONBody(w.b, path)
	if member {
		w.b = append(w.b, '/')
		w.b = appendPointerToken(w.b, key)
	}
	w.b = append(w.b, '"')
	if value != nil {
		w.b = append(w.b, `,"value":`...)
		w.b = AppendJSONString(w.b, *value)
	}
	w.b = append(w.b, '}')
}

// MapOps writes the operations that set set and delete remove in the map at
// path whose current content is orig: one per changed key, sets in key order
// then removals; a whole-map add when orig is empty. Keys already at their
// value produce nothing.
func (w *PatchWriter) MapOps(path string, orig, set map[string]string, remove []string) {
	var buf [16]string
	keys := buf[:0]
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(orig) == 0 {
		if len(set) == 0 {
			return
		}
		w.op("add", path, false, "", nil)
		w.b = w.b[:len(w.b)-1] // reopen the operation for its map value
		w.b = append(w.b, `,"value":{`...)
		for i, k := range keys {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = AppendJSONString(w.b, k)
			w.b = append(w.b, ':')
			w.b = AppendJSONString(w.b, set[k])
		}
		w.b = append(w.b, "}}"...)
		return
	}
	for _, k := range keys {
		v := set[k]
		switch old, ok := orig[k]; {
		case !ok:
			w.op("add", path, true, k, &v)
		case old != v:
			w.op("replace", path, true, k, &v)
		}
	}
	for _, k := range remove {
		if _, ok := orig[k]; ok {
			if _, isSet := set[k]; !isSet {
				w.op("remove", path, true, k, nil)
			}
		}
	}
}

// Done closes the document; nil when no operation was written.
func (w *PatchWriter) Done() []byte {
	if w.n == 0 {
		return nil
	}
	return append(w.b, ']')
}

const hexDigits = "0123456789abcdef"

// appendPointerToken appends key escaped as a JSON pointer token (RFC 6901:
// "~" as "~0", "/" as "~1") and then as JSON string content.
func appendPointerToken(b []byte, key string) []byte {
	start := 0
	for i := 0; i < len(key); i++ {
		switch key[i] {
		case '~':
			b = append(appendJSONBody(b, key[start:i]), '~', '0')
			start = i + 1
		case '/':
			b = append(appendJSONBody(b, key[start:i]), '~', '1')
			start = i + 1
		}
	}
	return appendJSONBody(b, key[start:])
}

// AppendJSONString appends s as a JSON string, escaping like encoding/json
// (invalid UTF-8 becomes U+FFFD).
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONBody(b, s)
	return append(b, '"')
}

// appendJSONBody appends the content of s as a JSON string, without quotes.
func appendJSONBody(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
