package policies

import (
	"hash/maphash"
	"strings"
	"sync"

	"github.com/meshshift/meshshift/api/v1alpha1"
)

// Stabilizer keeps every pod of one workload on one answer: it remembers the
// decision per owner (namespace, owner kind and name — a ReplicaSet,
// StatefulSet, DaemonSet or Job) with a fingerprint of the inputs, and hands
// the same Decision back while the fingerprint is unchanged.
//
// Traffic (its figures, and whether it is present or stale) and the pod's own
// name are left out of the fingerprint on purpose: traffic moves all the time,
// and a rollout must not mix modes because a rate crossed a threshold, or data
// arrived, between two pods. A workload's traffic changes its answer at its
// next rollout (a new ReplicaSet is a new owner). Everything else — labels,
// annotations, namespace, features, capabilities, the policy's generation —
// is in the fingerprint, so a real change is seen at the next pod.
//
// Bare pods (no owner) are not remembered. Safe for concurrent use; it holds
// at most max owners and forgets an arbitrary one when full (Forget an owner
// when it is deleted to keep it small).
type Stabilizer struct {
	mu      sync.Mutex
	max     int
	seed    maphash.Seed
	entries map[ownerKey]stableEntry
}

type ownerKey struct{ namespace, kind, name string }

type stableEntry struct {
	fp uint64
	d  Decision
}

// NewStabilizer returns a Stabilizer remembering at most max owners (at least 1).
func NewStabilizer(max int) *Stabilizer {
	if max < 1 {
		max = 1
	}
	return &Stabilizer{max: max, seed: maphash.MakeSeed(), entries: map[ownerKey]stableEntry{}}
}

// Decide returns the remembered decision of the input's owner when the
// fingerprint matches, else Decide(in), remembered.
func (s *Stabilizer) Decide(in Input) Decision {
	if in.Workload.OwnerName == "" {
		return Decide(in)
	}
	k := ownerKey{in.Workload.Namespace, in.Workload.OwnerKind, in.Workload.OwnerName}
	fp := s.fingerprint(&in)
	s.mu.Lock()
	e, ok := s.entries[k]
	s.mu.Unlock()
	if ok && e.fp == fp {
		return e.d
	}
	d := Decide(in)
	// What is kept must not share the caller's memory: a webhook's strings
	// may point into the request it is answering.
	k = ownerKey{strings.Clone(k.namespace), strings.Clone(k.kind), strings.Clone(k.name)}
	kept := cloneDecision(d)
	s.mu.Lock()
	if _, exists := s.entries[k]; !exists && len(s.entries) >= s.max {
		for victim := range s.entries {
			delete(s.entries, victim)
			break
		}
	}
	s.entries[k] = stableEntry{fp: fp, d: kept}
	s.mu.Unlock()
	return d
}

// cloneDecision is d with every string copied.
func cloneDecision(d Decision) Decision {
	cloneMap := func(m map[string]string) map[string]string {
		if m == nil {
			return nil
		}
		out := make(map[string]string, len(m))
		for k, v := range m {
			out[strings.Clone(k)] = strings.Clone(v)
		}
		return out
	}
	cloneAll := func(ss []string) []string {
		if ss == nil {
			return nil
		}
		out := make([]string, len(ss))
		for i, v := range ss {
			out[i] = strings.Clone(v)
		}
		return out
	}
	d.Mode = v1alpha1.Mode(strings.Clone(string(d.Mode)))
	d.Waypoint, d.Rule, d.Reason, d.Policy = strings.Clone(d.Waypoint), strings.Clone(d.Rule), strings.Clone(d.Reason), strings.Clone(d.Policy)
	d.Labels, d.Annotations = cloneMap(d.Labels), cloneMap(d.Annotations)
	d.LabelsToRemove, d.AnnotationsToRemove, d.Warnings = cloneAll(d.LabelsToRemove), cloneAll(d.AnnotationsToRemove), cloneAll(d.Warnings)
	return d
}

// Forget drops an owner's remembered decision.
func (s *Stabilizer) Forget(namespace, ownerKind, ownerName string) {
	s.mu.Lock()
	delete(s.entries, ownerKey{namespace, ownerKind, ownerName})
	s.mu.Unlock()
}

// Len is the number of remembered owners.
func (s *Stabilizer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// fingerprint hashes every input but the traffic figures. Maps are hashed
// order-independently (a sum of per-entry hashes).
func (s *Stabilizer) fingerprint(in *Input) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	str := func(v string) {
		h.WriteString(v)
		h.WriteByte(0)
	}
	m := func(mm map[string]string) {
		var sum uint64
		for k, v := range mm {
			sum += maphash.String(s.seed, k) ^ (maphash.String(s.seed, v) * 0x9e3779b97f4a7c15)
		}
		var b [8]byte
		for i := range b {
			b[i] = byte(sum >> (8 * i))
		}
		h.Write(b[:])
	}
	p := in.Policy
	if p == nil {
		p = builtin
	}
	str(p.annotation)
	str(in.Workload.Workload)
	str(string(in.Workload.CurrentMode))
	m(in.Workload.Labels)
	m(in.Workload.Annotations)
	if in.Workload.HostNetwork {
		h.WriteByte(1)
	}
	str(in.Namespace.Name)
	m(in.Namespace.Labels)
	m(in.Namespace.Annotations)
	for _, f := range in.Features {
		str(string(f.Feature))
		str(f.Kind)
		str(f.Namespace)
		str(f.Name)
	}
	c := &in.Capabilities
	for _, b := range []bool{c.Ztunnel, c.Cilium, c.SpireCA, c.Nodes.Known} {
		if b {
			h.WriteByte(1)
		} else {
			h.WriteByte(0)
		}
	}
	str(c.Nodes.Kernel.String())
	str(string(c.Nodes.EBPF))
	for _, ns := range c.MeshNamespaces {
		str(ns)
	}
	return h.Sum64()
}
