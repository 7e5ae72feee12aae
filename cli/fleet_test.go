package cli

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

// fleet is the cluster of `make bench-scale` (test/bench/scalebench's
// layout): per namespace a Deployment web ×4, a Deployment api ×3, a
// StatefulSet db ×2 and a Job ×1 with their pods, two headless Services;
// mesh objects spread over the namespaces (only PeerAuthentications and
// DestinationRules in the two wave's worth of namespaces); DataplanePolicies
// with CEL rules, each selecting its group of namespaces; kwok nodes. Every
// object is written as the API server returns it from a list: defaulted,
// with status, uid, resourceVersion and managed fields.
type fleet struct {
	namespaces, meshObjects, policies, waveNamespaces int
	// loadPods are the bare pods of the bench's webhook latency run in
	// namespace scale-load (each a workload of its own), left behind when
	// their deletion fails, as in the run whose plan took 14.6 s.
	loadPods int
}

// newFleet is the layout at scale s (1 is bench-scale's 1,000 namespaces,
// 10,000 pods and 5,000 mesh objects; 20 policies at every scale).
func newFleet(s float64) fleet {
	f := fleet{
		namespaces:     max(int(1000*s), 3),
		meshObjects:    max(int(5000*s), 13),
		policies:       20,
		waveNamespaces: max(int(50*s), 1),
		loadPods:       int(5000 * s),
	}
	f.namespaces = max(f.namespaces, 2*f.waveNamespaces+1)
	return f
}

const (
	fleetPodsPerNS  = 10
	fleetPodsPerNod = 110
)

func (f fleet) pods() int  { return f.namespaces * fleetPodsPerNS } // without the load pods
func (f fleet) nodes() int { return (f.pods()*13/10)/fleetPodsPerNod + 2 }

func fleetNS(i int) string { return fmt.Sprintf("scale-%04d", i) }

// fleetTime is every object's creation time.
var fleetTime = metav1.NewTime(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))

// uid is a stable UID for a name.
func uid(parts ...string) types.UID {
	h := fnv.New128a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	b := h.Sum(nil)
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

// hash is a short hash like a ReplicaSet's pod-template-hash.
func hash(n int, parts ...string) string {
	const chars = "bcdfghjklmnpqrstvwxz2456789"
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
	}
	v := h.Sum64()
	out := make([]byte, n)
	for i := range out {
		out[i] = chars[v%uint64(len(chars))]
		v /= uint64(len(chars))
	}
	return string(out)
}

// managed is a managed-fields entry like the API server keeps: fields lists
// the dotted paths the manager owns.
func managed(manager, op, sub string, fields ...string) metav1.ManagedFieldsEntry {
	root := map[string]any{}
	for _, p := range fields {
		m := root
		for _, seg := range splitPath(p) {
			next, ok := m["f:"+seg].(map[string]any)
			if !ok {
				next = map[string]any{}
				m["f:"+seg] = next
			}
			m = next
		}
	}
	b, _ := json.Marshal(root)
	return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationType(op), APIVersion: "v1",
		Time: &fleetTime, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: b}, Subresource: sub}
}

func splitPath(p string) []string {
	var out []string
	start := 0
	for i := 0; i < len(p); i++ {
		if p[i] == '.' {
			out = append(out, p[start:i])
			start = i + 1
		}
	}
	return append(out, p[start:])
}

func (f fleet) meta(ns, name string, gen int64, managers ...metav1.ManagedFieldsEntry) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: ns, UID: uid(ns, name), ResourceVersion: fmt.Sprint(len(ns) + len(name)*7919),
		Generation: gen, CreationTimestamp: fleetTime, ManagedFields: managers}
}

func fleetLabels(app string) map[string]string {
	return map[string]string{"app": app, "app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "shop", "tier": "backend", "version": "v1"}
}

func fleetPodSpec(app, node string, restart corev1.RestartPolicy) corev1.PodSpec {
	return corev1.PodSpec{
		NodeName: node,
		Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/shop/" + app + ":1.0",
			Ports:                    []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			Resources:                corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}},
			TerminationMessagePath:   "/dev/termination-log",
			TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			ImagePullPolicy:          corev1.PullIfNotPresent,
		}},
		RestartPolicy:                 restart,
		TerminationGracePeriodSeconds: ptr.To[int64](0),
		DNSPolicy:                     corev1.DNSClusterFirst,
		SecurityContext:               &corev1.PodSecurityContext{},
		SchedulerName:                 corev1.DefaultSchedulerName,
	}
}

func fleetTemplate(app, node string, restart corev1.RestartPolicy) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: fleetLabels(app)}, Spec: fleetPodSpec(app, node, restart)}
}

