package cli

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
)

// WorkloadInfo is one workload: a Deployment, StatefulSet, DaemonSet,
// ReplicationController, Job, CronJob, Argo Rollout or bare Pod.
type WorkloadInfo struct {
	Kind      string
	Namespace string
	Name      string
	// Replicas is the desired pod count (1 for a Pod; a DaemonSet's is the
	// node count when nodes are known, else 1; a Job's or CronJob's is its
	// parallelism).
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
	// Notes say what was not read and why (kinds meshshift does not read).
	Notes []string
	// Objects are the objects read, as read (plan --emit-policies copies and
	// narrows the Istio policies among them).
	Objects []Object
	// Skipped are objects of kinds meshshift reads that were left out: mesh
	// objects their Go types cannot decode, Rollouts whose workloadRef names
	// no Deployment read. The plan is made without them.
	Skipped []SkippedObject
}

// Build reads the objects into an inventory. A bad object is an error naming
// its file, the object and the field; every bad object is reported. A mesh
// object (Istio, Gateway API, Cilium) that cannot be decoded does not stop the
// rest: it is left out and listed in Skipped, as the mesh itself would leave
// it out.
func Build(objs []Object) (*Inventory, error) {
	inv := &Inventory{Namespaces: map[string]*corev1.Namespace{}, Index: signals.NewIndex(""), Objects: objs}
	b := &builder{inv: inv, det: &detectInputs{}, podSrc: map[*corev1.Pod]Source{}, seen: map[string]Source{},
		jobOwner: map[string]string{}}
	var errs, all []error // fatal ones; every one, in order
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
			all = append(all, errs[len(errs)-1])
			continue
		}
		if clusterScoped[gvk.Kind] {
			if o.U.GetNamespace() != "" {
				errs = append(errs, &ManifestError{Source: o.Source, Object: o.Ref(), Field: "metadata.namespace",
					Err: fmt.Errorf("%s is cluster-scoped and takes no namespace", gvk.Kind)})
				all = append(all, errs[len(errs)-1])
				continue
			}
		} else if o.U.GetNamespace() == "" {
			o.U.SetNamespace(metav1.NamespaceDefault)
		}
		if err := b.add(o, info); err != nil {
			all = append(all, err)
			if meshGroups[gvk.Group] {
				inv.Skipped = append(inv.Skipped, skippedOf(o, err)...)
				continue
			}
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// Every bad object at once, the ones that alone would be skipped too.
		return nil, errors.Join(all...)
	}
	b.finish()
	caps, err := signals.DetectCapabilities(b.det.daemonSets, b.det.deployments, b.det.nodes, false)
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

// builder is the state of one Build.
type builder struct {
	inv        *Inventory
	det        *detectInputs
	daemonSets []*WorkloadInfo
	pods       []*corev1.Pod
	podSrc     map[*corev1.Pod]Source
	seen       map[string]Source
	// jobOwner maps "namespace/job" to the CronJob that owns the Job.
	jobOwner map[string]string
	// ownedJobs are Jobs owned by a CronJob: decided as the CronJob when it
	// is not among the objects.
	ownedJobs []*WorkloadInfo
	// rollouts name a Deployment in spec.workloadRef instead of a template.
	rollouts []*rolloutRef
}

func (b *builder) addWorkload(o *Object, w *WorkloadInfo) error {
	if prev, dup := b.seen[w.Key()]; dup {
		return &ManifestError{Source: o.Source, Object: o.Ref(), Field: "metadata.name",
			Err: fmt.Errorf("a workload named %s is already defined at %s", w.Key(), prev)}
	}
	b.seen[w.Key()] = o.Source
	b.inv.Workloads = append(b.inv.Workloads, w)
	return nil
}

