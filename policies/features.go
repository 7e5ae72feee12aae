package policies

import (
	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// Need is what a mesh feature needs from the workload's dataplane, weakest first.
type Need int

const (
	// NeedNothing: every meshed mode serves it (ztunnel, Cilium or a sidecar).
	NeedNothing Need = iota
	// NeedWaypoint: L7 processing; ambient only with a waypoint, or a sidecar.
	NeedWaypoint
	// NeedCilium: Cilium's per-node Envoy must see plaintext; Istio's mTLS
	// (sidecar or ambient) hides it.
	NeedCilium
	// NeedSidecar: only a sidecar serves it.
	NeedSidecar
	// NeedBlock: a sidecarless flip would break traffic (DENY-all); keep the sidecar
	// until the object is changed.
	NeedBlock
)

func (n Need) String() string {
	switch n {
	case NeedNothing:
		return "nothing"
	case NeedWaypoint:
		return "waypoint"
	case NeedCilium:
		return "cilium"
	case NeedSidecar:
		return "sidecar"
	case NeedBlock:
		return "block"
	}
	return "unknown"
}

// FeatureRow is one row of the mesh-feature table.
type FeatureRow struct {
	Feature signals.Feature
	Need    Need
	// What names the feature in reasons ("HTTP routing").
	What string
	// Why says, after the object's name, why the need exists.
	Why string
}

// FeatureTable is the mesh-feature table: what each feature needs, from the
// Istio, Cilium and Linkerd documentation (DESIGN.md). It is the only place this
// knowledge lives. Each row's Why states what a move to a mode that does not
// serve it would lose; the comments name the fact it rests on.
var FeatureTable = []FeatureRow{
	{signals.FeatureMTLS, NeedNothing, "mTLS", "ztunnel and Cilium serve mTLS"},
	{signals.FeatureL4Authz, NeedNothing, "L4 authorization", "ztunnel enforces L4 authorization"},
	{signals.FeatureTCPTelemetry, NeedNothing, "TCP telemetry", "ztunnel reports TCP telemetry"},

	{signals.FeatureHTTPRouting, NeedWaypoint, "HTTP routing", "ztunnel serves L4 only; HTTP routing needs a waypoint or a sidecar"},
	{signals.FeatureRetries, NeedWaypoint, "HTTP retries", "ztunnel serves L4 only; retries need a waypoint or a sidecar"},
	{signals.FeatureTimeouts, NeedWaypoint, "HTTP timeouts", "ztunnel serves L4 only; timeouts need a waypoint or a sidecar"},
	{signals.FeatureFaultInjection, NeedWaypoint, "fault injection", "ztunnel serves L4 only; fault injection needs a waypoint or a sidecar"},
	{signals.FeatureTrafficSplit, NeedWaypoint, "traffic split", "ztunnel serves L4 only; a traffic split needs a waypoint or a sidecar"},
	{signals.FeatureTrafficPolicy, NeedWaypoint, "traffic policy", "ztunnel serves L4 only; load balancing and outlier detection need a waypoint or a sidecar"},
	// Istio docs "Extend waypoints with Lua scripts" / "... with WebAssembly
	// plugins": in ambient mode extensions are attached to a waypoint with targetRefs.
	{signals.FeatureWaypointExtension, NeedWaypoint, "a Wasm or Lua extension on the waypoint",
		"a WasmPlugin or TrafficExtension attached with targetRefs runs on a waypoint"},
	{signals.FeatureL7Authz, NeedWaypoint, "L7 authorization", "L7 authorization is enforced by a waypoint or a sidecar"},
	// istiod never sends a targetRefs policy to ztunnel (convertAuthorizationPolicy
	// in pilot/pkg/serviceregistry/ambient/authorization.go).
	{signals.FeatureWaypointAuthz, NeedWaypoint, "authorization on the waypoint",
		"a policy attached with targetRefs is enforced by a waypoint, never by ztunnel"},
	{signals.FeatureRequestAuthn, NeedWaypoint, "JWT authentication", "RequestAuthentication is enforced by a waypoint or a sidecar"},
	// The Telemetry API configures Envoy proxies; ztunnel keeps its own TCP
	// metrics and connection logs (Istio docs, "Use Layer 4 ... ztunnel").
	{signals.FeatureHTTPTelemetry, NeedWaypoint, "HTTP telemetry (access logs, HTTP metrics or tracing)",
		"ztunnel logs and measures connections only; HTTP access logs, HTTP metrics and tracing need a waypoint or a sidecar"},

	{signals.FeatureCiliumL7Policy, NeedCilium, "Cilium L7 policy", "Cilium's HTTP policy is not compatible with Istio mTLS (STRICT or PERMISSIVE)"},
	{signals.FeatureCiliumEnvoyConfig, NeedCilium, "Cilium Envoy listeners", "Cilium's Envoy cannot read traffic Istio's mTLS encrypted"},

	// Only a sidecar serves these. Within one need the first row a workload
	// has is the one its reason cites: what would silently weaken security
	// comes first.
	// istiod omits HTTP attributes from what it sends ztunnel; a DENY rule left
	// without L4 fields never fires (istio#61126, fixed status in istio#61166).
	{signals.FeatureL7DenyIgnored, NeedSidecar, "an L7 DENY rule",
		"ztunnel cannot match L7 attributes and skips a selector-attached DENY rule that matches only on them, so without a sidecar it would deny nothing: what it denies now would be allowed (istio#61126); attach it to a waypoint with targetRefs to move"},
	// convertAuthorizationPolicy: "ztunnel does not support the CUSTOM/AUDIT action".
	{signals.FeatureExtAuthzSelector, NeedSidecar, "external authorization (CUSTOM)",
		"ztunnel does not support the CUSTOM action and ignores the policy: the external authorizer would never be asked, so what it denies would be allowed; attach it to a waypoint with targetRefs to move"},
	// istio#48105: a Sidecar resource has no effect on ambient workloads.
	{signals.FeatureSidecarEgressLockdown, NeedSidecar, "egress lock-down (outboundTrafficPolicy REGISTRY_ONLY)",
		"a Sidecar resource has no effect on ambient workloads (istio#48105): the egress lock-down REGISTRY_ONLY would silently vanish and calls to hosts outside the service registry would go out"},
	// These annotations configure the sidecar's traffic capture (istio.io/api
	// annotation package); ambient captures all of a pod's traffic and reads
	// none of them. Moving would silently change which traffic is meshed, so a
	// person decides: the sidecar stays until the annotations are removed.
	{signals.FeatureCaptureAnnotations, NeedSidecar, "sidecar traffic capture settings",
		"ambient has no per-port or per-range capture settings: the traffic these annotations keep out of the mesh would go through ztunnel " +
			"(plaintext callers of excluded inbound ports are refused under STRICT mTLS) and what they leave uncaptured would be captured; remove them to move"},
	{signals.FeatureSidecarIngress, NeedSidecar, "Sidecar ingress listeners",
		"a Sidecar resource has no effect on ambient workloads (istio#48105): its ingress listeners (ports, default endpoints, TLS the sidecar terminates) would silently vanish"},
	{signals.FeatureSidecarEgressHosts, NeedSidecar, "egress host scoping (Sidecar egress hosts)",
		"a Sidecar resource has no effect on ambient workloads (istio#48105): its egress host list would silently vanish and every service of the mesh would be in scope"},
	{signals.FeatureSidecarResource, NeedSidecar, "Sidecar proxy settings (inbound connection pool, egress proxy or listener ports)",
		"a Sidecar resource has no effect on ambient workloads (istio#48105): these settings would silently vanish"},
	{signals.FeatureAuditSelector, NeedSidecar, "request auditing (AUDIT)",
		"ztunnel does not support the AUDIT action and ignores the policy: the requests it marks would no longer be audited; attach it to a waypoint with targetRefs to move"},
	// EnvoyFilter and selector WasmPlugin: not supported on waypoints.
	{signals.FeatureEnvoyFilter, NeedSidecar, "Envoy configuration patches", "EnvoyFilter is not supported on waypoints"},
	{signals.FeatureWasmPlugin, NeedSidecar, "a Wasm extension", "a selector-attached WasmPlugin runs only in a sidecar"},
	// Istio docs "Extend waypoints with Lua scripts": in ambient mode a
	// TrafficExtension must be attached to a waypoint with targetRefs;
	// waypoints never use selectors (pilot/pkg/model/policyattachment.go).
	{signals.FeatureTrafficExtension, NeedSidecar, "a Wasm or Lua extension",
		"a TrafficExtension attached by selector runs only in a sidecar; sidecarless it would silently stop running (attach it to a waypoint with targetRefs to move)"},
	// PeerAuthentication reference: in ambient mode DISABLE is not supported;
	// ztunnel's HBONE always uses mTLS, so DISABLE is handled as PERMISSIVE.
	{signals.FeaturePeerAuthDisable, NeedSidecar, "plaintext (mTLS DISABLE)",
		"ambient does not support mTLS mode DISABLE and treats it as PERMISSIVE: ztunnel would still use mTLS between meshed workloads"},
	{signals.FeatureWorkloadEntry, NeedSidecar, "a VM endpoint", "VM workloads (WorkloadEntry) are not supported in ambient"},
	{signals.FeatureSpireCA, NeedSidecar, "SPIRE CA", "SPIRE as the mesh CA is not supported in ambient"},

	// istiod drops an ALLOW rule with HTTP attributes from what it sends
	// ztunnel ("rules matching HTTP attributes are omitted", handleRule).
	{signals.FeatureL7AuthzSelector, NeedBlock, "selector-based L7 authorization",
		"ztunnel cannot evaluate L7 rules and enforces a selector-attached L7 AuthorizationPolicy as DENY-all; attach it to a waypoint with targetRefs first"},
	{signals.FeatureL7AllowNarrowed, NeedBlock, "selector-based L7 authorization",
		"ztunnel drops the rules with L7 attributes from a selector-attached ALLOW policy, so it would deny what they allow and allow only what its L4 rules allow; attach it to a waypoint with targetRefs first"},
	// A DENY rule whose clauses keep L4 fields is enforced on them alone ("This
	// will be more restrictive than requested", istiod's status for it).
	{signals.FeatureL7DenyBroadened, NeedBlock, "an L7 DENY rule with L4 attributes",
		"ztunnel enforces a selector-attached DENY rule without its L7 attributes, so it would deny every request its L4 attributes match, whatever the method, path or header; attach it to a waypoint with targetRefs first"},

	// proxy.istio.io/config sets the sidecar Envoy's own settings (concurrency,
	// drain and start-up behaviour, tracing sampling, proxy metadata): without
	// a sidecar there is nothing for them to configure, and none of them
	// decides which traffic is meshed or allowed. So it needs nothing; the
	// warning below says it is dropped.
	{signals.FeatureProxyConfigAnnotation, NeedNothing, "sidecar proxy settings (proxy.istio.io/config)",
		"proxy.istio.io/config configures only the sidecar's Envoy; sidecarless nothing reads it and its settings are dropped"},
}

// featureRank is each feature's row index: of two features with the same
// sidecar or block need, the one whose row comes first is cited.
var featureRank = func() map[signals.Feature]int {
	m := make(map[signals.Feature]int, len(FeatureTable))
	for i := range FeatureTable {
		m[FeatureTable[i].Feature] = i
	}
	return m
}()

var featureRows = func() map[signals.Feature]*FeatureRow {
	m := make(map[signals.Feature]*FeatureRow, len(FeatureTable))
	for i := range FeatureTable {
		m[FeatureTable[i].Feature] = &FeatureTable[i]
	}
	return m
}()

// Row returns the table row of f; ok is false for a feature the table lacks.
func Row(f signals.Feature) (FeatureRow, bool) {
	r, ok := featureRows[f]
	if !ok {
		return FeatureRow{}, false
	}
	return *r, true
}

// Serves reports whether mode m meets need n.
func (n Need) Serves(m v1alpha1.Mode) bool {
	switch n {
	case NeedNothing:
		return true
	case NeedWaypoint:
		return m == v1alpha1.ModeSidecar || m == v1alpha1.ModeAmbientWaypoint
	case NeedCilium:
		return m == v1alpha1.ModeCilium
	case NeedSidecar, NeedBlock:
		return m == v1alpha1.ModeSidecar
	}
	return false
}

// needs is the strongest ref per need found among a workload's features.
type needs struct {
	waypoint, cilium, sidecar, block *signals.FeatureRef
	unknown                          *signals.FeatureRef
}

// droppedSidecarless lists the features that need nothing but are dropped
// when the workload runs without a sidecar: Decide warns about them.
var droppedSidecarless = map[signals.Feature]bool{signals.FeatureProxyConfigAnnotation: true}

// sidecarlessWarnings says which of a workload's features a sidecarless
// mode m drops without needing anything (droppedSidecarless).
func sidecarlessWarnings(fs signals.Features, m v1alpha1.Mode) []string {
	if !m.Sidecarless() {
		return nil
	}
	var out []string
	for i := range fs {
		if droppedSidecarless[fs[i].Feature] {
			out = append(out, featureReason(&fs[i]))
		}
	}
	return out
}

func collectNeeds(fs signals.Features, spire bool, spireRef *signals.FeatureRef) needs {
	var n needs
	for i := range fs {
		r := &fs[i]
		row, ok := featureRows[r.Feature]
		if !ok {
			if n.unknown == nil {
				n.unknown = r
			}
			continue
		}
		switch row.Need {
		case NeedWaypoint:
			if n.waypoint == nil {
				n.waypoint = r
			}
		case NeedCilium:
			if n.cilium == nil {
				n.cilium = r
			}
		case NeedSidecar:
			if n.sidecar == nil || featureRank[r.Feature] < featureRank[n.sidecar.Feature] {
				n.sidecar = r
			}
		case NeedBlock:
			if n.block == nil || featureRank[r.Feature] < featureRank[n.block.Feature] {
				n.block = r
			}
		}
	}
	if spire && n.sidecar == nil {
		n.sidecar = spireRef
	}
	return n
}

// strongest returns the ref with the strongest need and that need.
func (n *needs) strongest() (*signals.FeatureRef, Need) {
	switch {
	case n.block != nil:
		return n.block, NeedBlock
	case n.sidecar != nil:
		return n.sidecar, NeedSidecar
	case n.cilium != nil:
		return n.cilium, NeedCilium
	case n.waypoint != nil:
		return n.waypoint, NeedWaypoint
	}
	return nil, NeedNothing
}
