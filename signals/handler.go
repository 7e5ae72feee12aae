package signals

import (
	"fmt"
	"sort"

	istioscheme "istio.io/client-go/pkg/clientset/versioned/scheme"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayscheme "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/scheme"
)

// Cilium's kinds, read as unstructured (meshshift does not import Cilium).
var (
	CiliumNetworkPolicyGVK            = schema.GroupVersionKind{Group: "cilium.io", Version: "v2", Kind: KindCiliumNetworkPolicy}
	CiliumClusterwideNetworkPolicyGVK = schema.GroupVersionKind{Group: "cilium.io", Version: "v2", Kind: KindCiliumClusterwideNP}
	CiliumEnvoyConfigGVK              = schema.GroupVersionKind{Group: "cilium.io", Version: "v2", Kind: KindCiliumEnvoyConfig}
	CiliumClusterwideEnvoyConfigGVK   = schema.GroupVersionKind{Group: "cilium.io", Version: "v2", Kind: KindCiliumClusterwideEC}
)

// AddToScheme registers the Istio and Gateway API types the index reads.
func AddToScheme(s *runtime.Scheme) error {
	if err := istioscheme.AddToScheme(s); err != nil {
		return fmt.Errorf("add istio types: %w", err)
	}
	if err := gatewayscheme.AddToScheme(s); err != nil {
		return fmt.Errorf("add gateway api types: %w", err)
	}
	return nil
}

// WatchedObjects returns one empty object of every type the index reads, for
// setting up informers: typed Kubernetes objects, and unstructured Istio,
// Gateway API and Cilium objects with their GroupVersionKind set. The mesh
// objects are listed unstructured and decoded one by one (Upsert): an object
// the API server accepts but the Go types cannot decode is reported and left
// out, and the rest of its type is indexed — a typed informer would fail its
// whole list on it and never sync. A cluster lacks the CRDs of meshes it does
// not run: skip a type whose informer fails with a no-match error
// (meta.IsNoMatchError) and watch the rest.
func WatchedObjects() []runtime.Object {
	out := []runtime.Object{&corev1.Service{}, &appsv1.Deployment{}, &appsv1.StatefulSet{}, &appsv1.DaemonSet{}}
	gvks := make([]schema.GroupVersionKind, 0, len(indexedVersion)+4)
	for gk, v := range indexedVersion {
		gvks = append(gvks, gk.WithVersion(v))
	}
	sort.Slice(gvks, func(i, j int) bool { return gvks[i].String() < gvks[j].String() })
	gvks = append(gvks, CiliumNetworkPolicyGVK, CiliumClusterwideNetworkPolicyGVK, CiliumEnvoyConfigGVK, CiliumClusterwideEnvoyConfigGVK)
	for _, gvk := range gvks {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		out = append(out, u)
	}
	return out
}

// Upsert adds or replaces one object: a typed Istio or Gateway API object, a
// Service, a Deployment/StatefulSet/DaemonSet (recorded as a workload), or an
// unstructured object of any of those kinds or of Cilium's.
func (ix *Index) Upsert(obj any) error {
	switch o := obj.(type) {
	case *corev1.Service:
		ix.UpsertService(o.Namespace, o.Name, serviceSelector(o))
		return nil
	case *appsv1.Deployment:
		ix.UpsertWorkload(WorkloadKey{Namespace: o.Namespace, Name: o.Name}, o.Spec.Template.Labels)
		return nil
	case *appsv1.StatefulSet:
		ix.UpsertWorkload(WorkloadKey{Namespace: o.Namespace, Name: o.Name}, o.Spec.Template.Labels)
		return nil
	case *appsv1.DaemonSet:
		ix.UpsertWorkload(WorkloadKey{Namespace: o.Namespace, Name: o.Name}, o.Spec.Template.Labels)
		return nil
	case *unstructured.Unstructured:
		if isCilium(o.GroupVersionKind()) {
			k, e, err := ix.ciliumEntry(o)
			if err != nil {
				return err
			}
			ix.put(k, e)
			return nil
		}
		typed, err := typedFor(o)
		if err != nil {
			// What cannot be read is not in the index, as istiod leaves it
			// out too; an earlier readable version of it goes.
			ix.put(ObjectKey{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}, nil)
			return err
		}
		return ix.Upsert(typed)
	}
	k, e, err := ix.entryFor(obj)
	if err != nil {
		return err
	}
	ix.put(k, e)
	return nil
}

