package app

import (
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
)

// transform runs the cache's transform and fails the test on an error.
func transform[T any](t *testing.T, in any) T {
	t.Helper()
	out, err := trimObject(in)
	if err != nil {
		t.Fatalf("trimObject(%T): %v", in, err)
	}
	got, ok := out.(T)
	if !ok {
		t.Fatalf("trimObject(%T) returned %T", in, out)
	}
	return got
}

var (
	testNow     = metav1.NewTime(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	testManaged = []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate}}
)

// meta is an object's metadata as the manager keeps it; full adds what the
// cache drops (managedFields, last-applied-configuration).
func meta(name, ns string, owner string) metav1.ObjectMeta {
	m := metav1.ObjectMeta{
		Name: name, Namespace: ns, UID: types.UID("uid-" + name), ResourceVersion: "42", Generation: 3,
		CreationTimestamp: testNow,
		Labels:            map[string]string{"app": name, "meshshift.io/dataplane": "sidecar"},
		Annotations:       map[string]string{"meshshift.io/decision": "sidecar"},
	}
	if owner != "" {
		m.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: owner, Name: name + "-owner", UID: "owner", Controller: ptr.To(true)}}
	}
	return m
}

func full(m metav1.ObjectMeta) metav1.ObjectMeta {
	out := *m.DeepCopy()
	out.ManagedFields = testManaged
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[lastApplied] = `{"apiVersion":"v1","kind":"Whatever","metadata":{"name":"` + m.Name + `"}}`
	return out
}

// fullContainer is a container with everything the cache drops.
func fullContainer(name string) corev1.Container {
	return corev1.Container{Name: name, Image: "shop/" + name + ":1", Env: []corev1.EnvVar{{Name: "A", Value: "b"}},
		Ports:        []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		Resources:    corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}},
		VolumeMounts: []corev1.VolumeMount{{Name: "token", MountPath: "/var/run/token"}}}
}

func TestTrimPodKeepsWhatTheManagerReads(t *testing.T) {
	m := meta("web-1", "shop", "ReplicaSet")
	m.DeletionTimestamp = &testNow
	in := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: full(m),
		Spec: corev1.PodSpec{
			NodeName: "node-1", ServiceAccountName: "default",
			InitContainers: []corev1.Container{fullContainer("istio-init")},
			Containers:     []corev1.Container{fullContainer("app"), fullContainer("istio-proxy")},
			Volumes:        []corev1.Volume{{Name: "token"}},
			Tolerations:    []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.244.0.5", PodIPs: []corev1.PodIP{{IP: "10.244.0.5"}, {IP: "fd00::5"}},
			HostIP: "10.0.0.1", HostIPs: []corev1.HostIP{{IP: "10.0.0.1"}}, StartTime: &testNow,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: testNow}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true}},
		},
	}
	whole := in.DeepCopy()
	got := transform[*corev1.Pod](t, in)
	want := &corev1.Pod{
		TypeMeta:   in.TypeMeta,
		ObjectMeta: m,
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.5", PodIPs: whole.Status.PodIPs},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trimmed pod (-want +got):\n%s", diff)
	}
	if again := transform[*corev1.Pod](t, got.DeepCopy()); !cmp.Equal(again, got) {
		t.Errorf("trimming a trimmed pod changed it:\n%s", cmp.Diff(got, again))
	}

	// The migrator's podOnSidecar finds istio-proxy, as a container or as a
	// native sidecar (an init container), in the trimmed pod as in the whole.
	for _, c := range []struct {
		name       string
		init, main []string
		want       bool
	}{
		{"sidecar", []string{"istio-init"}, []string{"app", "istio-proxy"}, true},
		{"native sidecar", []string{"istio-init", "istio-proxy"}, []string{"app"}, true},
		{"no sidecar", []string{"init"}, []string{"app", "logger"}, false},
		{"no containers", nil, nil, false},
	} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-2"}}
		for _, n := range c.init {
			p.Spec.InitContainers = append(p.Spec.InitContainers, fullContainer(n))
		}
		for _, n := range c.main {
			p.Spec.Containers = append(p.Spec.Containers, fullContainer(n))
		}
		if whole, trimmed := hasProxy(p), hasProxy(transform[*corev1.Pod](t, p.DeepCopy())); whole != c.want || trimmed != c.want {
			t.Errorf("%s: istio-proxy found %v in the whole pod, %v in the trimmed one; want %v", c.name, whole, trimmed, c.want)
		}
	}

	// The callers' address index reads the trimmed pod as it reads the whole
	// one; a host-network pod holds no address either way.
	for _, hostNetwork := range []bool{false, true} {
		w, tr := whole.DeepCopy(), got.DeepCopy()
		w.Spec.HostNetwork, tr.Spec.HostNetwork = hostNetwork, hostNetwork
		w.DeletionTimestamp, tr.DeletionTimestamp = nil, nil
		resolve := func(p *corev1.Pod) []any {
			ix := signals.NewPodIPs()
			ix.Upsert(p)
			k4, ok4 := ix.Resolve("10.244.0.5")
			k6, ok6 := ix.Resolve("fd00::5")
			return []any{k4, ok4, k6, ok6}
		}
		want, got := resolve(w), resolve(tr)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("hostNetwork %v: PodIPs resolves the trimmed pod differently (-whole +trimmed):\n%s", hostNetwork, diff)
		}
		if ok := want[1].(bool); ok == hostNetwork {
			t.Errorf("hostNetwork %v: PodIPs resolved %v; the check compares nothing", hostNetwork, want)
		}
	}
}

