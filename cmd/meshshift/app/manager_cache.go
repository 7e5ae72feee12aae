package app

import (
	"unique"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/meshshift/meshshift/signals"
)

// cacheOptions are the manager's informer caches: every object trimmed by
// trimObject to what the manager reads of it. With ten thousand pods and
// thousands of workloads, the pods' containers, volumes and statuses and
// the workloads' full pod templates were most of the heap.
func cacheOptions() cache.Options {
	return cache.Options{DefaultTransform: trimObject}
}

var _ toolscache.TransformFunc = trimObject

// lastApplied is the annotation kubectl apply keeps the whole applied
// manifest in; in real clusters it is often an object's largest field.
const lastApplied = corev1.LastAppliedConfigAnnotation

// trimObject is the transform of every informer of the manager's cache. It
// drops managedFields from every object (nothing reads them from the cache),
// the last-applied-configuration annotation from every object the manager
// never writes back whole (keepsLastApplied), and of each kind below what no
// reader uses: pods (trimPod), Deployments, StatefulSets, DaemonSets, Jobs,
// CronJobs and ReplicationControllers (trimWorkload), Nodes (their labels
// only) and the mesh objects signals indexes (trimMeshObject). The labels
// and annotations of typed objects are made canonical (intern), so objects
// that repeat them share one copy. A reader of a field dropped here must add
// it, with a case in the tests beside this file.
//
// Nothing may Update a cached object of a trimmed kind whole: the update
// would wipe what the cache dropped. Patching it with client.MergeFrom from
// the cached copy is safe (the patch holds only what the caller changed).
// The migrator Updates Namespaces and the AuthorizationPolicies and
// RequestAuthentications it moves from their cached copies, so those keep
// their annotations; managedFields are safe to drop everywhere (an update
// that sends none leaves the server's as they are).
func trimObject(in any) (any, error) {
	switch o := in.(type) {
	case *corev1.Pod:
		return trimPod(o)
	case *appsv1.Deployment, *appsv1.StatefulSet, *appsv1.DaemonSet, *batchv1.Job, *batchv1.CronJob, *corev1.ReplicationController:
		return trimWorkload(o)
	case *corev1.Node:
		return trimNode(o), nil
	case *unstructured.Unstructured:
		return trimMeshObject(o), nil
	case metav1.Object:
		trimMeta(o, keepsLastApplied(o))
		internMap(o.GetLabels()) // a typed object's own maps
		internMap(o.GetAnnotations())
		return in, nil
	}
	return in, nil
}

// keepsLastApplied is true for the kinds the migrator Updates whole from
// their cached copies (Namespaces, and the L7 policies a wave moves): an
// update from a copy without the annotation would remove it from the
// cluster, and kubectl apply would then lose track of what it applied.
func keepsLastApplied(o any) bool {
	switch o := o.(type) {
	case *corev1.Namespace:
		return true
	case *unstructured.Unstructured:
		return o.GroupVersionKind().GroupKind() == authorizationPolicy || o.GroupVersionKind().GroupKind() == requestAuthentication
	}
	return false
}

var (
	authorizationPolicy   = schema.GroupKind{Group: "security.istio.io", Kind: signals.KindAuthorizationPolicy}
	requestAuthentication = schema.GroupKind{Group: "security.istio.io", Kind: signals.KindRequestAuthentication}
)

// trimMeta drops managedFields and, unless keepApplied, the
// last-applied-configuration annotation. It changes o in place: a transform
// gets the freshly decoded object, which nothing else holds yet.
func trimMeta(o metav1.Object, keepApplied bool) {
	o.SetManagedFields(nil)
	if keepApplied {
		return
	}
	// A typed object returns its own map, an unstructured one a copy: set
	// it back either way.
	if a := o.GetAnnotations(); a != nil {
		if _, ok := a[lastApplied]; ok {
			delete(a, lastApplied)
			if len(a) == 0 {
				a = nil
			}
			o.SetAnnotations(a)
		}
	}
}

// trimTypedMeta is trimMeta without last-applied-configuration, then
// internMeta.
func trimTypedMeta(m *metav1.ObjectMeta) {
	trimMeta(m, false)
	internMeta(m)
}

