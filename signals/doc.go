// Package signals holds what policies.Decide is fed, gathered from the cluster:
//
//   - Features: which mesh objects (Istio, Gateway API GAMMA routes, Cilium) select
//     a workload, kept by Index, an in-memory index from those objects to the pods
//     they select, updated incrementally from informer events (see Watch).
//   - TrafficSnapshot / WorkloadTraffic: each workload's live traffic figures and
//     their age, filled by a traffic source (the node agent's snapshots or PromQL).
//   - Capabilities: whether ztunnel and Cilium are present and what the nodes'
//     kernels support (node labels written by the agent).
//
// Direction of imports: signals → policies → webhook / migrator / CLI.
// policies imports this package for its plain data types (Feature, FeatureRef,
// Features, WorkloadTraffic, Capabilities); signals must never import policies,
// webhook, migrator or cmd. The data types in features.go, traffic.go and
// capabilities.go use only the standard library; the index reads typed Istio and
// Gateway API objects and unstructured Cilium objects and never talks to a
// cluster itself: Watch wires it to informers the caller provides.
package signals
