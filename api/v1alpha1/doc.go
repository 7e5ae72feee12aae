// Package v1alpha1 holds meshshift's API types: MeshMigration, which moves
// namespaces between dataplane modes in waves, and DataplanePolicy, which says
// how workloads are decided. It imports only Kubernetes API machinery; nothing
// of meshshift's own packages.
//
// +kubebuilder:object:generate=true
// +groupName=meshshift.io
package v1alpha1