// hasProxy is the container check of the migrator's podOnSidecar.
func hasProxy(p *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			if c.Name == "istio-proxy" {
				return true
			}
		}
	}
	return false
}

// template is a pod template with everything the cache drops; shape picks
// what the decision depends on.
func template(shape string) corev1.PodTemplateSpec {
	t := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-05-01T12:00:00Z"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "web", Containers: []corev1.Container{fullContainer("app")},
			InitContainers: []corev1.Container{fullContainer("init")}, Volumes: []corev1.Volume{{Name: "token"}},
			Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}},
			Affinity: &corev1.Affinity{
				NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
					{Weight: 1, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}}}}},
				PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
					{Weight: 1, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "kubernetes.io/hostname"}}}},
			},
		},
	}
	switch shape {
	case "windows":
		t.Spec.NodeSelector = map[string]string{signals.LabelNodeOS: "windows"}
	case "gpu":
		t.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "pool", Operator: corev1.NodeSelectorOpIn, Values: []string{"gpu"}}}}}}
	case "host":
		t.Spec.HostNetwork = true
	case "optout":
		t.Labels["istio.io/dataplane-mode"] = "none"
	case "annotated":
		t.Annotations[meshv1alpha1.AnnotationMode] = string(meshv1alpha1.ModeSidecar)
	}
	return t
}

// trimmedTemplate is template(shape) as the cache keeps it.
func trimmedTemplate(shape string) corev1.PodTemplateSpec {
	f := template(shape)
	out := corev1.PodTemplateSpec{ObjectMeta: f.ObjectMeta, Spec: corev1.PodSpec{HostNetwork: f.Spec.HostNetwork, NodeSelector: f.Spec.NodeSelector}}
	if r := f.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
		out.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: r}}
	}
	return out
}

var shapes = []string{"plain", "windows", "gpu", "host", "optout", "annotated"}

