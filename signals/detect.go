package signals

import (
	"errors"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// DetectCapabilities derives the cluster's Capabilities from what runs in it
// (ZtunnelNodes and CiliumNodes: the nodes their DaemonSets' node selector and
// required affinity admit):
// ztunnel is present when a DaemonSet named "ztunnel" has a ready pod; Cilium
// when a DaemonSet named "cilium" has one (its per-node Envoy is built in or
// runs as "cilium-envoy"); the namespaces of those DaemonSets and of istiod,
// Linkerd's control plane and Cilium's operator are the mesh namespaces. Nodes
// are summarised with MinNodeCapabilities; a node with malformed agent labels
// is skipped and reported in the error. spireCA comes from configuration (it
// cannot be seen from workloads).
func DetectCapabilities(daemonSets []appsv1.DaemonSet, deployments []appsv1.Deployment, nodes []corev1.Node, spireCA bool) (Capabilities, error) {
	c := Capabilities{SpireCA: spireCA}
	addNS := func(ns string) {
		if !slices.Contains(c.MeshNamespaces, ns) {
			c.MeshNamespaces = append(c.MeshNamespaces, ns)
		}
	}
	servedBy := func(ds *appsv1.DaemonSet) []map[string]string {
		req := NodeRequirementOf(&ds.Spec.Template.Spec)
		var out []map[string]string
		for i := range nodes {
			if req.Matches(nodes[i].Labels) {
				out = append(out, nodes[i].Labels)
			}
		}
		return out
	}
	c.NodesKnown = len(nodes) > 0
	for i := range daemonSets {
		ds := &daemonSets[i]
		switch ds.Name {
		case "ztunnel":
			addNS(ds.Namespace)
			c.Ztunnel = c.Ztunnel || ds.Status.NumberReady > 0
			c.ZtunnelNodes = append(c.ZtunnelNodes, servedBy(ds)...)
		case "cilium":
			c.Cilium = c.Cilium || ds.Status.NumberReady > 0
			c.CiliumNodes = append(c.CiliumNodes, servedBy(ds)...)
		case "istio-cni-node", "linkerd-cni":
			addNS(ds.Namespace)
		}
	}
	for i := range deployments {
		switch d := &deployments[i]; d.Name {
		case "istiod", "linkerd-destination", "linkerd-identity", "linkerd-proxy-injector":
			addNS(d.Namespace)
		}
	}
	slices.Sort(c.MeshNamespaces)
	var errs []error
	var ncs []NodeCapabilities
	for i := range nodes {
		nc, err := NodeCapabilitiesFromLabels(nodes[i].Labels)
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", nodes[i].Name, err))
			continue
		}
		ncs = append(ncs, nc)
	}
	c.Nodes = MinNodeCapabilities(ncs...)
	return c, errors.Join(errs...)
}
