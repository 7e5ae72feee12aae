// Package signals holds what policies.Decide is fed, gathered from the cluster:
//
//   - Features: which mesh objects (Istio, Gateway API GAMMA routes, Cilium) select
//     a workload, kept by Index, an in-memory index from those objects to the pods
//     they select, updated incrementally from informer events (EventHandler) and
//     answering FeaturesFor for a pod not yet created. It attaches each kind as
//     istiod does (root-namespace scope per kind; one Sidecar per workload;
//     PeerAuthentication inheritance). AppendAnnotationFeatures adds what the
//     pod template's own Istio annotations give.
//   - TrafficSnapshot / WorkloadTraffic: each workload's live traffic figures and
//     their age, filled by a traffic source: AgentSource (the node agents'
//     snapshots) or PromSource (PromQL over the agents' metrics).
//   - Callers: who calls whom. The node agents report, per workload, the peer
//     addresses of the connections its pods accepted (AgentWorkload.Peers);
//     AgentSource resolves them through PodIPs, an index from the addresses
//     of running pods (status.podIPs; host-network pods left out, an address
//     reused by a newer pod naming that pod) to their workloads, into
//     WorkloadTraffic.Callers, merged over nodes and remembered for
//     AgentSource.CallerMemory (an hour by default).
//   - Capabilities: whether ztunnel and Cilium run (DetectCapabilities) and what
//     the nodes' kernels support (node labels written by the agent).
//
// Metrics (registered by the manager, not by this package):
//
//   - meshshift_workload_caller_connections{namespace, workload,
//     caller_namespace, caller_workload} (gauge, NewCallersCollector):
//     connections a workload accepted from each caller workload in the
//     traffic source's last window, summed over nodes. Its cardinality is
//     bounded: per workload the MaxCallerSeries (10) busiest callers get a
//     series each and the rest are summed into one series with
//     caller_workload="other" and no caller_namespace, so at most 11 series
//     per workload that has callers. The agent itself keeps at most
//     MaxAgentPeers (256) peer addresses per workload and node.
//
// Direction of imports: signals → policies → webhook / migrator / CLI.
// policies imports this package for its plain data types (Feature, FeatureRef,
// Features, WorkloadTraffic, Capabilities) and uses nothing else of it; signals
// must never import policies, webhook, migrator, bpf or cmd. The data types and
// the index do no I/O and read no clock; only the traffic sources talk to the
// network (agents' HTTP endpoints, Prometheus), and only when the manager runs
// them. The index reads typed Istio (istio.io/client-go) and Gateway API objects
// and Cilium's objects as unstructured (the cilium/cilium module is not imported).
package signals
