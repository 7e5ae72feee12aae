// Package migrator runs MeshMigrations: it moves namespaces from one dataplane
// mode to another in waves and rolls a wave back by itself when its SLO gate
// breaks (DESIGN.md, "The migrator").
//
// Per wave: precheck (policies.Decide over every workload with the target mode,
// capability, degraded PodDisruptionBudgets) → baseline SLIs → flip (the
// namespace's meshshift.io/mode annotation and the mesh's own labels, in the
// documented safe order, after recording the previous ones in the
// meshshift.io/previous-labels annotation; the waypoint Gateway and Service
// labels where workloads will be ambient-waypoint) → restart (pod-template
// restartedAt of Deployments, StatefulSets and DaemonSets, whose controllers
// roll by their own strategy; spec.restartAt of Argo Rollouts, read
// unstructured where the cluster serves them) → wait Ready → bake with the
// gate → promote, or roll back (restore the record, restart, wait Ready) and
// stop. Jobs and CronJobs are counted (status.waves[].waitingForNextRun), not
// restarted and not waited for: their next run is admitted in the new mode. A
// ReplicationController that runs pods blocks the precheck: it does not
// replace its pods when its template changes.
//
// Policy migration (spec.policyMigration): a workload that only
// selector-attached L7 policies keep on a sidecar (ztunnel would enforce an
// L7 ALLOW as deny-all, and ignore L7 DENY, CUSTOM and AUDIT) is one
// migrator/l7policy can move. With Propose (the default) such a deny-all trap
// blocks the wave and the proposal goes into status.waves[].policyProposal.
// With Apply the precheck plans it as ambient-waypoint, blocks on any policy
// l7policy cannot move and on any caller of it (signals.WorkloadTraffic.Callers)
// still on a sidecar outside the wave — sidecar clients bypass waypoints
// (istio#57213) — and after the baseline the wave's MovingPolicies phase
// does, per namespace: the record (with the moving workloads) → label the
// running sidecar pods the originals select meshshift.io/dataplane=sidecar →
// the waypoint Gateway → wait until istiod has programmed it (Programmed=True,
// its Deployment available; past readyTimeout the wave rolls back) → create
// the targetRefs copies and admit policies (labelled meshshift.io/migration)
// → narrow each original in one Update (spec and meshshift.io/original). The
// Services get istio.io/use-waypoint at the flip, after the narrowing, so
// traffic reaches the waypoint only once the originals admit its identity.
// A rollback first restores the namespace's labels and waits until the pods
// are back on sidecars, then restores each original exactly (one Update),
// recreates any removed at promotion (originalPolicies Remove), deletes the
// copies and admit policies, and only then undoes the waypoint: no
// namespace ever has targetRefs policies without a programmed waypoint.
//
// Waves are planned once, when a migration starts (status.waves): later edits
// of spec.waves or of the namespaces' labels do not re-plan them. The wave
// phase Prechecking covers the baseline recording that follows a passed
// precheck.
//
// Crash safety: each reconcile does one step of the wave's phase, and every step
// is idempotent. A phase is written to the MeshMigration's status (with an
// optimistic-concurrency update) before the step that follows it mutates
// anything, and the namespace record is written before the first label
// changes. A manager killed at any point resumes the step or undoes it.
//
// Metrics (registered with controller-runtime's registry):
//
//	meshshift_migration_wave{migration,wave,phase}      1 for the wave's current phase, else 0
//	meshshift_migration_rollbacks_total{migration,reason} waves rolled back
//	meshshift_migration_gate_evaluations_total{migration,result} gate checks by result (Pass, Fail, Inconclusive)
//
// Imports: api/v1alpha1, policies, signals (data types only), migrator/l7policy,
// controller-runtime, client-go, the Gateway API types and Prometheus' HTTP
// API client. It must not import webhook, bpf or cmd.
package migrator