func TestTrimWorkloadsKeepWhatTheMigratorReads(t *testing.T) {
	m := meta("web", "shop", "")
	m.Labels["gateway.networking.k8s.io/gateway-name"] = "waypoint"
	jobMeta := meta("nightly-29", "shop", "CronJob")
	surge := intstr.FromString("25%")
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	depStatus := appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded"},
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}}
	stsStrategy := appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](1)}}
	stsStatus := appsv1.StatefulSetStatus{ObservedGeneration: 3, Replicas: 3, UpdatedReplicas: 2, ReadyReplicas: 3}
	dsStrategy := appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	dsStatus := appsv1.DaemonSetStatus{ObservedGeneration: 3, DesiredNumberScheduled: 4, UpdatedNumberScheduled: 4, NumberAvailable: 3, NumberReady: 3}

	for _, shape := range shapes {
		tmpl, want := template(shape), trimmedTemplate(shape)
		cases := []struct {
			name     string
			in, want any
		}{
			{"Deployment",
				&appsv1.Deployment{ObjectMeta: full(m), Status: depStatus, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Paused: true, Selector: sel, Template: tmpl,
					MinReadySeconds: 5, ProgressDeadlineSeconds: ptr.To[int32](600), RevisionHistoryLimit: ptr.To[int32](10),
					Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge}}}},
				&appsv1.Deployment{ObjectMeta: m, Status: depStatus, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Paused: true, Selector: sel, Template: want}}},
			{"StatefulSet",
				&appsv1.StatefulSet{ObjectMeta: full(m), Status: stsStatus, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3), Selector: sel, Template: tmpl,
					UpdateStrategy: stsStrategy, ServiceName: "web", PodManagementPolicy: appsv1.ParallelPodManagement,
					VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}}}},
				&appsv1.StatefulSet{ObjectMeta: m, Status: stsStatus, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3), Selector: sel, Template: want, UpdateStrategy: stsStrategy}}},
			{"DaemonSet",
				&appsv1.DaemonSet{ObjectMeta: full(m), Status: dsStatus, Spec: appsv1.DaemonSetSpec{Selector: sel, Template: tmpl, UpdateStrategy: dsStrategy, MinReadySeconds: 5}},
				&appsv1.DaemonSet{ObjectMeta: m, Status: dsStatus, Spec: appsv1.DaemonSetSpec{Selector: sel, Template: want, UpdateStrategy: dsStrategy}}},
			{"ReplicationController",
				&corev1.ReplicationController{ObjectMeta: full(m), Status: corev1.ReplicationControllerStatus{Replicas: 2, ReadyReplicas: 2},
					Spec: corev1.ReplicationControllerSpec{Replicas: ptr.To[int32](0), Selector: map[string]string{"app": "web"}, Template: &tmpl, MinReadySeconds: 5}},
				&corev1.ReplicationController{ObjectMeta: m, Spec: corev1.ReplicationControllerSpec{Replicas: ptr.To[int32](0), Selector: map[string]string{"app": "web"}, Template: &want}}},
			{"Job",
				&batchv1.Job{ObjectMeta: full(jobMeta), Status: batchv1.JobStatus{Active: 1, StartTime: &testNow},
					Spec: batchv1.JobSpec{Selector: sel, Template: tmpl, Parallelism: ptr.To[int32](2), BackoffLimit: ptr.To[int32](6)}},
				&batchv1.Job{ObjectMeta: jobMeta, Spec: batchv1.JobSpec{Selector: sel, Template: want}}},
			{"CronJob",
				&batchv1.CronJob{ObjectMeta: full(m), Status: batchv1.CronJobStatus{Active: []corev1.ObjectReference{{Name: "nightly-29"}}},
					Spec: batchv1.CronJobSpec{Schedule: "@daily", Suspend: ptr.To(false),
						JobTemplate: batchv1.JobTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"team": "shop"}},
							Spec: batchv1.JobSpec{Template: tmpl, BackoffLimit: ptr.To[int32](6)}}}},
				&batchv1.CronJob{ObjectMeta: m, Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"team": "shop"}}, Spec: batchv1.JobSpec{Template: want}}}}},
		}
		for _, c := range cases {
			whole := c.in.(runtime.Object).DeepCopyObject()
			got := transform[any](t, c.in)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("%s %s: trimmed (-want +got):\n%s", shape, c.name, diff)
			}
			// Every field the migrator, the webhook and signals read of this
			// kind reads the same on the trimmed object.
			if diff := cmp.Diff(workloadReads(whole), workloadReads(got)); diff != "" {
				t.Errorf("%s %s: the readers see the trimmed object differently (-whole +trimmed):\n%s", shape, c.name, diff)
			}
			if diff := cmp.Diff(migratorDecision(t, whole), migratorDecision(t, got)); diff != "" {
				t.Errorf("%s %s: the migrator decides the trimmed workload differently (-whole +trimmed):\n%s", shape, c.name, diff)
			}
		}
	}
}

