// Package policies decides a workload's dataplane mode. Decide is the only place
// in meshshift where a mode is chosen; the webhook, the migrator and the CLI
// gather an Input and call it.
//
// Decide is pure: no client, no clock (the caller passes Input.Now), no I/O, no
// global state it changes. Given the same Input it returns the same Decision.
//
// Do no harm: a workload keeps the mode it runs in now until someone asks to
// change it — a meshshift.io/mode annotation on the pod or namespace, a
// DataplanePolicy rule or default that names a mode, a MeshMigration (which
// writes the namespace annotation). The current mode is what the mesh itself
// reads (CurrentMode): injection labels, istio.io/rev, istio.io/dataplane-mode,
// Linkerd's annotation; a workload with none of them is currently none. A kept
// mode is Decision.Observed: only meshshift's own label and annotations are
// written, so the pod reaches the mesh exactly as it would without meshshift.
// The builtin policy (no DataplanePolicy) and the shipped default policy have
// defaultMode "current".
//
// Precedence, first match wins (DESIGN.md):
//
//  1. hard exclusions: hostNetwork pods, system and mesh namespaces, pods that
//     already carry a sidecar, pods that can only run on Windows nodes (rules
//     exclude-*); nothing of the mesh is written. A team's opt-outs on the pod
//     template are kept (opt-out): istio.io/dataplane-mode=none is never made
//     ambient, sidecar.istio.io/inject=false never sidecar — such a workload
//     keeps its current mode instead.
//  2. the pod's meshshift.io/mode annotation, when the namespace's policy allows it
//     (pod-annotation). Features it overrides are reported as warnings.
//  3. mesh features that need a proxy (the table in features.go), for a
//     workload asked to move or on a sidecar now; a feature never meshes a
//     workload by itself. Needs that only a sidecar meets decide outright
//     (feature-deny-all-trap, feature-requires-sidecar); needs that two modes
//     meet (a waypoint or a sidecar; Cilium's proxy) adjust the mode steps 4-7
//     ask for, and are credited only when they change it
//     (feature-requires-waypoint, feature-requires-cilium).
//  4. the namespace's meshshift.io/mode annotation (namespace-annotation).
//  5. the DataplanePolicy's CEL rules, in order ("rule:<name>"); a rule with
//     mode "current" keeps the current mode.
//  6. capability fallback: when the mode asked for cannot be served (no
//     ztunnel, no Cilium agent, nodes' kernel or eBPF too old) the workload
//     keeps its current mode (capability-fallback); when its node selector or
//     required affinity excludes every node the dataplane's node agent runs
//     on, likewise (node-unserved). A fallback never adds or removes a proxy;
//     the reason names what is missing.
//  7. the policy's default mode (policy-default), or with default "current"
//     the current mode (keep-current).
//
// Rules are CEL expressions over `workload` (name, namespace, labels,
// annotations, hostNetwork, ownerKind, ownerName, workload), `namespaceObject`
// (name, labels, annotations; `namespace` is reserved in CEL), `traffic`
// (available, stale, age, requestRate, errorRate, p99Latency, connectionRate,
// retransmitRate, protocols), `features` (names of the features whose objects
// select the workload) and `currentMode` (CurrentMode: "none" for a workload
// outside every mesh). Each rule is
// type-checked and its worst-case cost bounded at compile time; a policy's rules
// are chained into one program per 16 rules. Compile once per generation
// (Compile, or Set for a cluster's policies).
//
// Stabilizer keeps the pods of one owner on one answer during a rollout.
//
// Imports: the api/v1alpha1 types and signals' plain data types (Feature,
// Features, WorkloadTraffic, Capabilities); cel-go and Kubernetes apimachinery.
// It must not import webhook, migrator, bpf, cmd, controller-runtime or any
// client: the direction is signals → policies → webhook / migrator / CLI.
package policies
