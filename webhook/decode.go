package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"
	"unsafe"

	sigsjson "sigs.k8s.io/json"
)

// decodePod reads the podView of a pod's JSON in one pass: the top-level
// "metadata" object is decoded (case-sensitively, like the API server), the
// "spec" object is scanned for hostNetwork, everything else is skipped without
// being decoded. A pod's spec and status are most of its bytes, so this is
// several times cheaper than decoding the pod (BenchmarkDecodePod).
// FuzzDecodePod checks it agrees with a full decode on every valid document.
//
// Strings without escapes are not copied: they share raw's memory (raw must
// not be changed while the podView is in use; admission request objects
// never are).
func decodePod(raw []byte) (*podView, error) {
	var p podView
	s := scanner{b: raw}
	if err := s.object(func(key []byte) error {
		switch string(key) {
		case "metadata":
			start := s.i
			if s.peek() == 'n' {
				p.Metadata = nil
				return s.literal(nullLit)
			}
			if p.Metadata == nil {
				p.Metadata = &podMeta{}
			}
			// Into the same struct: a repeated key merges, as encoding/json does.
			s.i = start
			return s.meta(p.Metadata)
		case "spec":
			return s.spec(&p)
		default:
			return s.skip()
		}
	}); err != nil {
		return nil, fmt.Errorf("decode pod: %w", err)
	}
	if s.ws(); s.i != len(raw) {
		return nil, errors.New("decode pod: data after the object")
	}
	if p.Metadata == nil {
		return nil, errors.New("decode pod: metadata is missing")
	}
	return &p, nil
}

var (
	nullLit  = []byte("null")
	trueLit  = []byte("true")
	falseLit = []byte("false")
	errJSON  = errors.New("invalid JSON")
)

// scanner walks JSON text; i is the next byte.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// meta decodes the metadata fields podView keeps and skips the others. Field
// semantics follow encoding/json: null leaves a string alone and clears a map,
// a repeated map merges, a null map value is "".
func (s *scanner) meta(m *podMeta) error {
	return s.object(func(key []byte) error {
		switch string(key) {
		case "name":
			return s.stringInto(&m.Name)
		case "generateName":
			return s.stringInto(&m.GenerateName)
		case "namespace":
			return s.stringInto(&m.Namespace)
		case "labels":
			return s.stringMap(&m.Labels)
		case "annotations":
			return s.stringMap(&m.Annotations)
		case "ownerReferences":
			return s.ownerRefs(&m.OwnerReferences)
		default:
			return s.skip()
		}
	})
}

// stringValue reads a string, or null (ok false).
func (s *scanner) stringValue() (v string, ok bool, err error) {
	switch s.peek() {
	case 'n':
		return "", false, s.literal(nullLit)
	case '"':
	default:
		return "", false, fmt.Errorf("want a string at offset %d: %w", s.i, errJSON)
	}
	start := s.i
	escaped, err := s.str()
	if err != nil {
		return "", false, err
	}
	body := s.b[start+1 : s.i-1]
	if !escaped && utf8.Valid(body) {
		return bytesString(body), true, nil
	}
	return unquote(s.b[start:s.i])
}

// unquote decodes a JSON string with escapes or invalid UTF-8 (the rare case;
// its own function so that stringValue's result stays on the stack).
func unquote(quoted []byte) (string, bool, error) {
	var v string
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(quoted, &v); err != nil {
		return "", false, err
	}
	return v, true, nil
}

func (s *scanner) stringInto(dst *string) error {
	v, ok, err := s.stringValue()
	if ok {
		*dst = v
	}
	return err
}

func (s *scanner) stringMap(dst *map[string]string) error {
	if s.peek() == 'n' {
		*dst = nil
		return s.literal(nullLit)
	}
	if *dst == nil {
		// One group (8 entries) up front; more labels grow it.
		*dst = make(map[string]string, 8)
	}
	m := *dst
	return s.object(func(key []byte) error {
		v, _, err := s.stringValue()
		if err == nil {
			m[bytesString(key)] = v
		}
		return err
	})
}

// bytesString is b as a string without a copy: b must not change afterwards.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// ownerRefs decodes metadata.ownerReferences like encoding/json decodes a
// []ownerRef: null clears it, [] makes it empty, an element is decoded into
// the slot it lands on (so a repeated key merges), null leaves an element as
// it is, and a value of the wrong type is an error.
func (s *scanner) ownerRefs(dst *[]ownerRef) error {
	switch s.peek() {
	case 'n':
		*dst = nil
		return s.literal(nullLit)
	case '[':
	default:
		return fmt.Errorf("metadata.ownerReferences: want an array at offset %d: %w", s.i, errJSON)
	}
	s.i++
	refs := *dst
	n := 0
	if s.peek() == ']' {
		s.i++
		*dst = []ownerRef{}
		return nil
	}
	for {
		if n >= cap(refs) {
			refs = append(refs[:cap(refs)], ownerRef{})
		}
		if n >= len(refs) {
			refs = refs[:n+1]
		}
		if err := s.ownerRef(&refs[n]); err != nil {
			return err
		}
		n++
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			*dst = refs[:n]
			return nil
		default:
			return fmt.Errorf("want ',' or ']' at offset %d: %w", s.i, errJSON)
		}
	}
}

