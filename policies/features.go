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
// knowledge lives.
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
	{signals.FeatureWaypointExtension, NeedWaypoint, "a Wasm extension on the waypoint", "a WasmPlugin attached with targetRefs runs on a waypoint"},
	{signals.FeatureL7Authz, NeedWaypoint, "L7 authorization", "L7 authorization is enforced by a waypoint or a sidecar"},
	{signals.FeatureRequestAuthn, NeedWaypoint, "JWT authentication", "RequestAuthentication is enforced by a waypoint or a sidecar"},
	{signals.FeatureHTTPTelemetry, NeedWaypoint, "HTTP telemetry", "HTTP telemetry needs a waypoint or a sidecar"},

	{signals.FeatureCiliumL7Policy, NeedCilium, "Cilium L7 policy", "Cilium's HTTP policy is not compatible with Istio mTLS (STRICT or PERMISSIVE)"},
	{signals.FeatureCiliumEnvoyConfig, NeedCilium, "Cilium Envoy listeners", "Cilium's Envoy cannot read traffic Istio's mTLS encrypted"},

	{signals.FeatureEnvoyFilter, NeedSidecar, "Envoy configuration patches", "EnvoyFilter is not supported on waypoints"},
	{signals.FeatureWasmPlugin, NeedSidecar, "a Wasm extension", "a selector-attached WasmPlugin runs only in a sidecar"},
	{signals.FeaturePeerAuthDisable, NeedSidecar, "plaintext (mTLS DISABLE)", "mTLS mode DISABLE is not supported in ambient"},
	{signals.FeatureWorkloadEntry, NeedSidecar, "a VM endpoint", "VM workloads (WorkloadEntry) are not supported in ambient"},
	{signals.FeatureSpireCA, NeedSidecar, "SPIRE CA", "SPIRE as the mesh CA is not supported in ambient"},

	{signals.FeatureL7AuthzSelector, NeedBlock, "selector-based L7 authorization",
		"ztunnel cannot evaluate L7 rules and enforces a selector-attached L7 AuthorizationPolicy as DENY-all; attach it to a waypoint with targetRefs first"},

	// Ignored without a sidecar: served by nothing else, needed by nothing.
	{signals.FeatureSidecarResource, NeedNothing, "sidecar scoping", "a Sidecar resource only configures sidecars and is ignored sidecarless"},
}

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
	ignoredSidecarless               *signals.FeatureRef
	unknown                          *signals.FeatureRef
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
			if n.sidecar == nil {
				n.sidecar = r
			}
		case NeedBlock:
			if n.block == nil {
				n.block = r
			}
		case NeedNothing:
			if r.Feature == signals.FeatureSidecarResource && n.ignoredSidecarless == nil {
				n.ignoredSidecarless = r
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