// workloadReads is every field of a workload that a reader of the manager's
// caches uses, by reader:
//   - migrator listWorkloads / listOtherWorkloads: name, labels (a gateway's
//     own Deployment), a Job's controller, the template (RC: may be nil);
//   - migrator decideWith and callerMode: the template's labels, annotations,
//     hostNetwork and node requirement;
//   - migrator cannotRestart: Deployment paused, StatefulSet and DaemonSet
//     update strategy type, RC replicas;
//   - migrator restartNamespace / namespaceReady: the template's restartedAt
//     annotation and hostNetwork; rolledOut: generation, replicas, the
//     StatefulSet's partition and the statuses;
//   - migrator waypointProgrammed: Deployment status conditions and replicas;
//   - signals.Index: the template's labels; DetectCapabilities: DaemonSet
//     name, namespace, numberReady and the template's node requirement,
//     Deployment name and namespace.
func workloadReads(obj any) map[string]any {
	out := map[string]any{}
	tmpl := func(t *corev1.PodTemplateSpec) {
		if t == nil {
			out["template"] = nil
			return
		}
		out["template.labels"] = t.Labels
		out["template.annotations"] = t.Annotations
		out["template.hostNetwork"] = t.Spec.HostNetwork
		out["template.nodes"] = signals.NodeRequirementOf(&t.Spec)
	}
	if o, ok := obj.(metav1.Object); ok {
		out["name"], out["namespace"], out["labels"], out["generation"] = o.GetName(), o.GetNamespace(), o.GetLabels(), o.GetGeneration()
		out["controller"] = metav1.GetControllerOf(o)
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		tmpl(&o.Spec.Template)
		out["replicas"], out["paused"], out["status"] = o.Spec.Replicas, o.Spec.Paused, o.Status
	case *appsv1.StatefulSet:
		tmpl(&o.Spec.Template)
		out["replicas"], out["updateStrategy"], out["status"] = o.Spec.Replicas, o.Spec.UpdateStrategy, o.Status
	case *appsv1.DaemonSet:
		tmpl(&o.Spec.Template)
		out["updateStrategy"], out["status"] = o.Spec.UpdateStrategy.Type, o.Status
	case *corev1.ReplicationController:
		tmpl(o.Spec.Template)
		out["replicas"] = o.Spec.Replicas
	case *batchv1.Job:
		tmpl(&o.Spec.Template)
	case *batchv1.CronJob:
		tmpl(&o.Spec.JobTemplate.Spec.Template)
	default:
		panic("workloadReads: not a workload")
	}
	return out
}

// migratorDecision is policies.Decide over a workload's template, with the
// input the migrator's precheck builds (decideWith), in a namespace a wave
// flips to ambient on a cluster where ztunnel serves only the general pool.
func migratorDecision(t *testing.T, obj any) policies.Decision {
	t.Helper()
	var tmpl *corev1.PodTemplateSpec
	switch o := obj.(type) {
	case *appsv1.Deployment:
		tmpl = &o.Spec.Template
	case *appsv1.StatefulSet:
		tmpl = &o.Spec.Template
	case *appsv1.DaemonSet:
		tmpl = &o.Spec.Template
	case *corev1.ReplicationController:
		tmpl = o.Spec.Template
	case *batchv1.Job:
		tmpl = &o.Spec.Template
	case *batchv1.CronJob:
		tmpl = &o.Spec.JobTemplate.Spec.Template
	}
	name := obj.(metav1.Object).GetName()
	caps := signals.Capabilities{Ztunnel: true, NodesKnown: true, ZtunnelNodes: []map[string]string{{"pool": "general", signals.LabelNodeOS: "linux"}}}
	ix := signals.NewIndex("")
	in := policies.Input{
		Workload: policies.Workload{Name: name, Namespace: "shop", Labels: tmpl.Labels, Annotations: tmpl.Annotations,
			HostNetwork: tmpl.Spec.HostNetwork, OwnerKind: "Deployment", OwnerName: name, Workload: name, Nodes: signals.NodeRequirementOf(&tmpl.Spec)},
		Namespace:    policies.Namespace{Name: "shop", Annotations: map[string]string{meshv1alpha1.AnnotationMode: string(meshv1alpha1.ModeAmbient)}},
		Capabilities: caps,
		Features:     signals.AppendAnnotationFeatures(ix.FeaturesFor("shop", tmpl.Labels), tmpl.Annotations),
	}
	return policies.Decide(in)
}