// Delete removes one object (any type Upsert takes, or a cache tombstone).
func (ix *Index) Delete(obj any) error {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	switch o := obj.(type) {
	case *corev1.Service:
		ix.DeleteService(o.Namespace, o.Name)
		return nil
	case *appsv1.Deployment:
		ix.DeleteWorkload(WorkloadKey{Namespace: o.Namespace, Name: o.Name})
		return nil
	case *appsv1.StatefulSet:
		ix.DeleteWorkload(WorkloadKey{Namespace: o.Namespace, Name: o.Name})
		return nil
	case *appsv1.DaemonSet:
		ix.DeleteWorkload(WorkloadKey{Namespace: o.Namespace, Name: o.Name})
		return nil
	case *unstructured.Unstructured:
		if isCilium(o.GroupVersionKind()) {
			ix.put(ObjectKey{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}, nil)
			return nil
		}
		if _, mesh := indexedVersion[o.GroupVersionKind().GroupKind()]; mesh {
			// By its key: an object that never decoded is deleted too.
			ix.put(ObjectKey{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}, nil)
			return nil
		}
		typed, err := typedFor(o)
		if err != nil {
			return err
		}
		return ix.Delete(typed)
	}
	k, _, err := ix.entryFor(obj)
	if err != nil {
		return err
	}
	ix.put(k, nil)
	return nil
}

func isCilium(gvk schema.GroupVersionKind) bool {
	return gvk.Group == "cilium.io"
}

var typedScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		panic(err)
	}
	if err := corev1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := appsv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// indexedVersion is the version of each kind the index reads; Istio's versions
// of one kind share one schema, so another version is read as this one.
var indexedVersion = map[schema.GroupKind]string{
	{Group: "networking.istio.io", Kind: KindVirtualService}:      "v1",
	{Group: "networking.istio.io", Kind: KindDestinationRule}:     "v1",
	{Group: "networking.istio.io", Kind: KindSidecar}:             "v1",
	{Group: "networking.istio.io", Kind: KindWorkloadEntry}:       "v1",
	{Group: "networking.istio.io", Kind: KindEnvoyFilter}:         "v1alpha3",
	{Group: "extensions.istio.io", Kind: KindWasmPlugin}:          "v1alpha1",
	{Group: "extensions.istio.io", Kind: KindTrafficExtension}:    "v1alpha1",
	{Group: "security.istio.io", Kind: KindAuthorizationPolicy}:   "v1",
	{Group: "security.istio.io", Kind: KindRequestAuthentication}: "v1",
	{Group: "security.istio.io", Kind: KindPeerAuthentication}:    "v1",
	{Group: "telemetry.istio.io", Kind: KindTelemetry}:            "v1",
	{Group: gatewayv1.GroupName, Kind: KindHTTPRoute}:             "v1",
	{Group: gatewayv1.GroupName, Kind: KindGRPCRoute}:             "v1",
}

// typedFor converts an unstructured Istio, Gateway API or Kubernetes object.
func typedFor(u *unstructured.Unstructured) (runtime.Object, error) {
	gvk := u.GroupVersionKind()
	if v, ok := indexedVersion[gvk.GroupKind()]; ok {
		gvk.Version = v
	}
	obj, err := typedScheme.New(gvk)
	if err != nil {
		return nil, fmt.Errorf("index: unsupported kind %s: %w", u.GroupVersionKind(), err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		return nil, fmt.Errorf("index: convert %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return obj, nil
}

// EventHandler feeds the index from informers of the WatchedObjects types.
// Objects it cannot read are passed to onError (which may be nil).
func (ix *Index) EventHandler(onError func(obj any, err error)) cache.ResourceEventHandler {
	report := func(obj any, err error) {
		if err != nil && onError != nil {
			onError(obj, err)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { report(obj, ix.Upsert(obj)) },
		UpdateFunc: func(_, obj any) { report(obj, ix.Upsert(obj)) },
		DeleteFunc: func(obj any) { report(obj, ix.Delete(obj)) },
	}
}

var _ metav1.Object = (*unstructured.Unstructured)(nil)