// maxInterned is the longest string intern makes canonical: a longer one is
// rarely repeated (and kept as decoded).
const maxInterned = 1024

// intern returns the canonical copy of s (unique.Make): the labels and
// annotations of thousands of pods and workloads repeat a few keys and
// values (the template's labels, meshshift's decision and reason), which
// the decoder allocates once per object. A canonical copy lives as long as
// an object holds it; a value no object holds any more is collected.
func intern(s string) string {
	if s == "" || len(s) > maxInterned {
		return s
	}
	return unique.Make(s).Value()
}

// internMap makes m's keys and values canonical in place: assigning to an
// existing string key stores the key given (Go updates string keys on
// overwrite), so no entry is added and no map allocated.
func internMap(m map[string]string) {
	for k, v := range m {
		m[intern(k)] = intern(v)
	}
}

// internMeta makes m's repeated strings canonical: its namespace,
// generateName, labels, annotations and owners' kinds and API versions
// (names and UIDs are each object's own).
func internMeta(m *metav1.ObjectMeta) {
	m.Namespace = intern(m.Namespace)
	m.GenerateName = intern(m.GenerateName)
	internMap(m.Labels)
	internMap(m.Annotations)
	for i := range m.OwnerReferences {
		r := &m.OwnerReferences[i]
		r.APIVersion, r.Kind = intern(r.APIVersion), intern(r.Kind)
	}
}

// trimPod keeps of a pod what the manager's readers of the pod cache use:
// its metadata but managedFields and last-applied-configuration (the
// missed-decision detector: namespace, annotations, deletion; the callers'
// address index, signals.PodIPs: name, UID, controller, labels, creation
// time; the migrator's L7 policy move: labels, deletion), whether it runs on
// the host network (PodIPs), its phase and addresses (PodIPs), and among its
// containers and init containers only the sidecar proxy's, by name: the
// migrator's only question of a pod's containers is whether istio-proxy is
// one of them (a container struct costs 400 bytes even when only its name
// is kept). Nothing reads its conditions, node, host addresses or start
// time from the cache.
func trimPod(p *corev1.Pod) (any, error) {
	trimTypedMeta(&p.ObjectMeta)
	p.Spec = corev1.PodSpec{
		HostNetwork:    p.Spec.HostNetwork,
		InitContainers: proxyContainers(p.Spec.InitContainers),
		Containers:     proxyContainers(p.Spec.Containers),
	}
	p.Status = corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs}
	return p, nil
}

// proxyContainer is the name of Istio's sidecar container, the one container
// the manager looks for among a pod's.
const proxyContainer = "istio-proxy"

// proxyContainers is the proxyContainer of cs, by name only; nil without one.
func proxyContainers(cs []corev1.Container) []corev1.Container {
	for _, c := range cs {
		if c.Name == proxyContainer {
			return []corev1.Container{{Name: c.Name}}
		}
	}
	return nil
}

// trimTemplate keeps of a workload's pod template what the migrator decides
// and restarts from (policies.Input of migrator decideWith, and
// policies.CurrentMode for the callers of a workload): its labels and
// annotations (the restartedAt token among them), hostNetwork, and what
// signals.NodeRequirementOf reads (nodeSelector and the required node
// affinity; preferences and tolerations are not read). Nothing reads a
// template's containers, volumes or service account from the cache.
func trimTemplate(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	internMeta(&t.ObjectMeta)
	out := corev1.PodTemplateSpec{
		ObjectMeta: t.ObjectMeta,
		Spec: corev1.PodSpec{
			HostNetwork:  t.Spec.HostNetwork,
			NodeSelector: t.Spec.NodeSelector,
		},
	}
	if a := t.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		out.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution,
		}}
	}
	return out
}

