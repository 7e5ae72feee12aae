// Package cli is the logic behind meshshift's command-line commands, kept out
// of cmd/meshshift so the cobra commands stay thin (DESIGN.md: "thin cobra
// commands"): it loads manifests from files or a live cluster, builds the
// inputs policies.Decide needs (namespaces, workloads, the signals index of mesh
// objects, DataplanePolicies, capabilities, a traffic snapshot), and turns the
// decisions into a plan, an explanation and a precheck, printed as a table,
// JSON or YAML. It also reads and patches MeshMigrations for status, pause,
// resume, approve and rollback.
//
// Every mode is chosen by policies.Decide; this package only gathers inputs
// and presents answers. It must not import webhook, migrator (but for its
// pure migrator/l7policy, whose proposals plan --emit-policies writes), bpf,
// cmd or test packages.
package cli