// TestMigratorDecisionSeesTheTemplate: the shapes of template decide
// differently, so the comparison above would catch a dropped field.
func TestMigratorDecisionSeesTheTemplate(t *testing.T) {
	seen := map[string]string{}
	for _, shape := range shapes {
		tmpl := trimmedTemplate(shape)
		d := migratorDecision(t, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{Template: tmpl}})
		key := string(d.Mode) + "/" + d.Rule
		if other, ok := seen[key]; ok {
			t.Errorf("shapes %s and %s both decide %s: the template's fields do not matter to the check", other, shape, key)
		}
		seen[key] = shape
	}
}

func TestTrimMetaKeepsLastAppliedOnlyWhereTheMigratorUpdates(t *testing.T) {
	m := meta("shop", "", "")
	ns := transform[*corev1.Namespace](t, &corev1.Namespace{ObjectMeta: full(m)})
	if ns.ManagedFields != nil {
		t.Errorf("namespace kept its managedFields")
	}
	if _, ok := ns.Annotations[lastApplied]; !ok {
		t.Errorf("namespace lost %s: the migrator Updates namespaces from the cache, which would remove it from the cluster", lastApplied)
	}

	svc := &corev1.Service{ObjectMeta: full(meta("web", "shop", "")), Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
		Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	want := &corev1.Service{ObjectMeta: meta("web", "shop", ""), Spec: *svc.Spec.DeepCopy()}
	if diff := cmp.Diff(want, transform[*corev1.Service](t, svc)); diff != "" {
		t.Errorf("trimmed service (-want +got):\n%s", diff)
	}

	// Only the annotation kubectl apply writes: an object with no other
	// annotation has none left.
	only := metav1.ObjectMeta{Name: "web-abc", Namespace: "shop", Annotations: map[string]string{lastApplied: "{}"}, ManagedFields: testManaged}
	pm := transform[*metav1.PartialObjectMetadata](t, &metav1.PartialObjectMetadata{ObjectMeta: only})
	if diff := cmp.Diff(metav1.ObjectMeta{Name: "web-abc", Namespace: "shop"}, pm.ObjectMeta); diff != "" {
		t.Errorf("trimmed metadata-only object (-want +got):\n%s", diff)
	}
}

func TestTrimNodeKeepsWhatCapabilityDetectionReads(t *testing.T) {
	labels := func(pool string) map[string]string {
		return map[string]string{"pool": pool, signals.LabelNodeOS: "linux", signals.LabelNodeKernel: "6.12.48", signals.LabelNodeEBPFLevel: "full"}
	}
	var whole, trimmed []corev1.Node
	for _, pool := range []string{"general", "gpu"} {
		m := metav1.ObjectMeta{Name: "node-" + pool, Labels: labels(pool)}
		n := corev1.Node{ObjectMeta: full(m), Spec: corev1.NodeSpec{PodCIDR: "10.244.0.0/24", Taints: []corev1.Taint{{Key: "dedicated", Effect: corev1.TaintEffectNoSchedule}}},
			Status: corev1.NodeStatus{Images: []corev1.ContainerImage{{Names: []string{"istio/proxyv2:1.30"}, SizeBytes: 1 << 27}},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}, Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}}}}
		whole = append(whole, *n.DeepCopy())
		got := transform[*corev1.Node](t, &n)
		if diff := cmp.Diff(&corev1.Node{ObjectMeta: m}, got); diff != "" {
			t.Errorf("trimmed node (-want +got):\n%s", diff)
		}
		trimmed = append(trimmed, *got)
	}
	// ztunnel's DaemonSet runs on the general pool only.
	ds := appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "ztunnel", Namespace: "istio-system"}, Status: appsv1.DaemonSetStatus{NumberReady: 1},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{NodeSelector: map[string]string{"pool": "general"},
			Containers: []corev1.Container{fullContainer("istio-proxy")}}}}}
	dep := appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: "istio-mesh"}, Spec: appsv1.DeploymentSpec{Template: template("plain")}}
	wantCaps, err := signals.DetectCapabilities([]appsv1.DaemonSet{ds}, []appsv1.Deployment{dep}, whole, false)
	if err != nil {
		t.Fatal(err)
	}
	tds := transform[*appsv1.DaemonSet](t, ds.DeepCopy())
	tdep := transform[*appsv1.Deployment](t, dep.DeepCopy())
	gotCaps, err := signals.DetectCapabilities([]appsv1.DaemonSet{*tds}, []appsv1.Deployment{*tdep}, trimmed, false)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantCaps, gotCaps); diff != "" {
		t.Errorf("capabilities detected from the trimmed objects (-whole +trimmed):\n%s", diff)
	}
	if !wantCaps.Ztunnel || len(wantCaps.ZtunnelNodes) != 1 || !wantCaps.Nodes.Known || len(wantCaps.MeshNamespaces) != 2 {
		t.Errorf("capabilities %+v: want ztunnel on one node, known node capabilities, two mesh namespaces (the check compares nothing otherwise)", wantCaps)
	}
}

