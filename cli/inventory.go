package cli

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
)

// WorkloadInfo is one workload: a Deployment, StatefulSet, DaemonSet or bare Pod.
type WorkloadInfo struct {
	Kind      string
	Namespace string
	Name      string
	// Replicas is the desired pod count (1 for a Pod; a DaemonSet's is the
	// node count when nodes are known, else 1).
	Replicas int32
	Template corev1.PodTemplateSpec
	Source   Source
}

// Key is "namespace/name".
func (w *WorkloadInfo) Key() string { return w.Namespace + "/" + w.Name }

// Inventory is everything read from manifests or a cluster that Decide's
// inputs are built from.
type Inventory struct {
	Namespaces map[string]*corev1.Namespace
	// Workloads sorted by namespace, then name.
	Workloads []*WorkloadInfo
	Index     *signals.Index
	// Policies are the compiled DataplanePolicies (policies.Select picks one).
	Policies []*policies.Policy
	// Capabilities are detected from the objects (ztunnel or Cilium DaemonSets,
	// the agent's node labels) unless overridden.
	Capabilities signals.Capabilities
	// NodeCount is how many Nodes were read.
	NodeCount int
	// GatewayAPICRDs is true when the Gateway API CRDs were among the objects
	// (offline) or are served (cluster).
	GatewayAPICRDs bool
	// Migrations are the MeshMigrations read.
	Migrations []*meshv1alpha1.MeshMigration
	// Traffic is the traffic snapshot, nil without one.
	Traffic *signals.TrafficSnapshot
	// Notes say what was skipped and why.
	Notes []string
}

