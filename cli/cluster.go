package cli

import (
	"context"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// ClusterObjects are the objects read from a live cluster.
type ClusterObjects struct {
	Objects []Object
	// GatewayAPI is true when the cluster serves the Gateway API.
	GatewayAPI bool
	// Missing lists the known kinds the cluster does not serve.
	Missing []string
}

// LoadCluster lists every kind plan reads from the cluster (the kinds it does
// not serve are skipped), in all namespaces.
func LoadCluster(ctx context.Context, cfg *rest.Config) (*ClusterObjects, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build discovery client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build dynamic client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	out := &ClusterObjects{}
	gks := make([]schema.GroupKind, 0, len(knownKinds))
	for gk := range knownKinds {
		gks = append(gks, gk)
	}
	sort.Slice(gks, func(i, j int) bool { return gks[i].String() < gks[j].String() })
	for _, gk := range gks {
		if gk.Kind == "CustomResourceDefinition" || gk.Kind == "MeshMigration" {
			continue
		}
		m, err := mapper.RESTMapping(gk, knownKinds[gk].versions...)
		if meta.IsNoMatchError(err) {
			out.Missing = append(out.Missing, gk.String())
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("find resource of %s: %w", gk, err)
		}
		if gk.Group == groupGateway {
			out.GatewayAPI = true
		}
		list, err := dyn.Resource(m.Resource).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", m.Resource.Resource, err)
		}
		for i := range list.Items {
			u := &list.Items[i]
			u.SetGroupVersionKind(m.GroupVersionKind)
			u.SetManagedFields(nil)
			out.Objects = append(out.Objects, Object{Source: Source{}, U: u})
		}
	}
	return out, nil
}