// meshObject is an unstructured mesh object with status and the fields the
// cache drops.
func meshObject(apiVersion, kind, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec,
		"status": map[string]any{"validationMessages": []any{map[string]any{"type": map[string]any{"code": "IST0101"}}}}}}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace("shop")
	u.SetName(name)
	u.SetLabels(map[string]string{"team": "shop"})
	u.SetAnnotations(map[string]string{lastApplied: "{}", "note": "kept"})
	u.SetManagedFields(testManaged)
	return u
}

func TestTrimMeshObjectsKeepsWhatTheIndexAndTheMigratorRead(t *testing.T) {
	sel := map[string]any{"matchLabels": map[string]any{"app": "web"}}
	objs := []*unstructured.Unstructured{
		meshObject("security.istio.io/v1", "AuthorizationPolicy", "l7", map[string]any{"selector": sel, "action": "ALLOW",
			"rules": []any{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"methods": []any{"GET"}}}}}}}),
		meshObject("security.istio.io/v1", "RequestAuthentication", "jwt", map[string]any{"selector": sel,
			"jwtRules": []any{map[string]any{"issuer": "https://issuer.example"}}}),
		meshObject("networking.istio.io/v1", "VirtualService", "web", map[string]any{"hosts": []any{"web"},
			"http": []any{map[string]any{"retries": map[string]any{"attempts": int64(3)}, "route": []any{map[string]any{"destination": map[string]any{"host": "web"}}}}}}),
		meshObject("networking.istio.io/v1alpha3", "EnvoyFilter", "lua", map[string]any{"workloadSelector": map[string]any{"labels": map[string]any{"app": "web"}},
			"configPatches": []any{map[string]any{"applyTo": "HTTP_FILTER"}}}),
		meshObject("gateway.networking.k8s.io/v1", "HTTPRoute", "web", map[string]any{
			"parentRefs": []any{map[string]any{"group": "", "kind": "Service", "name": "web"}},
			"rules":      []any{map[string]any{"backendRefs": []any{map[string]any{"name": "web", "port": int64(80)}}}}}),
	}
	rollout := meshObject("argoproj.io/v1alpha1", "Rollout", "web", map[string]any{"restartAt": "2026-05-01T12:00:00Z"})
	rollout.Object["status"] = map[string]any{"phase": "Healthy", "restartedAt": "2026-05-01T12:00:00Z"}

	svc := &corev1.Service{ObjectMeta: full(meta("web", "shop", "")), Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}}}
	dep := &appsv1.Deployment{ObjectMeta: full(meta("web", "shop", "")), Spec: appsv1.DeploymentSpec{Template: template("plain")}}
	whole, trimmed := signals.NewIndex(""), signals.NewIndex("")
	for _, o := range []any{svc, dep} {
		if err := whole.Upsert(o.(runtime.Object).DeepCopyObject()); err != nil {
			t.Fatal(err)
		}
		if err := trimmed.Upsert(transform[any](t, o.(runtime.Object).DeepCopyObject())); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range objs {
		w := u.DeepCopy()
		got := transform[*unstructured.Unstructured](t, u)
		if _, ok := got.Object["status"]; ok {
			t.Errorf("%s kept its status", got.GetKind())
		}
		if got.GetManagedFields() != nil {
			t.Errorf("%s kept its managedFields", got.GetKind())
		}
		moved := got.GetKind() == "AuthorizationPolicy" || got.GetKind() == "RequestAuthentication"
		if _, ok := got.GetAnnotations()[lastApplied]; ok != moved {
			t.Errorf("%s: %s kept %v, want %v (only the policies the migrator Updates keep it)", got.GetKind(), lastApplied, ok, moved)
		}
		// Everything else is as it was: metadata and the whole spec.
		w2 := w.DeepCopy()
		delete(w2.Object, "status")
		w2.SetManagedFields(nil)
		a := w2.GetAnnotations()
		if !moved {
			delete(a, lastApplied)
		}
		w2.SetAnnotations(a)
		if diff := cmp.Diff(w2.Object, got.Object); diff != "" {
			t.Errorf("trimmed %s (-want +got):\n%s", got.GetKind(), diff)
		}
		if err := whole.Upsert(w); err != nil {
			t.Fatalf("index %s: %v", w.GetKind(), err)
		}
		if err := trimmed.Upsert(got); err != nil {
			t.Fatalf("index trimmed %s: %v", got.GetKind(), err)
		}
	}
	pod := map[string]string{"app": "web"}
	want, got := whole.FeaturesFor("shop", pod), trimmed.FeaturesFor("shop", pod)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("features of the trimmed objects (-whole +trimmed):\n%s", diff)
	}
	if len(want) < len(objs) {
		t.Errorf("features %v: want one per object at least (the check compares nothing otherwise)", want)
	}

	// An Argo Rollout keeps its status: the migrator reads it.
	got2 := transform[*unstructured.Unstructured](t, rollout)
	if phase, _, _ := unstructured.NestedString(got2.Object, "status", "phase"); phase != "Healthy" {
		t.Errorf("rollout status %v: want it kept", got2.Object["status"])
	}
	if _, ok := got2.GetAnnotations()[lastApplied]; ok {
		t.Errorf("rollout kept %s (the migrator patches rollouts, it never updates them)", lastApplied)
	}
}