func (f fleet) node(i int) string { return fmt.Sprintf("kwok-node-%d", i%f.nodes()) }

// fleetPod is one running pod of a workload, labelled and annotated by
// meshshift's webhook (decided sidecar: its namespace has no annotation and
// its policy's default is sidecar).
func (f fleet) fleetPod(ns, name, node string, labels map[string]string, owner metav1.OwnerReference, restart corev1.RestartPolicy, i int) corev1.Pod {
	labels["sidecar.istio.io/inject"] = "true"
	labels[meshv1alpha1.LabelDataplane] = "sidecar"
	m := f.meta(ns, name, 0,
		managed("kube-controller-manager", "Update", "", "metadata.generateName", "metadata.labels.app", "metadata.labels.tier",
			"metadata.labels.version", "metadata.ownerReferences", "spec.containers.app.image", "spec.containers.app.ports",
			"spec.containers.app.resources.requests.cpu", "spec.dnsPolicy", "spec.enableServiceLinks", "spec.restartPolicy",
			"spec.schedulerName", "spec.securityContext", "spec.terminationGracePeriodSeconds"),
		managed("kwok", "Update", "status", "status.conditions", "status.containerStatuses", "status.hostIP", "status.hostIPs",
			"status.phase", "status.podIP", "status.podIPs", "status.startTime"))
	m.GenerateName = owner.Name + "-"
	m.Labels = labels
	m.Annotations = map[string]string{
		meshv1alpha1.AnnotationDecision: "sidecar",
		meshv1alpha1.AnnotationReason:   "default mode sidecar of DataplanePolicy scale-00",
		meshv1alpha1.AnnotationPolicy:   "scale-00/1",
	}
	owner.UID = uid(ns, owner.Name)
	m.OwnerReferences = []metav1.OwnerReference{owner}
	ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
	spec := fleetPodSpec(labels["app"], node, restart)
	spec.Tolerations = []corev1.Toleration{
		{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
		{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
	}
	spec.Priority = ptr.To[int32](0)
	spec.EnableServiceLinks = ptr.To(true)
	spec.PreemptionPolicy = ptr.To(corev1.PreemptLowerPriority)
	cond := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: fleetTime}
	}
	return corev1.Pod{TypeMeta: metav1.TypeMeta{}, ObjectMeta: m, Spec: spec, Status: corev1.PodStatus{
		Phase:      corev1.PodRunning,
		Conditions: []corev1.PodCondition{cond(corev1.PodInitialized), cond(corev1.PodReady), cond(corev1.ContainersReady), cond(corev1.PodScheduled)},
		HostIP:     "10.255.0.1", HostIPs: []corev1.HostIP{{IP: "10.255.0.1"}},
		PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, StartTime: &fleetTime, QOSClass: corev1.PodQOSBurstable,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, Started: ptr.To(true), Image: spec.Containers[0].Image,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: fleetTime}}}},
	}}
}

// fleetObjects are the fleet's objects by kind, typed as the API server
// stores them (mesh objects unstructured, as their CRDs serve them).
type fleetObjects struct {
	namespaces   []corev1.Namespace
	nodes        []corev1.Node
	pods         []corev1.Pod
	services     []corev1.Service
	deployments  []appsv1.Deployment
	statefulSets []appsv1.StatefulSet
	jobs         []batchv1.Job
	policies     []meshv1alpha1.DataplanePolicy
	mesh         map[schema.GroupVersionKind][]unstructured.Unstructured
}

