package admjson

import (
	"errors"
	"fmt"
)

// Pod is the part of a Pod the webhooks read. Decoding only this (instead
// of a full corev1.Pod) keeps the admission path cheap; every field it writes is
// under metadata.labels and metadata.annotations.
type Pod struct {
	Metadata *PodMeta `json:"metadata"`
	Spec     struct {
		HostNetwork bool `json:"hostNetwork,omitempty"`
	} `json:"spec"`

	// maps are the raw values of metadata.labels and metadata.annotations
	// in the order given (a repeated key merges); lazy says they are not in
	// Metadata yet (DecodeMaps).
	maps         []mapJSON
	lazy         bool
	repeatedMeta bool
	// nodeSelector and affinity are the raw values of spec.nodeSelector and
	// spec.affinity (nil when absent), decoded only on demand (NodeConstraintsJSON):
	// most pods have neither, and the decision needs them rarely.
	nodeSelector, affinity []byte
}

// NodeConstraintsJSON are the raw JSON values of spec.nodeSelector and
// spec.affinity (nil when absent or null), for the caller to decode when it
// needs them: most pods have neither, and the scan does not decode them.
func (p *Pod) NodeConstraintsJSON() (nodeSelector, affinity []byte) {
	return p.nodeSelector, p.affinity
}

// mapJSON is the raw value of metadata.labels (annotations false) or
// metadata.annotations.
type mapJSON struct {
	annotations bool
	raw         []byte
}

// MapsJSON are the raw JSON values of metadata.labels and
// metadata.annotations (nil when absent); ok is false when metadata or one
// of them is given more than once (their value is then a merge of several).
// Two pods with equal MapsJSON have equal Labels and Annotations.
func (p *Pod) MapsJSON() (labels, annotations []byte, ok bool) {
	for _, m := range p.maps {
		dst := &labels
		if m.annotations {
			dst = &annotations
		}
		if *dst != nil {
			return nil, nil, false
		}
		*dst = m.raw
	}
	return labels, annotations, !p.repeatedMeta
}

// DecodeMaps fills Metadata.Labels and Metadata.Annotations of a pod read
// by DecodePodReview, which leaves them for later (a webhook may answer
// from MapsJSON alone); a pod from DecodePod has them already. An error is
// the one DecodePod would have returned for the labels or annotations.
func (p *Pod) DecodeMaps() error {
	if !p.lazy {
		return nil
	}
	for _, m := range p.maps {
		dst := &p.Metadata.Labels
		if m.annotations {
			dst = &p.Metadata.Annotations
		}
		s := scanner{b: m.raw}
		if err := s.stringMap(dst); err != nil {
			return fmt.Errorf("decode pod: %w", err)
		}
	}
	p.lazy = false
	return nil
}

