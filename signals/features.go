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
	// FeatureTCPTelemetry: a Telemetry resource with metrics or access logging only.
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
	// FeatureWaypointExtension: a WasmPlugin attached with targetRefs (runs on
	// the waypoint).
	FeatureWaypointExtension Feature = "waypoint-extension"
	// FeatureL7Authz: an AuthorizationPolicy with L7 attributes (methods, paths,
	// headers, request principals) attached with targetRefs.
	FeatureL7Authz Feature = "l7-authz"
	// FeatureRequestAuthn: a RequestAuthentication (JWT).
	FeatureRequestAuthn Feature = "request-authn"
	// FeatureHTTPTelemetry: a Telemetry resource with tracing (HTTP-level data).
	FeatureHTTPTelemetry Feature = "http-telemetry"

	// FeatureEnvoyFilter: an EnvoyFilter (not supported on waypoints).
	FeatureEnvoyFilter Feature = "envoy-filter"
	// FeatureWasmPlugin: a WasmPlugin selecting the workload by selector.
	FeatureWasmPlugin Feature = "wasm-plugin"
	// FeatureSidecarResource: an Istio Sidecar resource (meaningful only to sidecars).
	FeatureSidecarResource Feature = "sidecar-resource"

	// FeatureL7AuthzSelector: an AuthorizationPolicy with L7 attributes that
	// selects pods with a label selector instead of targetRefs. ztunnel cannot
	// evaluate L7 rules and enforces such a policy as DENY-all.
	FeatureL7AuthzSelector Feature = "l7-authz-selector"
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
	FeatureMTLS, FeatureL4Authz, FeatureTCPTelemetry,
	FeatureHTTPRouting, FeatureRetries, FeatureTimeouts, FeatureFaultInjection, FeatureTrafficSplit,
	FeatureTrafficPolicy, FeatureWaypointExtension, FeatureL7Authz, FeatureRequestAuthn, FeatureHTTPTelemetry,
	FeatureEnvoyFilter, FeatureWasmPlugin, FeatureSidecarResource,
	FeatureL7AuthzSelector, FeaturePeerAuthDisable, FeatureWorkloadEntry, FeatureSpireCA,
	FeatureCiliumL7Policy, FeatureCiliumEnvoyConfig,
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