func (f fleet) objects() *fleetObjects {
	o := &fleetObjects{mesh: map[schema.GroupVersionKind][]unstructured.Unstructured{}}
	for _, n := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		o.namespaces = append(o.namespaces, corev1.Namespace{ObjectMeta: f.meta("", n, 0), Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}},
			Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}})
	}
	o.services = append(o.services, corev1.Service{ObjectMeta: f.meta("default", "kubernetes", 0),
		Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.1", Type: corev1.ServiceTypeClusterIP, Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(6443)}}}})
	for i := range f.nodes() {
		n := corev1.Node{ObjectMeta: f.meta("", fmt.Sprintf("kwok-node-%d", i), 0), Status: corev1.NodeStatus{
			Phase: corev1.NodeRunning, Allocatable: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceCPU: resource.MustParse("32")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: fleetTime, LastTransitionTime: fleetTime}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "fake", OperatingSystem: "linux", Architecture: "amd64"},
		}}
		n.Labels = map[string]string{"type": "kwok", "kubernetes.io/hostname": n.Name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
		n.Annotations = map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}
		o.nodes = append(o.nodes, n)
	}
	for i := range f.policies {
		p := meshv1alpha1.DataplanePolicy{ObjectMeta: f.meta("", fmt.Sprintf("scale-%02d", i), 1), Spec: meshv1alpha1.DataplanePolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"policy-group": fmt.Sprintf("g%02d", i)}},
			DefaultMode:       meshv1alpha1.RuleMode(meshv1alpha1.ModeSidecar),
			Rules: []meshv1alpha1.Rule{
				{Name: "legacy", When: `workload.labels["tier"] == "legacy"`, Mode: "sidecar"},
				{Name: "batch", When: `workload.ownerKind == "Job"`, Mode: "none"},
				{Name: "busy", When: `traffic.available && !traffic.stale && traffic.requestRate > 1000.0`, Mode: "sidecar"},
				{Name: "grpc", When: `"grpc" in traffic.protocols`, Mode: "ambient-waypoint"},
				{Name: "envoyfilter", When: `"EnvoyFilter" in features`, Mode: "sidecar"},
			},
		}}
		p.Status.ObservedGeneration = 1
		p.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Compiled", Message: "every rule compiled", LastTransitionTime: fleetTime, ObservedGeneration: 1}}
		o.policies = append(o.policies, p)
	}
	pod := 0
	for i := range f.namespaces {
		ns := fleetNS(i)
		n := corev1.Namespace{ObjectMeta: f.meta("", ns, 0), Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}},
			Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
		n.Labels = map[string]string{"istio-injection": "enabled", "team": fmt.Sprintf("team-%03d", i%300),
			"policy-group": fmt.Sprintf("g%02d", i%f.policies), "kubernetes.io/metadata.name": ns}
		o.namespaces = append(o.namespaces, n)
		node := f.node(i)
		for _, app := range []string{"web", "api"} {
			o.services = append(o.services, corev1.Service{ObjectMeta: f.meta(ns, app, 0), Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": app}, ClusterIP: corev1.ClusterIPNone, ClusterIPs: []string{corev1.ClusterIPNone},
				Type: corev1.ServiceTypeClusterIP, SessionAffinity: corev1.ServiceAffinityNone,
				IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicySingleStack),
				InternalTrafficPolicy: ptr.To(corev1.ServiceInternalTrafficPolicyCluster),
				Ports:                 []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}}})
		}
		surge := intstr.FromString("50%")
		for _, d := range []struct {
			app string
			n   int32
		}{{"web", 4}, {"api", 3}} {
			dep := appsv1.Deployment{ObjectMeta: f.meta(ns, d.app, 1), Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To(d.n), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": d.app}},
				Template: fleetTemplate(d.app, node, corev1.RestartPolicyAlways),
				Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
					RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &surge}},
				RevisionHistoryLimit: ptr.To[int32](10), ProgressDeadlineSeconds: ptr.To[int32](600)},
				Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: d.n, UpdatedReplicas: d.n, ReadyReplicas: d.n, AvailableReplicas: d.n}}
			dep.Annotations = map[string]string{"deployment.kubernetes.io/revision": "1"}
			o.deployments = append(o.deployments, dep)
			rs := d.app + "-" + hash(10, ns, d.app)
			for k := range int(d.n) {
				l := fleetLabels(d.app)
				l["pod-template-hash"] = rs[len(d.app)+1:]
				o.pods = append(o.pods, f.fleetPod(ns, rs+"-"+hash(5, ns, d.app, fmt.Sprint(k)), node, l,
					metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)},
					corev1.RestartPolicyAlways, pod))
				pod++
			}
		}
		o.statefulSets = append(o.statefulSets, appsv1.StatefulSet{ObjectMeta: f.meta(ns, "db", 1), Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: fleetTemplate("db", node, corev1.RestartPolicyAlways), ServiceName: "db", PodManagementPolicy: appsv1.ParallelPodManagement,
			UpdateStrategy:       appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType, RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](0)}},
			RevisionHistoryLimit: ptr.To[int32](10)},
			Status: appsv1.StatefulSetStatus{ObservedGeneration: 1, Replicas: 2, ReadyReplicas: 2, CurrentReplicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}})
		rev := "db-" + hash(10, ns, "db")
		for k := range 2 {
			l := fleetLabels("db")
			l["controller-revision-hash"] = rev
			l["statefulset.kubernetes.io/pod-name"] = fmt.Sprintf("db-%d", k)
			l["apps.kubernetes.io/pod-index"] = fmt.Sprint(k)
			o.pods = append(o.pods, f.fleetPod(ns, fmt.Sprintf("db-%d", k), node, l,
				metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)},
				corev1.RestartPolicyAlways, pod))
			pod++
		}
		jt := fleetTemplate("batch", node, corev1.RestartPolicyNever)
		jobUID := string(uid(ns, "batch"))
		jt.Labels["batch.kubernetes.io/controller-uid"] = jobUID
		jt.Labels["batch.kubernetes.io/job-name"] = "batch"
		jt.Labels["controller-uid"] = jobUID
		jt.Labels["job-name"] = "batch"
		o.jobs = append(o.jobs, batchv1.Job{ObjectMeta: f.meta(ns, "batch", 1), Spec: batchv1.JobSpec{
			Completions: ptr.To[int32](1), Parallelism: ptr.To[int32](1), BackoffLimit: ptr.To[int32](6),
			CompletionMode: ptr.To(batchv1.NonIndexedCompletion), Suspend: ptr.To(false), PodReplacementPolicy: ptr.To(batchv1.TerminatingOrFailed),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"batch.kubernetes.io/controller-uid": jobUID}},
			Template: jt}, Status: batchv1.JobStatus{Active: 1, Ready: ptr.To[int32](1), StartTime: &fleetTime}})
		jl := fleetLabels("batch")
		for k, v := range jt.Labels {
			jl[k] = v
		}
		o.pods = append(o.pods, f.fleetPod(ns, "batch-"+hash(5, ns, "batch"), node, jl,
			metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: "batch", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)},
			corev1.RestartPolicyNever, pod))
		pod++
	}
	o.namespaces = append(o.namespaces, corev1.Namespace{ObjectMeta: f.meta("", "meshshift-system", 0),
		Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}})
	load := corev1.Namespace{ObjectMeta: f.meta("", "scale-load", 0),
		Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
	load.Labels = map[string]string{"policy-group": "g00", "kubernetes.io/metadata.name": "scale-load"}
	o.namespaces = append(o.namespaces, load)
	for i := range f.loadPods {
		o.pods = append(o.pods, f.loadPod(i))
	}
	for n := range f.meshObjects {
		u := f.meshObject(n)
		o.mesh[u.GroupVersionKind()] = append(o.mesh[u.GroupVersionKind()], *u)
	}
	return o
}

