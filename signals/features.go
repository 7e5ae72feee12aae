package signals

import (
	"sort"
	"strings"
)

// Feature is one mesh capability a workload uses because some mesh object
// selects it. What each feature needs from a dataplane is policies' feature
// table; signals only says which objects give a workload which features.
type Feature string

// Features, one per row aspect of DESIGN.md's mesh-feature table.
const (
	// FeatureMTLS: a PeerAuthentication in STRICT or PERMISSIVE mode.
	FeatureMTLS Feature = "mtls"
	// FeatureL4Authz: an AuthorizationPolicy whose rules use only L4 attributes
	// (ports, IP blocks, principals, namespaces).
	FeatureL4Authz Feature = "l4-authz"
	// FeatureTCPTelemetry: a Telemetry resource whose overrides touch only TCP
	// metrics (or that only disables access logging or tracing).
	FeatureTCPTelemetry Feature = "tcp-telemetry"

	// FeatureHTTPRouting: HTTP routing rules (VirtualService http routes,
	// Gateway API HTTPRoute/GRPCRoute with a Service parent, DestinationRule
	// traffic policy).
	FeatureHTTPRouting Feature = "http-routing"
	// FeatureRetries: HTTP retries (VirtualService retries, HTTPRoute retry).
	FeatureRetries Feature = "retries"
	// FeatureTimeouts: HTTP timeouts.
	FeatureTimeouts Feature = "timeouts"
	// FeatureFaultInjection: HTTP fault injection (delay/abort).
	FeatureFaultInjection Feature = "fault-injection"
	// FeatureTrafficSplit: weighted routing across destinations.
	FeatureTrafficSplit Feature = "traffic-split"
	// FeatureTrafficPolicy: DestinationRule traffic policy a waypoint applies in
	// ambient (load balancing, outlier detection, HTTP connection pool, subsets).
	FeatureTrafficPolicy Feature = "traffic-policy"
	// FeatureWaypointExtension: a WasmPlugin or TrafficExtension attached with
	// targetRefs (runs on the waypoint).
	FeatureWaypointExtension Feature = "waypoint-extension"
	// FeatureL7Authz: an AuthorizationPolicy with L7 attributes (methods, paths,
	// headers, request principals), or a CUSTOM or AUDIT one, attached with
	// targetRefs.
	FeatureL7Authz Feature = "l7-authz"
	// FeatureRequestAuthn: a RequestAuthentication (JWT).
	FeatureRequestAuthn Feature = "request-authn"
	// FeatureHTTPTelemetry: a Telemetry resource with tracing, access logging
	// or HTTP metric overrides (HTTP-level data only an Envoy proxy produces).
	FeatureHTTPTelemetry Feature = "http-telemetry"

	// FeatureEnvoyFilter: an EnvoyFilter (not supported on waypoints).
	FeatureEnvoyFilter Feature = "envoy-filter"
	// FeatureWasmPlugin: a WasmPlugin selecting the workload by selector.
	FeatureWasmPlugin Feature = "wasm-plugin"
	// FeatureSidecarResource: an Istio Sidecar resource whose settings are
	// other than those below (inbound connection pool, egress proxy, egress
	// listener ports or capture modes). Sidecars read it; ambient workloads do not.
	FeatureSidecarResource Feature = "sidecar-resource"
	// FeatureSidecarEgressLockdown: a Sidecar resource with
	// outboundTrafficPolicy mode REGISTRY_ONLY (egress locked to known hosts).
	FeatureSidecarEgressLockdown Feature = "sidecar-egress-lockdown"
	// FeatureSidecarEgressHosts: a Sidecar resource whose egress listeners
	// narrow the hosts the workload's proxy knows (anything but "*/*").
	FeatureSidecarEgressHosts Feature = "sidecar-egress-hosts"
	// FeatureSidecarIngress: a Sidecar resource with ingress listeners (ports,
	// default endpoints, TLS the sidecar terminates).
	FeatureSidecarIngress Feature = "sidecar-ingress"
	// FeatureTrafficExtension: a TrafficExtension (Istio 1.30, Wasm or Lua)
	// selecting the workload by selector. Attached with targetRefs it is
	// FeatureWaypointExtension.
	FeatureTrafficExtension Feature = "traffic-extension"
	// FeatureCaptureAnnotations: pod-template annotations
	// traffic.sidecar.istio.io/* that change which traffic the sidecar
	// captures (AnnotationFeatures).
	FeatureCaptureAnnotations Feature = "sidecar-capture-annotations"
	// FeatureProxyConfigAnnotation: the pod-template annotation
	// proxy.istio.io/config (the sidecar proxy's own settings).
	FeatureProxyConfigAnnotation Feature = "proxy-config-annotation"

	// FeatureL7AuthzSelector: an ALLOW AuthorizationPolicy every rule of which
	// uses L7 attributes, attached by a label selector (or namespace/mesh-wide)
	// instead of targetRefs. ztunnel drops every rule and enforces it as
	// DENY-all.
	FeatureL7AuthzSelector Feature = "l7-authz-selector"
	// FeatureL7AllowNarrowed: an ALLOW AuthorizationPolicy attached by
	// selector (or namespace/mesh-wide) with some rules using L7 attributes and
	// some not: ztunnel drops the former and allows only what the latter allow.
	FeatureL7AllowNarrowed Feature = "l7-allow-narrowed"
	// FeatureL7DenyIgnored: a DENY AuthorizationPolicy attached by selector (or
	// namespace/mesh-wide) with a rule that matches only L7 attributes. ztunnel
	// skips such a rule: under ambient it denies nothing (istio#61126).
	FeatureL7DenyIgnored Feature = "l7-deny-ignored"
	// FeatureL7DenyBroadened: a DENY AuthorizationPolicy attached by selector
	// (or namespace/mesh-wide) whose rules mix L4 and L7 attributes. ztunnel
	// enforces the L4 part alone, denying every request that part matches.
	FeatureL7DenyBroadened Feature = "l7-deny-broadened"
	// FeatureAuditSelector: an AUDIT AuthorizationPolicy attached by selector
	// (or namespace/mesh-wide); ztunnel ignores the AUDIT action.
	FeatureAuditSelector Feature = "audit-authz-selector"
	// FeatureExtAuthzSelector: a CUSTOM (ext_authz) AuthorizationPolicy
	// attached by selector (or namespace/mesh-wide); ztunnel ignores the CUSTOM
	// action.
	FeatureExtAuthzSelector Feature = "ext-authz-selector"
	// FeatureWaypointAuthz: an AuthorizationPolicy with L4 attributes only,
	// attached with targetRefs: a waypoint enforces it, ztunnel does not.
	FeatureWaypointAuthz Feature = "waypoint-authz"
	// FeaturePeerAuthDisable: a PeerAuthentication with mode DISABLE (port-level
	// or workload-level); an ambient hard blocker.
	FeaturePeerAuthDisable Feature = "peer-auth-disable"
	// FeatureWorkloadEntry: a WorkloadEntry (VM) shares the workload's labels;
	// an ambient hard blocker.
	FeatureWorkloadEntry Feature = "workload-entry"
	// FeatureSpireCA: the mesh uses SPIRE as its CA; an ambient hard blocker.
	// It comes from Capabilities, not from an object selecting the workload.
	FeatureSpireCA Feature = "spire-ca"

	// FeatureCiliumL7Policy: a CiliumNetworkPolicy with L7 rules (http, kafka,
	// dns) enforced by Cilium's per-node Envoy.
	FeatureCiliumL7Policy Feature = "cilium-l7-policy"
	// FeatureCiliumEnvoyConfig: a CiliumEnvoyConfig redirecting the workload's
	// Services through Cilium's per-node Envoy.
	FeatureCiliumEnvoyConfig Feature = "cilium-envoy-config"
)