func (s *scanner) ownerRef(r *ownerRef) error {
	switch s.peek() {
	case 'n':
		return s.literal(nullLit)
	case '{':
	default:
		return fmt.Errorf("metadata.ownerReferences: want an object at offset %d: %w", s.i, errJSON)
	}
	return s.object(func(key []byte) error {
		switch string(key) {
		case "kind":
			return s.stringInto(&r.Kind)
		case "name":
			return s.stringInto(&r.Name)
		case "controller":
			switch s.peek() {
			case 't':
				r.Controller = &trueVal
				return s.literal(trueLit)
			case 'f':
				r.Controller = &falseVal
				return s.literal(falseLit)
			case 'n':
				r.Controller = nil
				return s.literal(nullLit)
			}
			return fmt.Errorf("metadata.ownerReferences.controller: want a bool at offset %d: %w", s.i, errJSON)
		default:
			return s.skip()
		}
	})
}

// trueVal and falseVal back ownerRef.Controller; never written through.
var trueVal, falseVal = true, false

// spec scans the spec object for hostNetwork (a bool or null).
func (s *scanner) spec(p *podView) error {
	if s.peek() == 'n' {
		return s.literal(nullLit)
	}
	return s.object(func(key []byte) error {
		if string(key) != "hostNetwork" {
			return s.skip()
		}
		switch s.peek() {
		case 't':
			p.Spec.HostNetwork = true
			return s.literal(trueLit)
		case 'f':
			p.Spec.HostNetwork = false
			return s.literal(falseLit)
		case 'n':
			return s.literal(nullLit)
		}
		return fmt.Errorf("spec.hostNetwork: want a bool: %w", errJSON)
	})
}

// object scans an object, calling field with each (unescaped) key; field must
// consume the value.
func (s *scanner) object(field func(key []byte) error) error {
	if s.peek() != '{' {
		return fmt.Errorf("want an object at offset %d: %w", s.i, errJSON)
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		if s.peek() != '"' {
			return fmt.Errorf("want a key at offset %d: %w", s.i, errJSON)
		}
		start := s.i
		escaped, err := s.str()
		if err != nil {
			return err
		}
		key := s.b[start+1 : s.i-1]
		if escaped || !utf8.Valid(key) {
			var k string
			if err := sigsjson.UnmarshalCaseSensitivePreserveInts(s.b[start:s.i], &k); err != nil {
				return err
			}
			key = []byte(k)
		}
		if s.peek() != ':' {
			return fmt.Errorf("want ':' at offset %d: %w", s.i, errJSON)
		}
		s.i++
		if err := field(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return fmt.Errorf("want ',' or '}' at offset %d: %w", s.i, errJSON)
		}
	}
}

// skip skips one value the pod view does not read. It follows only strings
// and nesting, and does not check the syntax in between: the objects and
// reviews it reads have been parsed already (by the API server, which
// encodes them; FuzzDecodePod and FuzzDecodeReview check it on valid JSON).
// On invalid JSON it may accept what value rejects, but it always ends and
// never reads past the input.
func (s *scanner) skip() error {
	switch s.peek() {
	case '"':
		_, err := s.str()
		return err
	case '{', '[':
	default: // a number or a literal: up to the next delimiter
		start := s.i
		for s.i < len(s.b) && !isDelim(s.b[s.i]) {
			s.i++
		}
		if s.i == start {
			return fmt.Errorf("want a value at offset %d: %w", s.i, errJSON)
		}
		return nil
	}
	// An object or array: only strings (which may hold brackets) and the
	// brackets themselves matter.
	b, depth := s.b, 0
	for i := s.i; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				s.i = i + 1
				return nil
			}
		}
	}
	return fmt.Errorf("unexpected end of input: %w", errJSON)
}

func isDelim(c byte) bool {
	switch c {
	case ',', ':', '{', '}', '[', ']', '"', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

func (s *scanner) literal(lit []byte) error {
	if !bytes.HasPrefix(s.b[s.i:], lit) {
		return fmt.Errorf("want %s at offset %d: %w", lit, s.i, errJSON)
	}
	s.i += len(lit)
	return nil
}

// str skips a string starting at s.i (a '"'); escaped reports backslashes.
func (s *scanner) str() (escaped bool, err error) {
	s.i++
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return escaped, fmt.Errorf("unterminated string: %w", errJSON)
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !isHex4(s.b[s.i+2:s.i+6]) {
					return escaped, fmt.Errorf("bad \\u escape at offset %d: %w", s.i, errJSON)
				}
				s.i += 6
			default:
				return escaped, fmt.Errorf("bad escape at offset %d: %w", s.i, errJSON)
			}
		case c < 0x20:
			return escaped, fmt.Errorf("control character in string at offset %d: %w", s.i, errJSON)
		default:
			s.i++
		}
	}
	return escaped, fmt.Errorf("unterminated string: %w", errJSON)
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}