func TestTrimSharesRepeatedStrings(t *testing.T) {
	// Two pods decoded apart (no string shared), as an informer gets them.
	// strings.Clone: a copy of its own, as the decoder makes.
	pod := func(name string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: strings.Clone("shop"),
			Labels:          map[string]string{strings.Clone("app"): strings.Clone("web")},
			Annotations:     map[string]string{strings.Clone("meshshift.io/reason"): strings.Clone("policy default: ambient")},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: strings.Clone("apps/v1"), Kind: strings.Clone("ReplicaSet"), Name: "web-7d9f"}}}}
		return p
	}
	a, b := transform[*corev1.Pod](t, pod("web-1")), transform[*corev1.Pod](t, pod("web-2"))
	same := func(x, y string) bool { return unsafe.StringData(x) == unsafe.StringData(y) }
	for what, pair := range map[string][2]string{
		"namespace":        {a.Namespace, b.Namespace},
		"label value":      {a.Labels["app"], b.Labels["app"]},
		"annotation value": {a.Annotations["meshshift.io/reason"], b.Annotations["meshshift.io/reason"]},
		"owner kind":       {a.OwnerReferences[0].Kind, b.OwnerReferences[0].Kind},
	} {
		if !same(pair[0], pair[1]) {
			t.Errorf("%s %q: two copies, want one shared", what, pair[0])
		}
	}
	for k := range a.Labels {
		for k2 := range b.Labels {
			if !same(k, k2) {
				t.Errorf("label key %q: two copies, want one shared", k)
			}
		}
	}
	if a.Name == b.Name || a.Annotations["meshshift.io/reason"] != "policy default: ambient" {
		t.Errorf("pods %s and %s: names and values must stay each pod's own", a.Name, b.Name)
	}
}