func (b *builder) add(o *Object, info kindInfo) error {
	inv := b.inv
	kind := o.U.GetKind()
	if info.typed == nil {
		switch kind {
		case "CustomResourceDefinition":
			if strings.HasSuffix(o.U.GetName(), "."+groupGateway) {
				inv.GatewayAPICRDs = true
			}
			return nil
		case "Rollout":
			return b.addRollout(o)
		default: // Cilium, read by the index as unstructured
			if err := inv.Index.Upsert(o.U); err != nil {
				return &ManifestError{Source: o.Source, Object: o.Ref(), Err: err}
			}
			return nil
		}
	}
	var typed any = o.typed
	if o.typed == nil {
		var err error
		if typed, err = toTyped(o, info); err != nil {
			return err
		}
	}
	switch t := typed.(type) {
	case *corev1.Namespace:
		inv.Namespaces[t.Name] = t
	case *corev1.Node:
		inv.NodeCount++
		if _, err := signals.NodeCapabilitiesFromLabels(t.Labels); err != nil {
			return &ManifestError{Source: o.Source, Object: o.Ref(), Field: "metadata.labels", Err: err}
		}
		b.det.nodes = append(b.det.nodes, *t)
	case *corev1.Pod:
		b.pods = append(b.pods, t)
		b.podSrc[t] = o.Source
	case *appsv1.Deployment:
		b.det.deployments = append(b.det.deployments, *t)
		if err := inv.Index.Upsert(t); err != nil {
			return &ManifestError{Source: o.Source, Object: o.Ref(), Err: err}
		}
		return b.addWorkload(o, &WorkloadInfo{Kind: kind, Namespace: t.Namespace, Name: t.Name,
			Replicas: replicas(t.Spec.Replicas), Template: t.Spec.Template, Source: o.Source})
	case *appsv1.StatefulSet:
		if err := inv.Index.Upsert(t); err != nil {
			return &ManifestError{Source: o.Source, Object: o.Ref(), Err: err}
		}
		return b.addWorkload(o, &WorkloadInfo{Kind: kind, Namespace: t.Namespace, Name: t.Name,
			Replicas: replicas(t.Spec.Replicas), Template: t.Spec.Template, Source: o.Source})
	case *appsv1.DaemonSet:
		b.det.daemonSets = append(b.det.daemonSets, declared(o, t))
		if err := inv.Index.Upsert(t); err != nil {
			return &ManifestError{Source: o.Source, Object: o.Ref(), Err: err}
		}
		w := &WorkloadInfo{Kind: kind, Namespace: t.Namespace, Name: t.Name, Replicas: 1, Template: t.Spec.Template, Source: o.Source}
		b.daemonSets = append(b.daemonSets, w)
		return b.addWorkload(o, w)
	case *corev1.ReplicationController, *batchv1.Job, *batchv1.CronJob:
		return b.addBatchOrRC(o, typed)
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

// finish adds the workloads known only by their pods or Jobs, resolves the
// Rollouts' workloadRefs, adds namespaces named only by objects and DaemonSet
// replica counts, and sorts the workloads.
func (b *builder) finish() {
	inv := b.inv
	for _, j := range b.ownedJobs {
		if _, ok := b.seen[j.Key()]; !ok {
			b.seen[j.Key()] = j.Source
			inv.Workloads = append(inv.Workloads, j)
		}
	}
	b.resolveRollouts()
	for _, p := range b.pods {
		var ownerKind, ownerName string
		if c := metav1.GetControllerOf(p); c != nil {
			ownerKind, ownerName = c.Kind, c.Name
		}
		if cron, ok := b.jobOwner[p.Namespace+"/"+ownerName]; ok && ownerKind == "Job" {
			ownerKind, ownerName = "CronJob", cron
		}
		name := signals.WorkloadName(ownerKind, ownerName, p.Name, p.Labels)
		key := p.Namespace + "/" + name
		if _, ok := b.seen[key]; ok {
			continue // one of a known workload's pods, or another pod of the same owner
		}
		b.seen[key] = b.podSrc[p]
		kind := "Pod"
		if ownerKind != "" {
			kind = ownerKind
		}
		inv.Workloads = append(inv.Workloads, &WorkloadInfo{Kind: kind, Namespace: p.Namespace, Name: name, Replicas: 1,
			Template: corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec}, Source: b.podSrc[p]})
	}
	if inv.NodeCount > 0 {
		for _, d := range b.daemonSets {
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
