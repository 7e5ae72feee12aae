package signals

import (
	"fmt"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	extensionsv1alpha1 "istio.io/client-go/pkg/apis/extensions/v1alpha1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Kinds of the indexed objects, as FeatureRef.Kind reports them.
const (
	KindVirtualService        = "VirtualService"
	KindDestinationRule       = "DestinationRule"
	KindEnvoyFilter           = "EnvoyFilter"
	KindWasmPlugin            = "WasmPlugin"
	KindTrafficExtension      = "TrafficExtension"
	KindAuthorizationPolicy   = "AuthorizationPolicy"
	KindRequestAuthentication = "RequestAuthentication"
	KindPeerAuthentication    = "PeerAuthentication"
	KindTelemetry             = "Telemetry"
	KindSidecar               = "Sidecar"
	KindWorkloadEntry         = "WorkloadEntry"
	KindHTTPRoute             = "HTTPRoute"
	KindGRPCRoute             = "GRPCRoute"
	KindCiliumNetworkPolicy   = "CiliumNetworkPolicy"
	KindCiliumClusterwideNP   = "CiliumClusterwideNetworkPolicy"
	KindCiliumEnvoyConfig     = "CiliumEnvoyConfig"
	KindCiliumClusterwideEC   = "CiliumClusterwideEnvoyConfig"
)

func keyOf(kind string, m metav1.Object) ObjectKey {
	return ObjectKey{Kind: kind, Namespace: m.GetNamespace(), Name: m.GetName()}
}

// selectorEntry is an entry selecting pods by labels in ns; in the root
// namespace it is mesh-wide, with or without a selector. So istiod attaches
// AuthorizationPolicy, RequestAuthentication, EnvoyFilter, WasmPlugin and
// TrafficExtension: it looks a workload's policies up in its own namespace and
// in the root namespace, then matches the selector (pilot/pkg/model
// policyattachment.go, authorization.go ListAuthorizationPolicies,
// push_context.go EnvoyFilters and TrafficExtensionsByListenerInfo; Istio's
// "Use Layer 4 security policy" page: a policy in the root namespace targets
// all namespaces).
func (ix *Index) selectorEntry(key ObjectKey, sel map[string]string, features ...Feature) *entry {
	return &entry{key: key, features: features, scope: scopePods, ns: key.Namespace,
		meshWide: key.Namespace == ix.root, selector: cloneMap(sel)}
}

// scopedEntry is an entry for the kinds whose root-namespace objects are
// mesh-wide only without a selector: a root-namespace Telemetry or Sidecar
// with a selector selects only workloads of the root namespace (istiod reads
// selector Telemetry only from the workload's namespace, telemetry.go
// applicableTelemetries; the mesh-wide Sidecar is the root namespace's one
// without workloadSelector, push_context.go initSidecarScopes).
func (ix *Index) scopedEntry(key ObjectKey, sel map[string]string, features ...Feature) *entry {
	return &entry{key: key, features: features, scope: scopePods, ns: key.Namespace,
		meshWide: key.Namespace == ix.root && len(sel) == 0, selector: cloneMap(sel)}
}

// targetRefsEntry is an entry for Istio targetRefs: Services in the object's
// namespace select their pods; a Gateway (a waypoint) covers the namespace; a
// GatewayClass in the root namespace covers the mesh. ok is false when no ref
// reaches a workload (e.g. only ServiceEntries).
func (ix *Index) targetRefsEntry(key ObjectKey, refs []*typeapi.PolicyTargetReference, features ...Feature) (*entry, bool) {
	e := &entry{key: key, features: features, scope: scopeServices}
	for _, r := range refs {
		if r == nil {
			continue
		}
		// A policy attaches only to targets in its own namespace: istiod
		// skips a targetRef naming another namespace ("it will never match
		// anything", pilot/pkg/model/policyattachment.go ShouldAttachPolicy).
		if r.Namespace != "" && r.Namespace != key.Namespace {
			continue
		}
		ns := key.Namespace
		switch {
		case r.Kind == "Service" && (r.Group == "" || r.Group == "core"):
			e.services = append(e.services, ObjectKey{Kind: "Service", Namespace: ns, Name: r.Name})
		case r.Kind == "Gateway" && r.Group == gatewayv1.GroupName:
			e.svcNsAll = append(e.svcNsAll, ns)
		case r.Kind == "GatewayClass" && key.Namespace == ix.root:
			e.svcEveryone = true
		}
	}
	return e, len(e.services) > 0 || len(e.svcNsAll) > 0 || e.svcEveryone
}

func allTargetRefs(one *typeapi.PolicyTargetReference, many []*typeapi.PolicyTargetReference) []*typeapi.PolicyTargetReference {
	if one != nil {
		return append([]*typeapi.PolicyTargetReference{one}, many...)
	}
	return many
}

func selLabels(s *typeapi.WorkloadSelector) map[string]string {
	if s == nil {
		return nil
	}
	return s.MatchLabels
}

// hostsEntry selects the pods of the Services that Istio hosts name, relative
// to namespace ns ("reviews", "reviews.shop.svc.cluster.local",
// "*.shop.svc.cluster.local", "*"). External hosts select nothing.
func hostsEntry(key ObjectKey, hosts []string, features []Feature) (*entry, bool) {
	e := &entry{key: key, features: features, scope: scopeServices}
	for _, h := range hosts {
		switch {
		case h == "*" || h == "*.svc.cluster.local" || h == "*.cluster.local":
			e.svcEveryone = true
		case !strings.Contains(h, "."):
			e.services = append(e.services, ObjectKey{Kind: "Service", Namespace: key.Namespace, Name: h})
		default:
			parts := strings.SplitN(h, ".", 4)
			if len(parts) < 3 || parts[2] != "svc" {
				continue
			}
			if parts[0] == "*" {
				e.svcNsAll = append(e.svcNsAll, parts[1])
			} else {
				e.services = append(e.services, ObjectKey{Kind: "Service", Namespace: parts[1], Name: parts[0]})
			}
		}
	}
	return e, len(e.services) > 0 || len(e.svcNsAll) > 0 || e.svcEveryone
}

// entryFor classifies a typed object. It returns the object's key and its
// entry; a nil entry means the object gives no feature (it is removed).
func (ix *Index) entryFor(obj any) (ObjectKey, *entry, error) {
	switch o := obj.(type) {
	case *networkingv1.VirtualService:
		k := keyOf(KindVirtualService, o)
		return k, virtualServiceEntry(k, &o.Spec), nil
	case *networkingv1.DestinationRule:
		k := keyOf(KindDestinationRule, o)
		return k, destinationRuleEntry(k, &o.Spec), nil
	case *networkingv1alpha3.EnvoyFilter:
		k := keyOf(KindEnvoyFilter, o)
		return k, ix.envoyFilterEntry(k, &o.Spec), nil
	case *extensionsv1alpha1.WasmPlugin:
		k := keyOf(KindWasmPlugin, o)
		refs := allTargetRefs(o.Spec.TargetRef, o.Spec.TargetRefs)
		if len(refs) > 0 {
			e, ok := ix.targetRefsEntry(k, refs, FeatureWaypointExtension)
			if !ok {
				e = nil
			}
			return k, e, nil
		}
		return k, ix.selectorEntry(k, selLabels(o.Spec.Selector), FeatureWasmPlugin), nil
	case *extensionsv1alpha1.TrafficExtension:
		// In ambient mode a TrafficExtension must be attached to a waypoint
		// with targetRefs (Istio docs, "Extend waypoints with Lua scripts");
		// waypoints never use selectors (policyattachment.go), so one attached
		// by selector runs only in sidecars and gateways.
		k := keyOf(KindTrafficExtension, o)
		if len(o.Spec.TargetRefs) > 0 {
			e, ok := ix.targetRefsEntry(k, o.Spec.TargetRefs, FeatureWaypointExtension)
			if !ok {
				e = nil
			}
			return k, e, nil
		}
		return k, ix.selectorEntry(k, selLabels(o.Spec.Selector), FeatureTrafficExtension), nil
	case *securityv1.AuthorizationPolicy:
		k := keyOf(KindAuthorizationPolicy, o)
		return k, ix.authorizationPolicyEntry(k, &o.Spec), nil
	case *securityv1.RequestAuthentication:
		k := keyOf(KindRequestAuthentication, o)
		if refs := allTargetRefs(o.Spec.TargetRef, o.Spec.TargetRefs); len(refs) > 0 {
			e, ok := ix.targetRefsEntry(k, refs, FeatureRequestAuthn)
			if !ok {
				e = nil
			}
			return k, e, nil
		}
		return k, ix.selectorEntry(k, selLabels(o.Spec.Selector), FeatureRequestAuthn), nil
	case *securityv1.PeerAuthentication:
		k := keyOf(KindPeerAuthentication, o)
		return k, ix.peerAuthenticationEntry(k, o), nil
	case *telemetryv1.Telemetry:
		k := keyOf(KindTelemetry, o)
		f := telemetryFeature(o)
		if refs := allTargetRefs(o.Spec.TargetRef, o.Spec.TargetRefs); len(refs) > 0 {
			e, ok := ix.targetRefsEntry(k, refs, f)
			if !ok {
				e = nil
			}
			return k, e, nil
		}
		return k, ix.scopedEntry(k, selLabels(o.Spec.Selector), f), nil
	case *networkingv1.Sidecar:
		k := keyOf(KindSidecar, o)
		return k, ix.sidecarEntry(k, o), nil
	case *networkingv1.WorkloadEntry:
		k := keyOf(KindWorkloadEntry, o)
		if len(o.Spec.Labels) == 0 {
			return k, nil, nil // selected by no Service selector
		}
		return k, &entry{key: k, features: []Feature{FeatureWorkloadEntry}, scope: scopeWorkloadEntry,
			ns: k.Namespace, weLabels: cloneMap(o.Spec.Labels)}, nil
	case *gatewayv1.HTTPRoute:
		k := keyOf(KindHTTPRoute, o)
		return k, httpRouteEntry(k, o), nil
	case *gatewayv1.GRPCRoute:
		k := keyOf(KindGRPCRoute, o)
		return k, grpcRouteEntry(k, o), nil
	}
	return ObjectKey{}, nil, fmt.Errorf("index: unsupported object type %T", obj)
}

func virtualServiceEntry(k ObjectKey, s *networkingapi.VirtualService) *entry {
	if len(s.Gateways) > 0 {
		mesh := false
		for _, g := range s.Gateways {
			mesh = mesh || g == "mesh"
		}
		if !mesh {
			return nil // routes ingress/egress gateways only, not the workloads' traffic
		}
	}
	features := []Feature{FeatureHTTPRouting}
	add := func(f Feature) {
		for _, x := range features {
			if x == f {
				return
			}
		}
		features = append(features, f)
	}
	for _, r := range s.Http {
		if r == nil {
			continue
		}
		if r.Retries != nil {
			add(FeatureRetries)
		}
		if r.Timeout != nil {
			add(FeatureTimeouts)
		}
		if r.Fault != nil {
			add(FeatureFaultInjection)
		}
		if len(r.Route) > 1 {
			add(FeatureTrafficSplit)
		}
	}
	for _, r := range s.Tcp {
		if r != nil && len(r.Route) > 1 {
			add(FeatureTrafficSplit)
		}
	}
	e, ok := hostsEntry(k, s.Hosts, features)
	if !ok {
		return nil
	}
	return e
}

func destinationRuleEntry(k ObjectKey, s *networkingapi.DestinationRule) *entry {
	tp := s.TrafficPolicy
	l7 := len(s.Subsets) > 0
	if tp != nil {
		l7 = l7 || tp.LoadBalancer != nil || tp.OutlierDetection != nil || tp.RetryBudget != nil ||
			(tp.ConnectionPool != nil && tp.ConnectionPool.Http != nil) || len(tp.PortLevelSettings) > 0
	}
	if !l7 {
		return nil // TLS settings alone: ztunnel's mTLS already covers them
	}
	e, ok := hostsEntry(k, []string{s.Host}, []Feature{FeatureTrafficPolicy})
	if !ok {
		return nil
	}
	return e
}

func (ix *Index) envoyFilterEntry(k ObjectKey, s *networkingapi.EnvoyFilter) *entry {
	gatewayOnly := len(s.ConfigPatches) > 0
	for _, p := range s.ConfigPatches {
		if p == nil || p.Match == nil || p.Match.Context != networkingapi.EnvoyFilter_GATEWAY {
			gatewayOnly = false
		}
	}
	if gatewayOnly {
		return nil // patches gateways only
	}
	if len(s.TargetRefs) > 0 {
		e, ok := ix.targetRefsEntry(k, s.TargetRefs, FeatureEnvoyFilter)
		if !ok {
			return nil
		}
		return e
	}
	var sel map[string]string
	if s.WorkloadSelector != nil {
		sel = s.WorkloadSelector.Labels
	}
	return ix.selectorEntry(k, sel, FeatureEnvoyFilter)
}

// peerAuthenticationEntry files a PeerAuthentication with its mTLS modes; the
// index resolves which one applies (resolvePeerAuth). A root-namespace
// PeerAuthentication with a selector is ignored by Istio (PeerAuthentication
// reference: "policies with workload selectors are ignored when deployed in
// the root namespace"; ComposePeerAuthentication in
// pilot/pkg/security/authn/policy_applier.go).
func (ix *Index) peerAuthenticationEntry(k ObjectKey, o *securityv1.PeerAuthentication) *entry {
	sel := selLabels(o.Spec.Selector)
	if k.Namespace == ix.root && len(sel) > 0 {
		return nil
	}
	e := ix.scopedEntry(k, sel, FeatureMTLS)
	e.prec = precPeerAuth
	e.created = o.CreationTimestamp.Time
	e.level = levelOf(k.Namespace == ix.root, len(sel) > 0)
	if m := o.Spec.Mtls; m != nil {
		e.mode = m.Mode
	}
	if len(sel) > 0 { // port-level modes count only on a workload-level policy
		for _, p := range o.Spec.PortLevelMtls {
			if p != nil && p.Mode == securityapi.PeerAuthentication_MutualTLS_DISABLE {
				e.portDisable = true
			}
		}
	}
	return e
}

// sidecarFeatures says what a Sidecar resource configures. A Sidecar has no
// effect on ambient workloads (istio#48105; ztunnel and waypoints do not read
// it), so each is lost by a move. A Sidecar that sets nothing beyond Istio's
// defaults gives none, but still overrides a wider one (sidecarEntry).
func sidecarFeatures(s *networkingapi.Sidecar) []Feature {
	var out []Feature
	other := s.InboundConnectionPool != nil
	// REGISTRY_ONLY is the mode's zero value: an outboundTrafficPolicy
	// without a mode locks egress too.
	if p := s.OutboundTrafficPolicy; p != nil {
		if p.Mode == networkingapi.OutboundTrafficPolicy_REGISTRY_ONLY {
			out = append(out, FeatureSidecarEgressLockdown)
		}
		other = other || p.EgressProxy != nil
	}
	hosts := false
	for _, l := range s.Egress {
		if l == nil {
			continue
		}
		for _, h := range l.Hosts {
			hosts = hosts || h != "*/*"
		}
		other = other || l.Port != nil || l.Bind != "" || l.CaptureMode != networkingapi.CaptureMode_DEFAULT
	}
	if hosts {
		out = append(out, FeatureSidecarEgressHosts)
	}
	if len(s.Ingress) > 0 {
		out = append(out, FeatureSidecarIngress)
	}
	if other {
		out = append(out, FeatureSidecarResource)
	}
	return out
}

// sidecarEntry files a Sidecar; one Sidecar applies to a workload: the oldest
// of its namespace whose workloadSelector matches, else its namespace's one
// without selector, else the root namespace's one without selector
// (doGetSidecarScope and initSidecarScopes in pilot/pkg/model/push_context.go).
func (ix *Index) sidecarEntry(k ObjectKey, o *networkingv1.Sidecar) *entry {
	var sel map[string]string
	if o.Spec.WorkloadSelector != nil {
		sel = o.Spec.WorkloadSelector.Labels
	}
	e := ix.scopedEntry(k, sel, sidecarFeatures(&o.Spec)...)
	// Only the root namespace's Sidecar without workloadSelector is the mesh's
	// default; one with an empty selector still selects only its namespace.
	e.meshWide = k.Namespace == ix.root && o.Spec.WorkloadSelector == nil
	e.prec = precSidecar
	e.created = o.CreationTimestamp.Time
	e.level = levelOf(k.Namespace == ix.root && len(sel) == 0, o.Spec.WorkloadSelector != nil)
	return e
}

// telemetryFeature: what a Telemetry resource asks of the workload's proxy.
// The Telemetry API configures Envoy proxies (sidecars, gateways, waypoints);
// ztunnel reports its own TCP metrics and connection logs whatever it says.
// Tracing, access logging (a sidecar logs every HTTP request) and overrides
// of HTTP metrics need HTTP data only a waypoint or a sidecar has; overrides of
// TCP metrics, and switching logging, tracing or metrics off, need nothing.
func telemetryFeature(t *telemetryv1.Telemetry) Feature {
	for _, tr := range t.Spec.Tracing {
		if tr != nil && !tr.GetDisableSpanReporting().GetValue() {
			return FeatureHTTPTelemetry
		}
	}
	for _, l := range t.Spec.AccessLogging {
		if l != nil && !l.GetDisabled().GetValue() {
			return FeatureHTTPTelemetry
		}
	}
	for _, m := range t.Spec.Metrics {
		for _, o := range m.GetOverrides() {
			if o.GetDisabled().GetValue() {
				continue
			}
			sel := o.GetMatch()
			if sel == nil {
				return FeatureHTTPTelemetry // all metrics, HTTP ones included
			}
			name := sel.GetCustomMetric()
			if name == "" {
				name = sel.GetMetric().String()
			}
			if !strings.HasPrefix(name, "TCP_") && !strings.HasPrefix(name, "tcp_") {
				return FeatureHTTPTelemetry
			}
		}
	}
	return FeatureTCPTelemetry
}

// serviceParents are the Services among a route's parentRefs (GAMMA).
func serviceParents(k ObjectKey, refs []gatewayv1.ParentReference) []ObjectKey {
	var out []ObjectKey
	for _, p := range refs {
		if p.Kind == nil || *p.Kind != "Service" || (p.Group != nil && *p.Group != "" && *p.Group != "core") {
			continue
		}
		ns := k.Namespace
		if p.Namespace != nil && *p.Namespace != "" {
			ns = string(*p.Namespace)
		}
		out = append(out, ObjectKey{Kind: "Service", Namespace: ns, Name: string(p.Name)})
	}
	return out
}

func httpRouteEntry(k ObjectKey, r *gatewayv1.HTTPRoute) *entry {
	svcs := serviceParents(k, r.Spec.ParentRefs)
	if len(svcs) == 0 {
		return nil // attached to Gateways only: north-south, not the workloads'
	}
	features := []Feature{FeatureHTTPRouting}
	seen := map[Feature]bool{FeatureHTTPRouting: true}
	add := func(f Feature) {
		if !seen[f] {
			seen[f] = true
			features = append(features, f)
		}
	}
	for _, rule := range r.Spec.Rules {
		if rule.Timeouts != nil {
			add(FeatureTimeouts)
		}
		if rule.Retry != nil {
			add(FeatureRetries)
		}
		if len(rule.BackendRefs) > 1 {
			add(FeatureTrafficSplit)
		}
	}
	return &entry{key: k, features: features, scope: scopeServices, services: svcs}
}

func grpcRouteEntry(k ObjectKey, r *gatewayv1.GRPCRoute) *entry {
	svcs := serviceParents(k, r.Spec.ParentRefs)
	if len(svcs) == 0 {
		return nil
	}
	features := []Feature{FeatureHTTPRouting}
	for _, rule := range r.Spec.Rules {
		if len(rule.BackendRefs) > 1 {
			features = append(features, FeatureTrafficSplit)
			break
		}
	}
	return &entry{key: k, features: features, scope: scopeServices, services: svcs}
}

// serviceSelector is a Service's pod selector.
func serviceSelector(s *corev1.Service) map[string]string { return s.Spec.Selector }
