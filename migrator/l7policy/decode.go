package l7policy

import (
	"encoding/json"
	"fmt"
	"strings"

	securityapi "istio.io/api/security/v1beta1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshshift/meshshift/signals"
)

// class is what a policy needs when a workload it selects moves behind the
// waypoint.
type class int

const (
	classNone  class = iota // ztunnel enforces it as a sidecar would, whoever the caller is
	classMove               // it must move to the waypoint (copy + narrowed original)
	classAdmit              // an L4 ALLOW: ztunnel must admit the waypoint's identity
)

// policy is one decoded AuthorizationPolicy or RequestAuthentication.
type policy struct {
	field       string                     // "policies[i]", for errors
	given       *unstructured.Unstructured // as given
	kind        string
	apiVersion  string
	namespace   string
	name        string
	ref         string                 // "<Kind>/<namespace>/<name>"
	spec        map[string]interface{} // the original's spec (restored when given narrowed); nil when absent
	hasSpec     bool
	matchLabels map[string]string
	hasSelector bool
	targeted    bool // attached with targetRef(s): not selector-based
	root        bool // in the root namespace: mesh-wide scope
	ownedBy     bool // created by a migration (LabelMigration)
	class       class
	action      string // ALLOW, DENY, AUDIT, CUSTOM; "" for RequestAuthentication
	what        string // why it needs what its class says, for Move.Why
}

var featureText = map[signals.Feature]string{
	signals.FeatureL7AuthzSelector:  "ALLOW on HTTP attributes; ztunnel would enforce it as DENY-all",
	signals.FeatureL7AllowNarrowed:  "ALLOW with rules on HTTP attributes; ztunnel would drop those rules",
	signals.FeatureL7DenyIgnored:    "DENY on HTTP attributes only; ztunnel would deny nothing",
	signals.FeatureL7DenyBroadened:  "DENY mixing L4 and HTTP attributes; ztunnel would deny on the L4 part alone",
	signals.FeatureAuditSelector:    "AUDIT; ztunnel ignores the action",
	signals.FeatureExtAuthzSelector: "CUSTOM (ext_authz); ztunnel ignores the action",
}

func decodePolicy(field string, u *unstructured.Unstructured, in *Input) (*policy, error) {
	if u == nil || u.Object == nil {
		return nil, fmt.Errorf("%s: no object", field)
	}
	p := &policy{field: field, given: u, kind: u.GetKind(), apiVersion: u.GetAPIVersion(), namespace: u.GetNamespace(), name: u.GetName()}
	if group := strings.SplitN(p.apiVersion, "/", 2)[0]; group != "security.istio.io" || !strings.Contains(p.apiVersion, "/") {
		return nil, fmt.Errorf("%s: apiVersion %q: want security.istio.io/v1 or security.istio.io/v1beta1", field, p.apiVersion)
	}
	if p.kind != KindAuthorizationPolicy && p.kind != KindRequestAuthentication {
		return nil, fmt.Errorf("%s: kind %q: want %s or %s", field, p.kind, KindAuthorizationPolicy, KindRequestAuthentication)
	}
	if p.name == "" {
		return nil, fmt.Errorf("%s: metadata.name is empty", field)
	}
	if p.namespace == "" {
		p.namespace = in.Namespace
	}
	switch p.namespace {
	case in.RootNamespace:
		p.root = true
	case in.Namespace:
	default:
		return nil, fmt.Errorf("%s: metadata.namespace %q: want the wave's namespace %q or the root namespace %q", field, p.namespace, in.Namespace, in.RootNamespace)
	}
	p.ref = p.kind + "/" + p.namespace + "/" + p.name
	_, p.ownedBy = u.GetLabels()[LabelMigration]
	orig := u
	if IsNarrowed(u) {
		r, err := Restore(u)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		orig = r
	}
	raw, has := orig.Object["spec"]
	if has && raw != nil {
		spec, ok := raw.(map[string]interface{})
		if !ok {
			return nil, fmt.Errorf("%s: spec: want an object, got %T", field, raw)
		}
		c, err := copyMap(spec)
		if err != nil {
			return nil, fmt.Errorf("%s: spec: %w", field, err)
		}
		p.spec, p.hasSpec = c, true
	}
	b, err := json.Marshal(p.spec)
	if err != nil {
		return nil, fmt.Errorf("%s: spec: %w", field, err)
	}
	if p.kind == KindRequestAuthentication {
		var s securityapi.RequestAuthentication
		if p.spec != nil {
			if err := s.UnmarshalJSON(b); err != nil {
				return nil, fmt.Errorf("%s: spec is not a RequestAuthentication spec: %w", field, err)
			}
		}
		p.setAttachment(s.GetSelector().GetMatchLabels(), s.GetSelector() != nil, s.GetTargetRef() != nil || len(s.GetTargetRefs()) > 0)
		p.class = classMove
		p.what = "JWT validation; ztunnel does not check tokens"
		return p, nil
	}
	var s securityapi.AuthorizationPolicy
	if p.spec != nil {
		if err := s.UnmarshalJSON(b); err != nil {
			return nil, fmt.Errorf("%s: spec is not an AuthorizationPolicy spec: %w", field, err)
		}
	}
	p.setAttachment(s.GetSelector().GetMatchLabels(), s.GetSelector() != nil, s.GetTargetRef() != nil || len(s.GetTargetRefs()) > 0)
	p.action = s.GetAction().String()
	feats := signals.ZtunnelAuthzFeatures(&s)
	if len(feats) == 1 && feats[0] == signals.FeatureL4Authz {
		switch {
		case s.GetAction() == securityapi.AuthorizationPolicy_ALLOW:
			p.class = classAdmit
		case s.GetAction() == securityapi.AuthorizationPolicy_DENY && p.anySourceDependent():
			p.class = classMove
			p.what = "DENY on the caller; behind the waypoint ztunnel sees the waypoint's identity instead"
		}
		return p, nil
	}
	p.class = classMove
	var whats []string
	for _, f := range feats {
		if t, ok := featureText[f]; ok {
			whats = append(whats, t)
		}
	}
	p.what = strings.Join(whats, "; ")
	return p, nil
}

