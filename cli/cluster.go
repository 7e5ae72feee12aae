package cli

import (
	"context"
	"fmt"
	"reflect"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
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

// Media types of list responses.
const (
	mediaJSON     = "application/json"
	mediaProtobuf = "application/vnd.kubernetes.protobuf"
)

// LoadCluster lists every kind plan reads from the cluster (the kinds it does
// not serve are skipped), in all namespaces, a few kinds at a time; the
// objects are in the order of the kinds' names. Kubernetes' own kinds (pods,
// workloads, namespaces, nodes, Services) are listed as protobuf and decoded
// into their Go types once, which Build then uses as they are; the others
// (DataplanePolicies, Istio, Gateway API, Cilium, Argo) as JSON.
func LoadCluster(ctx context.Context, cfg *rest.Config) (*ClusterObjects, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build discovery client: %w", err)
	}
	lc := rest.CopyConfig(cfg)
	lc.GroupVersion = nil
	lc.APIPath = ""
	lc.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	if lc.UserAgent == "" { // as client-go's clients name themselves
		lc.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.UnversionedRESTClientFor(lc)
	if err != nil {
		return nil, fmt.Errorf("build list client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	out := &ClusterObjects{}
	gks := make([]schema.GroupKind, 0, len(knownKinds))
	for gk := range knownKinds {
		gks = append(gks, gk)
	}
	sort.Slice(gks, func(i, j int) bool { return gks[i].String() < gks[j].String() })
	// The kinds served, in order; a failure to find one ends the list there.
	var lists []*listing
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
			lists = append(lists, &listing{err: fmt.Errorf("find resource of %s: %w", gk, err)})
			break
		}
		if gk.Group == groupGateway {
			out.GatewayAPI = true
		}
		lists = append(lists, &listing{m: m})
	}
	listAll(ctx, rc, lists)
	for _, l := range lists {
		if l.err != nil {
			return nil, l.err
		}
		out.Objects = append(out.Objects, l.objs...)
	}
	return out, nil
}

// listing is one kind LoadCluster lists, and what it read.
type listing struct {
	m    *meta.RESTMapping
	objs []Object
	err  error
}

// listConcurrency is how many lists LoadCluster reads at once: decoding one
// while the API server writes the next.
const listConcurrency = 4

// listAll reads the lists (those without an error yet), listConcurrency at
// a time, pods first (usually the longest).
func listAll(ctx context.Context, rc rest.Interface, lists []*listing) {
	queue := make(chan *listing, len(lists))
	for _, first := range []bool{true, false} {
		for _, l := range lists {
			if l.err == nil && (l.m.GroupVersionKind.GroupKind() == schema.GroupKind{Kind: "Pod"}) == first {
				queue <- l
			}
		}
	}
	close(queue)
	var wg sync.WaitGroup
	for range min(listConcurrency, len(lists)) {
		wg.Go(func() {
			for l := range queue {
				l.objs, l.err = list(ctx, rc, l.m)
			}
		})
	}
	wg.Wait()
}

// list reads one kind in all namespaces: Kubernetes' own kinds as protobuf,
// the others as JSON.
func list(ctx context.Context, rc rest.Interface, m *meta.RESTMapping) ([]Object, error) {
	accept := mediaJSON
	if typedListOf(m.GroupVersionKind) != nil {
		accept = mediaProtobuf + ", " + mediaJSON
	}
	var contentType string
	data, err := rc.Get().AbsPath(resourcePath(m.Resource)...).SetHeader("Accept", accept).
		Do(ctx).ContentType(&contentType).Raw()
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", m.Resource.Resource, err)
	}
	objs, err := appendListed(nil, data, contentType, m.GroupVersionKind)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", m.Resource.Resource, err)
	}
	return objs, nil
}

// resourcePath is the URL path listing a resource in all namespaces.
func resourcePath(r schema.GroupVersionResource) []string {
	if r.Group == "" {
		return []string{"/api", r.Version, r.Resource}
	}
	return []string{"/apis", r.Group, r.Version, r.Resource}
}