// fleetMeshKind is one kind of mesh object and a spec selecting app.
type fleetMeshKind struct {
	gvk  schema.GroupVersionKind
	spec func(app string) map[string]any
}

func fleetSel(app string) map[string]any {
	return map[string]any{"matchLabels": map[string]any{"app": app}}
}

var (
	fleetSafeKinds = []fleetMeshKind{
		{schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication"}, func(app string) map[string]any {
			return map[string]any{"selector": fleetSel(app), "mtls": map[string]any{"mode": "STRICT"}}
		}},
		{schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"}, func(app string) map[string]any {
			return map[string]any{"host": app, "trafficPolicy": map[string]any{"tls": map[string]any{"mode": "ISTIO_MUTUAL"}}}
		}},
	}
	fleetOtherKinds = []fleetMeshKind{
		{schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}, func(app string) map[string]any {
			return map[string]any{"hosts": []any{app}, "http": []any{map[string]any{"timeout": "5s",
				"route": []any{map[string]any{"destination": map[string]any{"host": app}}}}}}
		}},
		{schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"}, func(app string) map[string]any {
			return map[string]any{"selector": fleetSel(app), "action": "ALLOW",
				"rules": []any{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"ports": []any{"8080"}}}}}}}
		}},
		{schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "Sidecar"}, func(app string) map[string]any {
			return map[string]any{"workloadSelector": map[string]any{"labels": map[string]any{"app": app}},
				"egress": []any{map[string]any{"hosts": []any{"./*"}}}}
		}},
		{schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1alpha3", Kind: "EnvoyFilter"}, func(app string) map[string]any {
			return map[string]any{"workloadSelector": map[string]any{"labels": map[string]any{"app": app}},
				"configPatches": []any{map[string]any{"applyTo": "HTTP_FILTER",
					"match": map[string]any{"context": "SIDECAR_INBOUND"},
					"patch": map[string]any{"operation": "INSERT_BEFORE", "value": map[string]any{"name": "bench.lua"}}}}}
		}},
		{schema.GroupVersionKind{Group: "telemetry.istio.io", Version: "v1", Kind: "Telemetry"}, func(app string) map[string]any {
			return map[string]any{"selector": fleetSel(app), "accessLogging": []any{map[string]any{"providers": []any{map[string]any{"name": "envoy"}}}}}
		}},
		{schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "RequestAuthentication"}, func(app string) map[string]any {
			return map[string]any{"selector": fleetSel(app), "jwtRules": []any{map[string]any{"issuer": "https://issuer.example", "jwksUri": "https://issuer.example/jwks"}}}
		}},
		{schema.GroupVersionKind{Group: "extensions.istio.io", Version: "v1alpha1", Kind: "WasmPlugin"}, func(app string) map[string]any {
			return map[string]any{"selector": fleetSel(app), "url": "oci://registry.example/plugins/auth:1"}
		}},
		{schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}, func(app string) map[string]any {
			return map[string]any{"parentRefs": []any{map[string]any{"group": "", "kind": "Service", "name": app}},
				"rules": []any{map[string]any{"backendRefs": []any{map[string]any{"name": app, "port": int64(80)}}}}}
		}},
		{schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "GRPCRoute"}, func(app string) map[string]any {
			return map[string]any{"parentRefs": []any{map[string]any{"group": "", "kind": "Service", "name": app}},
				"rules": []any{map[string]any{"backendRefs": []any{map[string]any{"name": app, "port": int64(80)}}}}}
		}},
	}
)