func (p *policy) setAttachment(ml map[string]string, hasSelector, targeted bool) {
	p.matchLabels = ml
	p.hasSelector = hasSelector && len(ml) > 0
	p.targeted = targeted
}

// baseName names what is made from the policy in the wave's namespace: its
// name, prefixed with the root namespace's for a root-namespace policy.
func (p *policy) baseName() string {
	if p.root {
		return p.namespace + "-" + p.name
	}
	return p.name
}

func (p *policy) rules() []interface{} {
	return asList(p.spec["rules"])
}

func (p *policy) anySourceDependent() bool {
	for _, r := range p.rules() {
		if m, ok := r.(map[string]interface{}); ok && sourceDependent(m) {
			return true
		}
	}
	return false
}

// selects reports whether the policy, by its selector or its namespace-
// or mesh-wide scope, selects pods of a workload of the wave's namespace,
// now or once they moved. Pod templates do not carry LabelDataplane (the
// webhook writes it on pods): a selector on it selects the workload's pods
// while they are on a sidecar (sidecar) or once they moved
// (ambient-waypoint).
func (p *policy) selects(w Workload) bool {
	if !p.hasSelector {
		return true
	}
	for k, v := range p.matchLabels {
		if k == LabelDataplane && w.PodLabels[k] == "" {
			if v != ModeSidecar && v != ModeAmbientWaypoint {
				return false
			}
			continue
		}
		if pv, ok := w.PodLabels[k]; !ok || pv != v {
			return false
		}
	}
	return true
}

// service is one decoded Service of the namespace.
type service struct {
	name     string
	selector map[string]string
	waypoint string // istio.io/use-waypoint label, if any
	wpNS     string // istio.io/use-waypoint-namespace label, if any
	remapped string // a port whose targetPort differs from it, "" if none
}

func decodeService(field string, u *unstructured.Unstructured, ns string) (*service, error) {
	if u == nil || u.Object == nil {
		return nil, fmt.Errorf("%s: no object", field)
	}
	if u.GetKind() != "Service" || u.GetAPIVersion() != "v1" {
		return nil, fmt.Errorf("%s: %s %s: want a v1 Service", field, u.GetAPIVersion(), u.GetKind())
	}
	if u.GetName() == "" {
		return nil, fmt.Errorf("%s: metadata.name is empty", field)
	}
	if n := u.GetNamespace(); n != "" && n != ns {
		return nil, fmt.Errorf("%s: metadata.namespace %q: want the wave's namespace %q", field, n, ns)
	}
	sel, _, err := unstructured.NestedStringMap(u.Object, "spec", "selector")
	if err != nil {
		return nil, fmt.Errorf("%s: spec.selector: %w", field, err)
	}
	ports, _, err := unstructured.NestedSlice(u.Object, "spec", "ports")
	if err != nil {
		return nil, fmt.Errorf("%s: spec.ports: %w", field, err)
	}
	l := u.GetLabels()
	s := &service{name: u.GetName(), selector: sel, waypoint: l["istio.io/use-waypoint"], wpNS: l["istio.io/use-waypoint-namespace"]}
	for _, p := range ports {
		m, ok := p.(map[string]interface{})
		if !ok {
			return nil, fmt.Errorf("%s: spec.ports: want a list of objects", field)
		}
		port, tp := fmt.Sprint(m["port"]), m["targetPort"]
		if tp != nil && fmt.Sprint(tp) != port {
			s.remapped = fmt.Sprintf("%s->%v", port, tp)
			break
		}
	}
	return s, nil
}

// usesPorts reports whether a rule of the policy matches destination ports
// (to.operation.ports or notPorts, or a destination.port condition).
func (p *policy) usesPorts() bool {
	for _, r := range p.rules() {
		rule, _ := r.(map[string]interface{})
		for _, t := range asList(rule["to"]) {
			tm, _ := t.(map[string]interface{})
			op, _ := tm["operation"].(map[string]interface{})
			if len(asList(op["ports"]))+len(asList(op["notPorts"])) > 0 {
				return true
			}
		}
		for _, c := range asList(rule["when"]) {
			if m, ok := c.(map[string]interface{}); ok && m["key"] == "destination.port" {
				return true
			}
		}
	}
	return false
}

// selects reports whether the Service's selector picks the workload's pods.
// A Service without a selector picks none (its endpoints are managed by hand).
func (s *service) selects(w Workload) bool {
	return len(s.selector) > 0 && subset(s.selector, w.PodLabels)
}