// typedListOf returns an empty typed list of gvk's items when LoadCluster
// reads gvk into Go types: a kind of client-go's scheme whose Go type is the
// one Build decodes it into. Nil means the kind is read as JSON.
func typedListOf(gvk schema.GroupVersionKind) runtime.Object {
	info, ok := knownKinds[gvk.GroupKind()]
	if !ok || info.typed == nil || !clientgoscheme.Scheme.Recognizes(gvk) {
		return nil
	}
	item, err := clientgoscheme.Scheme.New(gvk)
	if err != nil || reflect.TypeOf(item) != reflect.TypeOf(info.typed()) {
		return nil
	}
	list, err := clientgoscheme.Scheme.New(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err != nil {
		return nil
	}
	return list
}

// listDecoder decodes protobuf list responses into client-go's types.
var listDecoder = protobuf.NewSerializer(clientgoscheme.Scheme, clientgoscheme.Scheme)

// appendListed appends the items of a list response (protobuf or JSON, as
// contentType says) as gvk, without their managed fields. An item decoded
// from protobuf keeps its Go object (Object.typed) and gets U from it; a JSON
// item is decoded once into U, as the dynamic client would decode it.
func appendListed(objs []Object, data []byte, contentType string, gvk schema.GroupVersionKind) ([]Object, error) {
	if strings.HasPrefix(contentType, mediaProtobuf) {
		list := typedListOf(gvk)
		if list == nil {
			return nil, fmt.Errorf("%s is not read as protobuf", gvk.Kind)
		}
		if _, _, err := listDecoder.Decode(data, nil, list); err != nil {
			return nil, fmt.Errorf("decode %s list: %w", gvk.Kind, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil, fmt.Errorf("decode %s list: %w", gvk.Kind, err)
		}
		for _, it := range items {
			it.GetObjectKind().SetGroupVersionKind(gvk)
			acc, err := meta.Accessor(it)
			if err != nil {
				return nil, fmt.Errorf("decode %s list: %w", gvk.Kind, err)
			}
			acc.SetManagedFields(nil)
		}
		ms, err := toUnstructured(items)
		if err != nil {
			return nil, fmt.Errorf("convert %s: %w", gvk.Kind, err)
		}
		for i, it := range items {
			objs = append(objs, Object{U: &unstructured.Unstructured{Object: ms[i]}, typed: it})
		}
		return objs, nil
	}
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if err := utiljson.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("decode %s list: %w", gvk.Kind, err)
	}
	for _, m := range list.Items {
		u := &unstructured.Unstructured{Object: m}
		if u.Object == nil {
			u.Object = map[string]any{}
		}
		u.SetGroupVersionKind(gvk)
		u.SetManagedFields(nil)
		objs = append(objs, Object{U: u})
	}
	return objs, nil
}

// convertBatch is how many objects one goroutine of toUnstructured
// converts at a time.
const convertBatch = 256

// toUnstructured converts typed objects to unstructured content, on every
// CPU for a long list (the conversion is most of the CPU time reading a
// list takes). An error names the first object in the list that failed.
func toUnstructured(items []runtime.Object) ([]map[string]any, error) {
	out := make([]map[string]any, len(items))
	errs := make([]error, len(items))
	convert := func(from, to int) {
		for i := from; i < to; i++ {
			out[i], errs[i] = runtime.DefaultUnstructuredConverter.ToUnstructured(items[i])
		}
	}
	if len(items) <= convertBatch || goruntime.GOMAXPROCS(0) == 1 {
		convert(0, len(items))
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(goruntime.GOMAXPROCS(0), (len(items)+convertBatch-1)/convertBatch) {
			wg.Go(func() {
				for {
					from := int(next.Add(convertBatch)) - convertBatch
					if from >= len(items) {
						return
					}
					convert(from, min(from+convertBatch, len(items)))
				}
			})
		}
		wg.Wait()
	}
	for i, err := range errs {
		if err != nil {
			acc, aerr := meta.Accessor(items[i])
			if aerr != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%s/%s: %w", acc.GetNamespace(), acc.GetName(), err)
		}
	}
	return out, nil
}