// PodMeta is the part of a pod's metadata the webhooks read.
type PodMeta struct {
	Name            string            `json:"name,omitempty"`
	GenerateName    string            `json:"generateName,omitempty"`
	Namespace       string            `json:"namespace,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
	OwnerReferences []OwnerRef        `json:"ownerReferences,omitempty"`
}

// OwnerRef is the part of a metav1.OwnerReference the webhooks read.
type OwnerRef struct {
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Controller *bool  `json:"controller,omitempty"`
}

// DisplayName is the pod's name, or its generateName when it has none yet.
func (p *Pod) DisplayName() string {
	if p.Metadata.Name != "" {
		return p.Metadata.Name
	}
	return p.Metadata.GenerateName
}

// Controller is the kind and name of the pod's controller; empty when it has none.
func (p *Pod) Controller() (kind, name string) {
	for i := range p.Metadata.OwnerReferences {
		o := &p.Metadata.OwnerReferences[i]
		if o.Controller != nil && *o.Controller {
			return o.Kind, o.Name
		}
	}
	return "", ""
}

// DecodePod reads the Pod of a pod's JSON in one pass: the top-level
// "metadata" object is decoded (case-sensitively, like the API server), the
// "spec" object is scanned for hostNetwork, everything else is skipped without
// being decoded. A pod's spec and status are most of its bytes, so this is
// several times cheaper than decoding the pod (BenchmarkDecodePod).
// FuzzDecodePod checks it agrees with a full decode on every valid document.
//
// Strings without escapes are not copied: they share raw's memory (raw must
// not be changed while the Pod is in use; admission request objects
// never are).
func DecodePod(raw []byte) (*Pod, error) {
	s := scanner{b: raw}
	p, err := s.pod(false)
	if err != nil {
		return nil, fmt.Errorf("decode pod: %w", err)
	}
	if s.ws(); s.i != len(raw) {
		return nil, errors.New("decode pod: data after the object")
	}
	return p, nil
}

// pod decodes the object at s.i as DecodePod does; lazy leaves the labels
// and annotations maps to Pod.DecodeMaps.
func (s *scanner) pod(lazy bool) (*Pod, error) {
	p := Pod{lazy: lazy}
	if err := s.object(func(key []byte) error {
		switch string(key) {
		case "metadata":
			start := s.i
			if s.peek() == 'n' {
				p.Metadata, p.maps = nil, nil
				return s.literal(nullLit)
			}
			if p.Metadata == nil {
				p.Metadata = &PodMeta{}
			} else {
				p.repeatedMeta = true
			}
			// Into the same struct: a repeated key merges, as encoding/json does.
			s.i = start
			return s.meta(&p)
		case "spec":
			return s.spec(&p)
		default:
			return s.skip()
		}
	}); err != nil {
		return nil, err
	}
	if p.Metadata == nil {
		return nil, errors.New("metadata is missing")
	}
	return &p, nil
}

// meta decodes the metadata fields Pod keeps and skips the others. Field
// semantics follow encoding/json: null leaves a string alone and clears a map,
// a repeated map merges, a null map value is "".
func (s *scanner) meta(p *Pod) error {
	m := p.Metadata
	return s.object(func(key []byte) error {
		switch string(key) {
		case "name":
			return s.stringInto(&m.Name)
		case "generateName":
			return s.stringInto(&m.GenerateName)
		case "namespace":
			return s.stringInto(&m.Namespace)
		case "labels":
			return s.podMap(p, false, &m.Labels)
		case "annotations":
			return s.podMap(p, true, &m.Annotations)
		case "ownerReferences":
			return s.ownerRefs(&m.OwnerReferences)
		default:
			return s.skip()
		}
	})
}

// podMap reads metadata.labels or metadata.annotations into dst, or only
// keeps its raw value when the pod is read lazily.
func (s *scanner) podMap(p *Pod, annotations bool, dst *map[string]string) error {
	s.ws()
	start := s.i
	var err error
	if p.lazy {
		err = s.skip()
	} else {
		err = s.stringMap(dst)
	}
	if err == nil {
		p.maps = append(p.maps, mapJSON{annotations: annotations, raw: s.b[start:s.i:s.i]})
	}
	return err
}

// ownerRefs decodes metadata.ownerReferences like encoding/json decodes a
// []OwnerRef: null clears it, [] makes it empty, an element is decoded into
// the slot it lands on (so a repeated key merges), null leaves an element as
// it is, and a value of the wrong type is an error.
func (s *scanner) ownerRefs(dst *[]OwnerRef) error {
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
		*dst = []OwnerRef{}
		return nil
	}
	for {
		if n >= cap(refs) {
			refs = append(refs[:cap(refs)], OwnerRef{})
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

func (s *scanner) ownerRef(r *OwnerRef) error {
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
			v, null, err := s.boolValue("metadata.ownerReferences.controller")
			switch {
			case err != nil:
			case null:
				r.Controller = nil
			case v:
				r.Controller = &trueVal
			default:
				r.Controller = &falseVal
			}
			return err
		default:
			return s.skip()
		}
	})
}

// trueVal and falseVal back OwnerRef.Controller; never written through.
var trueVal, falseVal = true, false

// spec scans the spec object for hostNetwork (a bool or null) and keeps the
// raw values of nodeSelector and affinity (the last one given wins, as in a
// full decode).
func (s *scanner) spec(p *Pod) error {
	if s.peek() == 'n' {
		return s.literal(nullLit)
	}
	return s.object(func(key []byte) error {
		switch string(key) {
		case "hostNetwork":
			v, null, err := s.boolValue("spec.hostNetwork")
			if err == nil && !null { // null leaves it, as for a bool field
				p.Spec.HostNetwork = v
			}
			return err
		case "nodeSelector", "affinity":
			start := s.i
			if err := s.skip(); err != nil {
				return err
			}
			raw := s.b[start:s.i]
			if string(raw) == "null" {
				raw = nil
			}
			if key[0] == 'n' {
				p.nodeSelector = raw
			} else {
				p.affinity = raw
			}
			return nil
		}
		return s.skip()
	})
}