// meshObject is the n-th mesh object, as scalebench spreads them:
// namespaces in turn, kinds in turn (only safe kinds in the wave
// namespaces), selecting web or api.
func (f fleet) meshObject(n int) *unstructured.Unstructured {
	i := n % f.namespaces
	round := n / f.namespaces
	kinds := append(append([]fleetMeshKind{}, fleetSafeKinds...), fleetOtherKinds...)
	if i < 2*f.waveNamespaces {
		kinds = fleetSafeKinds
	}
	k := kinds[(i+round)%len(kinds)]
	app := []string{"web", "api"}[round%2]
	u := &unstructured.Unstructured{Object: map[string]any{"spec": k.spec(app)}}
	u.SetGroupVersionKind(k.gvk)
	u.SetNamespace(fleetNS(i))
	u.SetName(fmt.Sprintf("%s-%d", app, round))
	u.SetUID(uid(fleetNS(i), k.gvk.Kind, u.GetName()))
	u.SetResourceVersion(fmt.Sprint(n + 1000))
	u.SetGeneration(1)
	u.SetCreationTimestamp(fleetTime)
	mf := managed("scalebench", "Update", "", "spec")
	mf.APIVersion = k.gvk.GroupVersion().String()
	u.SetManagedFields([]metav1.ManagedFieldsEntry{mf})
	return u
}

// loadPod is one of the webhook latency run's bare pods: no owner, Pending
// (its scheduler runs nowhere), decided sidecar by the webhook.
func (f fleet) loadPod(i int) corev1.Pod {
	name := "load-" + hash(5, fmt.Sprint(i))
	m := f.meta("scale-load", name, 0, managed("scalebench", "Update", "", "metadata.generateName", "metadata.labels.app",
		"metadata.annotations", "spec.containers.app.image", "spec.containers.app.env", "spec.containers.log-shipper.image", "spec.schedulerName"))
	m.GenerateName = "load-"
	m.Labels = map[string]string{"app": "checkout", "app.kubernetes.io/name": "checkout", "app.kubernetes.io/part-of": "shop",
		"app.kubernetes.io/version": "1.42.0", "team": "payments", "tier": "backend", "version": "v1", "load": "true",
		"sidecar.istio.io/inject": "true", meshv1alpha1.LabelDataplane: "sidecar"}
	m.Annotations = map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
		meshv1alpha1.AnnotationDecision: "sidecar", meshv1alpha1.AnnotationReason: "default mode sidecar of DataplanePolicy scale-00",
		meshv1alpha1.AnnotationPolicy: "scale-00/1"}
	c := func(name, image string) corev1.Container {
		return corev1.Container{Name: name, Image: image, TerminationMessagePath: "/dev/termination-log",
			TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent}
	}
	app := c("app", "registry.example/shop/checkout:1.42.0")
	app.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}
	app.Env = []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}}
	return corev1.Pod{ObjectMeta: m, Spec: corev1.PodSpec{
		Containers:    []corev1.Container{app, c("log-shipper", "registry.example/infra/shipper:3.1")},
		SchedulerName: "scalebench-unscheduled", TerminationGracePeriodSeconds: ptr.To[int64](0),
		RestartPolicy: corev1.RestartPolicyAlways, DNSPolicy: corev1.DNSClusterFirst, SecurityContext: &corev1.PodSecurityContext{},
		Priority: ptr.To[int32](0), EnableServiceLinks: ptr.To(true), PreemptionPolicy: ptr.To(corev1.PreemptLowerPriority),
	}, Status: corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBestEffort}}
}
