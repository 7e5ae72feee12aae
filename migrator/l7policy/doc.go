// Package l7policy computes how the selector-attached Istio policies of a
// namespace move to its waypoint when workloads go from sidecars to
// ambient-waypoint (issue 14, DESIGN.md "L7 policy migration"), so that
// during the rolling restart every pod is guarded either by its sidecar or
// by the waypoint, never by a ztunnel that cannot enforce the policy.
//
// Propose reads the wave's workloads, the namespace's Services and the
// AuthorizationPolicy and RequestAuthentication objects of the namespace and
// of Istio's root namespace, and returns a Plan: per policy a Move (the
// targetRefs copy to create and the narrowed original to write), the Admit
// objects that let ztunnel admit the waypoint's identity, and Blocked
// entries for what cannot move safely. Restore rebuilds an original from its
// narrowed form exactly; IsNarrowed tells one from the other. Propose also
// reads an original it already narrowed (it restores it first), so
// proposing again after a restart yields the same plan.
//
// # What moves
//
// How ztunnel treats a selector-attached AuthorizationPolicy is
// signals.ZtunnelAuthzFeatures, the same classification the index uses:
//   - L7 ALLOW (ztunnel drops its HTTP rules: DENY-all or narrower), L7 DENY
//     (ignored or broadened), CUSTOM and AUDIT (ztunnel ignores the
//     action), and every RequestAuthentication (ztunnel checks no JWT) move.
//   - An L4 DENY that looks at the caller (from, or a source.* or
//     request.auth.* condition) moves too: behind the waypoint ztunnel sees
//     the waypoint's identity, so a DENY on principals would miss the real
//     caller and a DENY on notPrincipals would deny the waypoint itself.
//   - An L4 ALLOW is not moved; it gets Admit objects (below).
//   - Any other L4 policy is enforced by ztunnel as a sidecar enforced it.
//
// A Move's copy is the original's spec without its selector, with
// targetRefs [{group: "", kind: Service, name: S}] for each Service S of
// the namespace that selects a moving workload; the waypoint those Services
// use enforces it (Istio: "Use Layer 7 security policy", targetRefs). The
// original is narrowed: its selector.matchLabels gains
// meshshift.io/dataplane: sidecar (Istio selectors are matchLabels only), so
// it selects only pods still on a sidecar, and AnnotationOriginal records
// its spec for Restore. A caller still on a sidecar bypasses the waypoint
// (istio#57213) and reaches a moved pod with no L7 policy in the way: that
// gap is closed by ordering the waves so callers leave their sidecars first
// (the migrator's and plan's caller-aware precheck), not here.
//
// # Identities: what the narrowed original admits
//
// Traffic an ambient caller sends to a Service through the waypoint reaches
// a pod still on its sidecar from the waypoint: its peer identity is the
// waypoint's, spiffe://<trust domain>/ns/<namespace>/sa/<waypoint service
// account> (written in policies without the scheme, as
// "<td>/ns/<ns>/sa/<sa>"), its source namespace is the waypoint's, and its
// JWT is gone unless the jwtRule sets forwardOriginalToken (false by
// default: the waypoint's jwt_authn filter removes the token after
// validating it). The waypoint has already applied the copy to the real
// caller and token. So the narrowed original must let the waypoint through
// where the waypoint has decided, and no further:
//   - ALLOW: for each rule that looks at the caller (any from, or a
//     condition on source.*, remote.ip or request.auth.*), one more rule
//     from principals [<waypoint>] with the rule's `to` and its conditions
//     that do not depend on the caller or its JWT (request headers, ports,
//     destination). A rule that does not look at the caller already admits
//     the waypoint. An ALLOW with no rules allows nothing and gets none.
//   - DENY: each rule that looks at the caller gains the condition
//     source.principal notValues [<waypoint>]: the waypoint is not caught by
//     a negation (notPrincipals, notNamespaces, notRequestPrincipals: ["*"]
//     on a stripped token), while the waypoint has already denied the real
//     caller. A DENY rule on the request alone still denies at the sidecar.
//   - AUDIT and CUSTOM: every rule gains the same exemption: the waypoint
//     has already audited the request, or asked the ext_authz provider with
//     the real caller and token; asking again at the sidecar would judge the
//     waypoint's identity without the token.
//   - RequestAuthentication: only narrowed; without a token the sidecar
//     accepts the request (a RequestAuthentication rejects invalid tokens,
//     not missing ones), and a forwarded token is validated again.
//
// A namespace-wide or mesh-wide RequestAuthentication (no selector, or in
// the root namespace) is not narrowed and not blocked: a waypoint never reads
// a policy without targetRefs (istiod's ShouldAttachPolicy: "waypoints never
// use selector") and ztunnel ignores JWT rules, so the original can stay for
// the sidecars while its targetRefs copy, in Admit, serves the waypoint.
//
// # L4 ALLOW at ztunnel: Admit
//
// Where an L4 ALLOW policy (which stays, enforced by ztunnel; the waypoint
// ignores it, having no targetRefs) selects a
// moving workload, ztunnel sees requests the waypoint forwards with the
// waypoint's identity ("Use Layer 4 security policy": the destination
// ztunnel identifies traffic by the waypoint's identity once it is in the
// path). Admit then holds an ALLOW in the wave's namespace selecting the
// policy's labels plus meshshift.io/dataplane: ambient-waypoint (only pods
// that moved), with the waypoint rules built as for an ALLOW above, and the
// policy's targetRefs copy, so the waypoint checks the caller ztunnel can no
// longer see. A policy that allows nothing, or allows any caller, needs
// neither. Callers that bypass the waypoint (sidecar clients, istio#57213)
// still meet the unchanged original at ztunnel.
//
// # Blocked
//
// A policy is not moved, and the workloads it selects do not move in this
// wave, when: it is an AuthorizationPolicy in the root namespace (narrowing it would change it in
// every namespace); it has no selector (namespace-wide: narrowing would change
// it for every workload of the namespace, and an unlabelled pod would lose
// it); its selector already holds meshshift.io/dataplane: ambient-waypoint
// (it would select the moved pods at ztunnel); no
// Service selects a workload (a targetRefs copy would not cover it; policies
// attached to the waypoint Gateway itself would cover every Service behind
// it); a Service that selects the workload also selects pods the policy
// does not (its selector lacks some of the policy's labels: the copy would
// widen the policy); a Service already uses another waypoint; or the policy
// matches destination ports and a Service maps a port to another targetPort
// (the waypoint matches the Service's port, the sidecar the pod's, so the
// copy would match other ports). Propose
// then plans again without those workloads. Policies attached with
// targetRefs already and objects a migration created (LabelMigration) are
// left alone. Pod templates do not carry meshshift.io/dataplane (the webhook
// writes it on pods), so a selector on it is matched as selecting the
// workload's pods while on a sidecar (sidecar) or once moved
// (ambient-waypoint).
//
// This package is pure: no client, no clock, no I/O. It must not import
// client packages (client-go clients, controller-runtime's client), webhook,
// cli, cmd or the rest of migrator; it imports signals only for its
// AuthorizationPolicy classification and istio.io/api for the specs.
package l7policy