// trimWorkload keeps of a workload what its readers use:
//   - all kinds: metadata but managedFields and last-applied-configuration
//     (the migrator: name, the gateway-name label of a Deployment, a Job's
//     controller), the pod template (trimTemplate) and the selector;
//   - Deployment: replicas and paused (the precheck's cannotRestart, the
//     migrator's rolledOut) and the whole status (rolledOut, and whether a
//     waypoint's Deployment is available); signals.Index reads the template's
//     labels, capability detection the names of istiod and Linkerd's;
//   - StatefulSet: replicas, the update strategy (OnDelete blocks a wave; a
//     rolling update's partition) and the whole status (rolledOut);
//   - DaemonSet: the update strategy and the whole status (rolledOut;
//     capability detection reads numberReady of ztunnel and cilium and the
//     template's node requirement);
//   - ReplicationController: replicas (one that runs pods blocks a wave);
//   - Job and CronJob: the template only; a wave counts them without
//     restarting them or waiting for them (the webhook reads Jobs from a
//     separate metadata-only informer).
func trimWorkload(in any) (any, error) {
	switch o := in.(type) {
	case *appsv1.Deployment:
		trimTypedMeta(&o.ObjectMeta)
		o.Spec = appsv1.DeploymentSpec{Replicas: o.Spec.Replicas, Paused: o.Spec.Paused, Selector: o.Spec.Selector,
			Template: trimTemplate(o.Spec.Template)}
	case *appsv1.StatefulSet:
		trimTypedMeta(&o.ObjectMeta)
		o.Spec = appsv1.StatefulSetSpec{Replicas: o.Spec.Replicas, UpdateStrategy: o.Spec.UpdateStrategy, Selector: o.Spec.Selector,
			Template: trimTemplate(o.Spec.Template)}
	case *appsv1.DaemonSet:
		trimTypedMeta(&o.ObjectMeta)
		o.Spec = appsv1.DaemonSetSpec{UpdateStrategy: o.Spec.UpdateStrategy, Selector: o.Spec.Selector,
			Template: trimTemplate(o.Spec.Template)}
	case *corev1.ReplicationController:
		trimTypedMeta(&o.ObjectMeta)
		o.Status = corev1.ReplicationControllerStatus{}
		o.Spec = corev1.ReplicationControllerSpec{Replicas: o.Spec.Replicas, Selector: o.Spec.Selector, Template: o.Spec.Template}
		if t := o.Spec.Template; t != nil {
			*t = trimTemplate(*t)
		}
	case *batchv1.Job:
		trimTypedMeta(&o.ObjectMeta)
		o.Status = batchv1.JobStatus{}
		o.Spec = batchv1.JobSpec{Selector: o.Spec.Selector, Template: trimTemplate(o.Spec.Template)}
	case *batchv1.CronJob:
		trimTypedMeta(&o.ObjectMeta)
		o.Status = batchv1.CronJobStatus{}
		jt := &o.Spec.JobTemplate
		o.Spec = batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{ObjectMeta: jt.ObjectMeta,
			Spec: batchv1.JobSpec{Selector: jt.Spec.Selector, Template: trimTemplate(jt.Spec.Template)}}}
	}
	return in, nil
}

// trimNode keeps a node's metadata: capability detection reads its name and
// labels (the agent's kernel capabilities, what the DaemonSets' node
// requirements match). Its status (images, conditions, addresses) is the
// bulk of a node and is not read.
func trimNode(n *corev1.Node) *corev1.Node {
	trimTypedMeta(&n.ObjectMeta)
	n.Spec, n.Status = corev1.NodeSpec{}, corev1.NodeStatus{}
	return n
}

// meshKinds are the kinds signals indexes from unstructured objects (Istio,
// Gateway API routes, Cilium).
var meshKinds = func() map[schema.GroupKind]bool {
	out := map[schema.GroupKind]bool{}
	for _, obj := range signals.WatchedObjects() {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			out[u.GroupVersionKind().GroupKind()] = true
		}
	}
	return out
}()

// trimMeshObject drops managedFields from an unstructured object, the
// last-applied-configuration annotation where keepsLastApplied allows, and
// the status of the mesh kinds signals indexes: the index reads their
// metadata and spec only (Istio's validation messages and a route's status
// per parent are not read). Other unstructured objects (Argo Rollouts, whose
// status the migrator reads) keep their status. Their specs stay whole:
// signals reads most of each kind's spec, and the migrator copies the L7
// policies it moves from the cached objects.
func trimMeshObject(u *unstructured.Unstructured) *unstructured.Unstructured {
	trimMeta(u, keepsLastApplied(u))
	if meshKinds[u.GroupVersionKind().GroupKind()] {
		delete(u.Object, "status")
	}
	return u
}
