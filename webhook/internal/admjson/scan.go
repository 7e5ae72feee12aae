package admjson

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"unicode/utf8"
	"unsafe"

	sigsjson "sigs.k8s.io/json"
)

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
	escaped, nonASCII, err := s.str()
	if err != nil {
		return "", false, err
	}
	body := s.b[start+1 : s.i-1]
	if !escaped && (!nonASCII || utf8.Valid(body)) {
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

// boolValue reads true, false or null (null reports true, v false).
func (s *scanner) boolValue(field string) (v, null bool, err error) {
	switch s.peek() {
	case 't':
		return true, false, s.literal(trueLit)
	case 'f':
		return false, false, s.literal(falseLit)
	case 'n':
		return false, true, s.literal(nullLit)
	}
	return false, false, fmt.Errorf("%s: want a bool at offset %d: %w", field, s.i, errJSON)
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
		escaped, nonASCII, err := s.str()
		if err != nil {
			return err
		}
		key := s.b[start+1 : s.i-1]
		if escaped || nonASCII && !utf8.Valid(key) {
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
		_, _, err := s.str()
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
			for i++; i < len(b); i++ {
				i += quoteOrBackslash(b[i:])
				if i >= len(b) || b[i] == '"' {
					break
				}
				i++ // a backslash: the next byte is escaped
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

// str skips a string starting at s.i (a '"'); escaped reports backslashes,
// nonASCII bytes of 0x80 and over (whose UTF-8 the caller must check).
func (s *scanner) str() (escaped, nonASCII bool, err error) {
	s.i++
	for s.i < len(s.b) {
		s.i += plainLen(s.b[s.i:])
		if s.i >= len(s.b) {
			break
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, nonASCII, nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return escaped, nonASCII, fmt.Errorf("unterminated string: %w", errJSON)
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !isHex4(s.b[s.i+2:s.i+6]) {
					return escaped, nonASCII, fmt.Errorf("bad \\u escape at offset %d: %w", s.i, errJSON)
				}
				s.i += 6
			default:
				return escaped, nonASCII, fmt.Errorf("bad escape at offset %d: %w", s.i, errJSON)
			}
		case c < 0x20:
			return escaped, nonASCII, fmt.Errorf("control character in string at offset %d: %w", s.i, errJSON)
		default: // 0x80 and over
			nonASCII = true
			s.i++
		}
	}
	return escaped, nonASCII, fmt.Errorf("unterminated string: %w", errJSON)
}

// Eight bytes at a time (SWAR): a string's bytes are most of a pod's JSON.
// For a word x, (v-lsb)&^v&msb has the high bit of the first byte where v is
// zero set exactly (bits above it may be spurious), so the lowest set bit of
// an OR of such tests names the first byte matching any of them.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plainLen is how many leading bytes of b are plain string bytes: ASCII
// and none of '"', '\\' or a control character.
func plainLen(b []byte) int {
	n := 0
	for ; len(b)-n >= 8; n += 8 {
		x := binary.LittleEndian.Uint64(b[n:])
		q := x ^ (lsb * '"')
		e := x ^ (lsb * '\\')
		t := ((q - lsb) &^ q) | ((e - lsb) &^ e) | ((x - lsb*0x20) &^ x) | x
		if t &= msb; t != 0 {
			return n + bits.TrailingZeros64(t)/8
		}
	}
	for ; n < len(b); n++ {
		if c := b[n]; c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			break
		}
	}
	return n
}

// quoteOrBackslash is the index of the first '"' or '\\' in b, or len(b).
func quoteOrBackslash(b []byte) int {
	n := 0
	for ; len(b)-n >= 8; n += 8 {
		x := binary.LittleEndian.Uint64(b[n:])
		q := x ^ (lsb * '"')
		e := x ^ (lsb * '\\')
		if t := (((q - lsb) &^ q) | ((e - lsb) &^ e)) & msb; t != 0 {
			return n + bits.TrailingZeros64(t)/8
		}
	}
	for ; n < len(b); n++ {
		if c := b[n]; c == '"' || c == '\\' {
			break
		}
	}
	return n
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}