// Build reads the objects into an inventory. A bad object is an error naming
// its file, the object and the field; every bad object is reported.
func Build(objs []Object) (*Inventory, error) {
	inv := &Inventory{Namespaces: map[string]*corev1.Namespace{}, Index: signals.NewIndex("")}
	var errs []error
	var daemonSets []*WorkloadInfo
	det := &detectInputs{}
	var pods []*corev1.Pod
	podSrc := map[*corev1.Pod]Source{}
	seenWorkload := map[string]Source{}
	skipped := map[string][]string{}
	for i := range objs {
		o := &objs[i]
		gvk := o.U.GroupVersionKind()
		info, known := knownKinds[gvk.GroupKind()]
		if !known {
			skipped[gvk.Kind] = append(skipped[gvk.Kind], o.Source.String())
			continue
		}
		if !slices.Contains(info.versions, gvk.Version) {
			errs = append(errs, &ManifestError{Source: o.Source, Object: o.Ref(), Field: "apiVersion",
				Err: fmt.Errorf("%s is not read; use %s", o.U.GetAPIVersion(), groupVersions(gvk.Group, info.versions))})
			continue
		}
		if clusterScoped[gvk.Kind] {
			if o.U.GetNamespace() != "" {
				errs = append(errs, &ManifestError{Source: o.Source, Object: o.Ref(), Field: "metadata.namespace",
					Err: fmt.Errorf("%s is cluster-scoped and takes no namespace", gvk.Kind)})
				continue
			}
		} else if o.U.GetNamespace() == "" {
			o.U.SetNamespace(metav1.NamespaceDefault)
		}
		if err := inv.add(o, info, det, &daemonSets, &pods, podSrc, seenWorkload); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	inv.finish(daemonSets, pods, podSrc, seenWorkload)
	caps, err := signals.DetectCapabilities(det.daemonSets, det.deployments, det.nodes, false)
	if err != nil {
		return nil, fmt.Errorf("detect capabilities: %w", err)
	}
	inv.Capabilities = caps
	kinds := make([]string, 0, len(skipped))
	for k := range skipped {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		inv.Notes = append(inv.Notes, fmt.Sprintf("skipped %d %s object(s): kind not read by meshshift (%s)",
			len(skipped[k]), k, strings.Join(skipped[k], ", ")))
	}
	return inv, nil
}

func groupVersions(group string, versions []string) string {
	out := make([]string, len(versions))
	for i, v := range versions {
		out[i] = schema.GroupVersion{Group: group, Version: v}.String()
	}
	return strings.Join(out, " or ")
}

// detectInputs are the objects signals.DetectCapabilities reads.
type detectInputs struct {
	daemonSets  []appsv1.DaemonSet
	deployments []appsv1.Deployment
	nodes       []corev1.Node
}

// declared marks a workload read from a manifest as running: a manifest has
// no status, and offline a declared ztunnel or Cilium DaemonSet means the
// cluster will serve that mode.
func declared(o *Object, ds *appsv1.DaemonSet) appsv1.DaemonSet {
	c := *ds
	if o.Source.File != "" && c.Status.NumberReady == 0 {
		c.Status.NumberReady = 1
	}
	return c
}

func (inv *Inventory) add(o *Object, info kindInfo, det *detectInputs, daemonSets *[]*WorkloadInfo,
	pods *[]*corev1.Pod, podSrc map[*corev1.Pod]Source, seen map[string]Source) error {
	kind := o.U.GetKind()
	if info.typed == nil {
		switch kind {
		case "CustomResourceDefinition":
			if strings.HasSuffix(o.U.GetName(), "."+groupGateway) {
				inv.GatewayAPICRDs = true
			}
			return nil
		default: // Cilium, read by the index as unstructured
			if err := inv.Index.Upsert(o.U); err != nil {
				return &ManifestError{Source: o.Source, Object: o.Ref(), Err: err}
			}
			return nil
		}
	}
	typed, err := toTyped(o, info)
	if err != nil {
		return err
	}
	addWorkload := func(w *WorkloadInfo) error {
		if prev, dup := seen[w.Key()]; dup {
			return &ManifestError{Source: o.Source, Object: o.Ref(), Field: "metadata.name",
				Err: fmt.Errorf("a workload named %s is already defined at %s", w.Key(), prev)}
		}
		seen[w.Key()] = o.Source
		inv.Workloads = append(inv.Workloads, w)
		return nil
	}
	switch t := typed.(type) {
	case *corev1.Namespace:
		inv.Namespaces[t.Name] = t
	case *corev1.Node:
		inv.NodeCount++
		if _, err := signals.NodeCapabilitiesFromLabels(t.Labels); err != nil {
			return &ManifestError{Source: o.Source, Object: o.Ref(), Field: "metadata.labels", Err: err}
		}
		det.nodes = append(det.nodes, *t)
	case *corev1.Pod:
		*pods = append(*pods, t)
		podSrc[t] = o.Source
	case *appsv1.Deployment:
		det.deployments = append(det.deployments, *t)
		if err := inv.Index.Upsert(t); err != nil {
			return &ManifestError{Source: o.Source, Object: o.Ref(), Err: err}
		}
		return addWorkload(&WorkloadInfo{Kind: kind, Namespace: t.Namespace, Name: t.Name,
			Replicas: replicas(t.Spec.Replicas), Template: t.Spec.Template, Source: o.Source})
	case *appsv1.StatefulSet:
		if err := inv.Index.Upsert(t); err != nil {
			return &ManifestError{Source: o.Source, Object: o.Ref(), Err: err}
		}
		return addWorkload(&WorkloadInfo{Kind: kind, Namespace: t.Namespace, Name: t.Name,
			Replicas: replicas(t.Spec.Replicas), Template: t.Spec.Template, Source: o.Source})
	case *appsv1.DaemonSet:
		det.daemonSets = append(det.daemonSets, declared(o, t))
		if err := inv.Index.Upsert(t); err != nil {
			return &ManifestError{Source: o.Source, Object: o.Ref(), Err: err}
		}
		w := &WorkloadInfo{Kind: kind, Namespace: t.Namespace, Name: t.Name, Replicas: 1, Template: t.Spec.Template, Source: o.Source}
		*daemonSets = append(*daemonSets, w)
		return addWorkload(w)
	case *meshv1alpha1.DataplanePolicy:
		p, ferrs := policies.Compile(t)
		if len(ferrs) > 0 {
			var errs []error
			for _, fe := range ferrs {
				errs = append(errs, &ManifestError{Source: o.Source, Object: o.Ref(), Field: fe.Field,
					Err: errors.New(strings.TrimPrefix(fe.ErrorBody(), fe.Field+": "))})
			}
			return errors.Join(errs...)
		}
		inv.Policies = append(inv.Policies, p)
	case *meshv1alpha1.MeshMigration:
		inv.Migrations = append(inv.Migrations, t)
	default: // Istio, Gateway API and Services
		if kind == "Gateway" {
			// Gateways (waypoints among them) select no workload; they show the
			// Gateway API is in use.
			inv.GatewayAPICRDs = true
			return nil
		}
		if err := inv.Index.Upsert(typed); err != nil {
			return &ManifestError{Source: o.Source, Object: o.Ref(), Err: err}
		}
	}
	return nil
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// finish adds bare pods, namespaces named only by objects and DaemonSet
// replica counts, and sorts the workloads.
func (inv *Inventory) finish(daemonSets []*WorkloadInfo, pods []*corev1.Pod,
	podSrc map[*corev1.Pod]Source, seen map[string]Source) {
	for _, p := range pods {
		var ownerKind, ownerName string
		if c := metav1.GetControllerOf(p); c != nil {
			ownerKind, ownerName = c.Kind, c.Name
		}
		name := signals.WorkloadName(ownerKind, ownerName, p.Name, p.Labels)
		key := p.Namespace + "/" + name
		if _, ok := seen[key]; ok {
			continue // one of a known workload's pods, or another pod of the same owner
		}
		seen[key] = podSrc[p]
		kind := "Pod"
		if ownerKind != "" {
			kind = ownerKind
		}
		inv.Workloads = append(inv.Workloads, &WorkloadInfo{Kind: kind, Namespace: p.Namespace, Name: name, Replicas: 1,
			Template: corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec}, Source: podSrc[p]})
	}
	if inv.NodeCount > 0 {
		for _, d := range daemonSets {
			d.Replicas = int32(inv.NodeCount)
		}
	}
	for _, w := range inv.Workloads {
		if _, ok := inv.Namespaces[w.Namespace]; !ok {
			inv.Namespaces[w.Namespace] = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.Namespace}}
		}
	}
	sort.Slice(inv.Workloads, func(i, j int) bool {
		a, b := inv.Workloads[i], inv.Workloads[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}

// Workload finds a workload by namespace and name.
func (inv *Inventory) Workload(namespace, name string) (*WorkloadInfo, bool) {
	for _, w := range inv.Workloads {
		if w.Namespace == namespace && w.Name == name {
			return w, true
		}
	}
	return nil, false
}
