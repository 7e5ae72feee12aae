package signals

import (
	securityapi "istio.io/api/security/v1beta1"
)

// Istio applies some kinds by precedence rather than all at once: one Sidecar
// per workload, and PeerAuthentication inherited from mesh to namespace to
// workload. The index files them like any other entry and resolves them when
// it answers for one pod.

// precKind names the kinds whose objects override each other by scope.
type precKind uint8

const (
	precNone precKind = iota
	// precSidecar: the one most specific Sidecar applies.
	precSidecar
	// precPeerAuth: mesh, namespace and workload PeerAuthentication inherit
	// from each other (an UNSET mode inherits the wider one).
	precPeerAuth
)

// Scope levels of a precedence kind, widest first.
const (
	levelMesh uint8 = iota + 1
	levelNamespace
	levelWorkload
)

func levelOf(mesh, selector bool) uint8 {
	switch {
	case selector:
		return levelWorkload
	case mesh:
		return levelMesh
	}
	return levelNamespace
}

// selected gathers the pod-selecting entries that select one pod: entries of
// a precedence kind wait in prec for resolvePrec, the others go to dst.
type selected struct {
	dst   Features
	prec  [8]*entry
	n     int
	extra []*entry
}

func (s *selected) add(e *entry) {
	if e.prec == precNone {
		s.dst = appendEntry(s.dst, e)
		return
	}
	if s.n < len(s.prec) {
		s.prec[s.n] = e
		s.n++
		return
	}
	s.extra = append(s.extra, e)
}

// older reports whether a wins over b among objects of one level: the older,
// then the smaller name (istiod sorts by creation time, then name).
func older(a, b *entry) bool {
	if !a.created.Equal(b.created) {
		return a.created.Before(b.created)
	}
	if a.key.Namespace != b.key.Namespace {
		return a.key.Namespace < b.key.Namespace
	}
	return a.key.Name < b.key.Name
}

// resolvePrec appends the features of the precedence entries that apply.
func (s *selected) resolvePrec() {
	if s.n == 0 {
		return
	}
	all := append(s.prec[:s.n:s.n], s.extra...)
	// winners per kind and level: [kind][level]
	var win [3][levelWorkload + 1]*entry
	for _, e := range all {
		if w := win[e.prec][e.level]; w == nil || older(e, w) {
			win[e.prec][e.level] = e
		}
	}
	// Sidecar: only the most specific applies.
	for l := levelWorkload; l >= levelMesh; l-- {
		if e := win[precSidecar][l]; e != nil {
			s.dst = appendEntry(s.dst, e)
			break
		}
	}
	// PeerAuthentication: the widest to the narrowest, a set mode overrides.
	var from *entry
	for l := levelMesh; l <= levelWorkload; l++ {
		if e := win[precPeerAuth][l]; e != nil && e.mode != securityapi.PeerAuthentication_MutualTLS_UNSET {
			from = e
		}
	}
	for l := levelMesh; l <= levelWorkload; l++ {
		e := win[precPeerAuth][l]
		if e == nil {
			continue
		}
		f := FeatureMTLS
		if (e == from && e.mode == securityapi.PeerAuthentication_MutualTLS_DISABLE) || e.portDisable {
			f = FeaturePeerAuthDisable
		}
		s.dst = append(s.dst, FeatureRef{Feature: f, Kind: e.key.Kind, Namespace: e.key.Namespace, Name: e.key.Name})
	}
}
