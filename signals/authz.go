package signals

import (
	securityapi "istio.io/api/security/v1beta1"
)

// l4WhenKeys are the AuthorizationPolicy condition keys ztunnel evaluates;
// istiod treats every other key as an HTTP attribute (l4WhenAttributes in
// pilot/pkg/serviceregistry/ambient/authorization.go; Istio's "Use Layer 4
// security policy" page lists the same attributes).
var l4WhenKeys = map[string]bool{
	"source.ip": true, "source.namespace": true, "source.principal": true,
	"destination.ip": true, "destination.port": true,
}

// ruleL7 reports whether a rule uses an attribute ztunnel cannot match: hosts,
// methods, paths (and their negations), request principals, remote IP blocks,
// or a condition key outside l4WhenKeys (httpOperations, httpSources and
// handleRule in istiod's ambient/authorization.go).
func ruleL7(r *securityapi.Rule) bool {
	for _, f := range r.From {
		if src := f.GetSource(); src != nil && (len(src.RequestPrincipals) > 0 || len(src.NotRequestPrincipals) > 0 ||
			len(src.RemoteIpBlocks) > 0 || len(src.NotRemoteIpBlocks) > 0) {
			return true
		}
	}
	for _, t := range r.To {
		if op := t.GetOperation(); op != nil && (len(op.Hosts) > 0 || len(op.NotHosts) > 0 || len(op.Methods) > 0 ||
			len(op.NotMethods) > 0 || len(op.Paths) > 0 || len(op.NotPaths) > 0) {
			return true
		}
	}
	for _, c := range r.When {
		if c != nil && !l4WhenKeys[c.Key] {
			return true
		}
	}
	return false
}

// ruleMatchesAtZtunnel reports whether what is left of a DENY rule once istiod
// omits its HTTP attributes can still match at ztunnel. istiod sends each
// clause (to, from, one per condition) as a list of matches holding only the
// L4 fields; ztunnel skips empty matches, so a clause with no L4 field never
// matches and the rule never fires (hasEffectiveRules in istiod's
// ambient/authorization.go; istio#61126).
func ruleMatchesAtZtunnel(r *securityapi.Rule) bool {
	if len(r.To) > 0 {
		ok := false
		for _, t := range r.To {
			if op := t.GetOperation(); op != nil && (len(op.Ports) > 0 || len(op.NotPorts) > 0) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	if len(r.From) > 0 {
		ok := false
		for _, f := range r.From {
			if src := f.GetSource(); src != nil && (len(src.IpBlocks) > 0 || len(src.NotIpBlocks) > 0 ||
				len(src.Namespaces) > 0 || len(src.NotNamespaces) > 0 || len(src.Principals) > 0 ||
				len(src.NotPrincipals) > 0 || len(src.ServiceAccounts) > 0 || len(src.NotServiceAccounts) > 0) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	for _, c := range r.When {
		if c == nil || !l4WhenKeys[c.Key] || len(c.Values)+len(c.NotValues) == 0 {
			return false
		}
	}
	return true
}

// authorizationPolicyL7 reports whether a policy uses anything ztunnel cannot
// evaluate: an HTTP attribute in any rule, or the CUSTOM or AUDIT action.
func authorizationPolicyL7(s *securityapi.AuthorizationPolicy) bool {
	if s.Action == securityapi.AuthorizationPolicy_CUSTOM || s.Action == securityapi.AuthorizationPolicy_AUDIT {
		return true
	}
	for _, r := range s.Rules {
		if r != nil && ruleL7(r) {
			return true
		}
	}
	return false
}

// ztunnelAuthzFeatures says what becomes of a policy attached by selector (or
// namespace/mesh-wide) when ztunnel enforces it instead of a sidecar, as
// istiod translates it (convertAuthorizationPolicy and handleRule in
// pilot/pkg/serviceregistry/ambient/authorization.go):
//   - CUSTOM and AUDIT: ztunnel does not support the action; the policy is
//     not sent at all.
//   - ALLOW: a rule with an HTTP attribute is dropped, so what it allowed is
//     denied: DENY-all when every rule has one (Istio's
//     status message "rules matching HTTP attributes are omitted").
//   - DENY: a rule with an HTTP attribute is enforced without it. Where no L4
//     field is left in one of its clauses it never fires: the rule denies
//     nothing (istio#61126). Where L4 fields are left it denies everything
//     they match, whatever the method, path or header.
func ztunnelAuthzFeatures(s *securityapi.AuthorizationPolicy) []Feature {
	switch s.Action {
	case securityapi.AuthorizationPolicy_CUSTOM:
		return []Feature{FeatureExtAuthzSelector}
	case securityapi.AuthorizationPolicy_AUDIT:
		return []Feature{FeatureAuditSelector}
	}
	var l7, l4Only, ignored, broadened bool
	for _, r := range s.Rules {
		if r == nil || !ruleL7(r) {
			l4Only = true
			continue
		}
		l7 = true
		if ruleMatchesAtZtunnel(r) {
			broadened = true
		} else {
			ignored = true
		}
	}
	switch {
	case !l7:
		return []Feature{FeatureL4Authz}
	case s.Action == securityapi.AuthorizationPolicy_ALLOW && l4Only:
		return []Feature{FeatureL7AllowNarrowed}
	case s.Action == securityapi.AuthorizationPolicy_ALLOW:
		return []Feature{FeatureL7AuthzSelector}
	}
	var out []Feature
	if ignored {
		out = append(out, FeatureL7DenyIgnored)
	}
	if broadened {
		out = append(out, FeatureL7DenyBroadened)
	}
	return out
}

// ZtunnelAuthzFeatures says what ztunnel makes of an AuthorizationPolicy
// attached by selector (or namespace/mesh-wide) when it enforces the policy
// instead of a sidecar: FeatureL4Authz alone when ztunnel enforces it as
// written, else the features of ztunnelAuthzFeatures. It lets the L7 policy
// migration (migrator/l7policy) classify a policy exactly as the index does.
func ZtunnelAuthzFeatures(s *securityapi.AuthorizationPolicy) []Feature {
	return ztunnelAuthzFeatures(s)
}

// authorizationPolicyEntry: attached with targetRefs a policy is enforced by
// a waypoint and never sent to ztunnel (convertAuthorizationPolicy: "TargetRef
// is not intended for ztunnel"); attached by selector, namespace- or
// mesh-wide, ztunnel enforces what it can of it (ztunnelAuthzFeatures).
func (ix *Index) authorizationPolicyEntry(k ObjectKey, s *securityapi.AuthorizationPolicy) *entry {
	if refs := allTargetRefs(s.TargetRef, s.TargetRefs); len(refs) > 0 {
		f := FeatureWaypointAuthz
		if authorizationPolicyL7(s) {
			f = FeatureL7Authz
		}
		e, ok := ix.targetRefsEntry(k, refs, f)
		if !ok {
			return nil
		}
		return e
	}
	return ix.selectorEntry(k, selLabels(s.Selector), ztunnelAuthzFeatures(s)...)
}