// AllFeatures lists every Feature, in the order of the feature table.
var AllFeatures = []Feature{
	FeatureMTLS, FeatureL4Authz, FeatureTCPTelemetry, FeatureHTTPRouting, FeatureRetries, FeatureTimeouts,
	FeatureFaultInjection, FeatureTrafficSplit, FeatureTrafficPolicy, FeatureWaypointExtension, FeatureL7Authz,
	FeatureWaypointAuthz, FeatureRequestAuthn, FeatureHTTPTelemetry, FeatureCiliumL7Policy,
	FeatureCiliumEnvoyConfig, FeatureL7DenyIgnored, FeatureExtAuthzSelector, FeatureSidecarEgressLockdown,
	FeatureCaptureAnnotations, FeatureSidecarIngress, FeatureSidecarEgressHosts, FeatureSidecarResource,
	FeatureAuditSelector, FeatureEnvoyFilter, FeatureWasmPlugin, FeatureTrafficExtension,
	FeaturePeerAuthDisable, FeatureWorkloadEntry, FeatureSpireCA, FeatureL7AuthzSelector,
	FeatureL7AllowNarrowed, FeatureL7DenyBroadened, FeatureProxyConfigAnnotation,
}

// FeatureRef says that one object gives a workload one feature.
type FeatureRef struct {
	Feature Feature
	// Kind is the object's kind, e.g. "AuthorizationPolicy", "HTTPRoute",
	// "CiliumNetworkPolicy".
	Kind      string
	Namespace string
	Name      string
}

// Object names the object as "Kind namespace/name" (or "Kind name" when it is
// cluster-scoped), for reasons and events.
func (r FeatureRef) Object() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// Less orders refs by feature, kind, namespace, name.
func (r FeatureRef) Less(o FeatureRef) bool {
	if r.Feature != o.Feature {
		return r.Feature < o.Feature
	}
	if r.Kind != o.Kind {
		return r.Kind < o.Kind
	}
	if r.Namespace != o.Namespace {
		return r.Namespace < o.Namespace
	}
	return r.Name < o.Name
}

// Features is every FeatureRef that applies to one workload, sorted with
// FeatureRef.Less and without duplicates (Index returns it that way; Normalize
// makes any slice so). A nil Features means the workload uses no mesh feature.
type Features []FeatureRef

// Has reports whether any ref gives feature f.
func (fs Features) Has(f Feature) bool {
	for i := range fs {
		if fs[i].Feature == f {
			return true
		}
	}
	return false
}

// First returns the first ref giving feature f.
func (fs Features) First(f Feature) (FeatureRef, bool) {
	for i := range fs {
		if fs[i].Feature == f {
			return fs[i], true
		}
	}
	return FeatureRef{}, false
}

// Names returns the distinct feature names present, in sorted order.
func (fs Features) Names() []string {
	var out []string
	for i := range fs {
		n := string(fs[i].Feature)
		if len(out) == 0 || out[len(out)-1] != n {
			out = append(out, n)
		}
	}
	return out
}

// Normalize sorts fs and drops duplicates, in place.
func (fs Features) Normalize() Features {
	if len(fs) < 2 {
		return fs
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].Less(fs[j]) })
	out := fs[:1]
	for _, r := range fs[1:] {
		if r != out[len(out)-1] {
			out = append(out, r)
		}
	}
	return out
}

// String lists the refs as "feature=Kind ns/name" separated by ", ".
func (fs Features) String() string {
	var b strings.Builder
	for i, r := range fs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(r.Feature))
		b.WriteByte('=')
		b.WriteString(r.Object())
	}
	return b.String()
}
