// Package policies decides a workload's dataplane mode. Decide is the only place
// in meshshift where a mode is chosen; the webhook, the migrator and the CLI
// gather an Input and call it.
//
// Decide is pure: no client, no clock (the caller passes Input.Now), no I/O, no
// global state it changes. Given the same Input it returns the same Decision.
//
// Precedence, first match wins (DESIGN.md):
//
//  1. hard exclusions: hostNetwork pods, system and mesh namespaces, pods that
//     already carry a sidecar (rules exclude-*); nothing of the mesh is written.
//  2. the pod's meshshift.io/mode annotation, when the namespace's policy allows it
//     (pod-annotation). Features it overrides are reported as warnings.
//  3. mesh features that need a proxy (the table in features.go). Needs that
//     only a sidecar meets decide outright (feature-deny-all-trap,
//     feature-requires-sidecar); needs that two modes meet (a waypoint or a
//     sidecar; Cilium's proxy) adjust the mode steps 4-7 choose, and are credited
//     only when they change it (feature-requires-waypoint, feature-requires-cilium).
//  4. the namespace's meshshift.io/mode annotation (namespace-annotation).
//  5. the DataplanePolicy's CEL rules, in order ("rule:<name>").
//  6. capability fallback: a mode the cluster or its nodes cannot serve becomes
//     sidecar (capability-fallback). This applies to whatever steps 2-5 and 7
//     chose, since a mode that cannot be served is no choice at all.
//  7. the policy's default mode (policy-default).
//
// Rules are CEL expressions over `workload` (name, namespace, labels,
// annotations, hostNetwork, ownerKind, ownerName, workload), `namespaceObject`
// (name, labels, annotations; `namespace` is reserved in CEL), `traffic`
// (available, stale, age, requestRate, errorRate, p99Latency, connectionRate,
// retransmitRate, protocols), `features` (names of the features whose objects
// select the workload) and `currentMode` ("" when unknown). Each rule is
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
