package main

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshshift/meshshift/api/v1alpha1"
)

// Pods of one namespace: web (Deployment) + api (Deployment) + db
// (StatefulSet) + batch (Job).
const (
	webReplicas = 4
	apiReplicas = 3
	dbReplicas  = 2
	jobPods     = 1
	podsPerNS   = webReplicas + apiReplicas + dbReplicas + jobPods
	// workloadsPerNS and servicesPerNS are the objects of each namespace.
	workloadsPerNS = 4
	servicesPerNS  = 2
	// podsPerNode is the kwok nodes' pod capacity (test/harness).
	podsPerNode = 110
)

// layout is the cluster the bench builds.
type layout struct {
	namespaces, meshObjects, policies, waveNamespaces int
}

func newLayout(c *config) layout {
	l := layout{
		namespaces:     c.scaled(c.namespaces, 3),
		meshObjects:    c.scaled(c.meshObjects, 13),
		policies:       max(c.policies, 1),
		waveNamespaces: c.scaled(c.waveNamespaces, 1),
	}
	// Two waves of their own and at least one namespace no wave touches.
	if l.namespaces < 2*l.waveNamespaces+1 {
		l.namespaces = 2*l.waveNamespaces + 1
	}
	return l
}

func (l layout) pods() int      { return l.namespaces * podsPerNS }
func (l layout) workloads() int { return l.namespaces * workloadsPerNS }
func (l layout) services() int  { return l.namespaces * servicesPerNS }

// nodes leaves room for rollouts' surge pods.
func (l layout) nodes() int { return (l.pods()*13/10)/podsPerNode + 2 }

// indexedObjects counts what the manager's informers hold: namespaces, pods,
// workloads (Deployments, StatefulSets, Jobs), ReplicaSets are not watched;
// Services, mesh objects, policies, kwok nodes.
func (l layout) indexedObjects() int {
	return l.namespaces + l.pods() + l.workloads() + l.services() + l.meshObjects + l.policies + l.nodes()
}

func nsName(i int) string { return fmt.Sprintf("scale-%04d", i) }

// waveA and waveB are the namespaces of the promoted and the breached wave.
func (l layout) waveA() []string { return l.names(0, l.waveNamespaces) }
func (l layout) waveB() []string { return l.names(l.waveNamespaces, 2*l.waveNamespaces) }

func (l layout) names(from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, nsName(i))
	}
	return out
}

func (l layout) inWave(i int) bool { return i < 2*l.waveNamespaces }

func namespace(i, policies int) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName(i), Labels: map[string]string{
		"istio-injection": "enabled",
		"team":            fmt.Sprintf("team-%03d", i%300),
		"policy-group":    fmt.Sprintf("g%02d", i%policies),
	}}}
}

// policy i selects the namespaces of its group; its rules are evaluated for
// every pod there (none of them matches the bench's workloads but "batch").
func policy(i int) *v1alpha1.DataplanePolicy {
	return &v1alpha1.DataplanePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("scale-%02d", i)},
		Spec: v1alpha1.DataplanePolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"policy-group": fmt.Sprintf("g%02d", i)}},
			DefaultMode:       v1alpha1.RuleMode(v1alpha1.ModeSidecar),
			Rules: []v1alpha1.Rule{
				{Name: "legacy", When: `workload.labels["tier"] == "legacy"`, Mode: "sidecar"},
				{Name: "batch", When: `workload.ownerKind == "Job"`, Mode: "none"},
				{Name: "busy", When: `traffic.available && !traffic.stale && traffic.requestRate > 1000.0`, Mode: "sidecar"},
				{Name: "grpc", When: `"grpc" in traffic.protocols`, Mode: "ambient-waypoint"},
				{Name: "envoyfilter", When: `"EnvoyFilter" in features`, Mode: "sidecar"},
			},
		},
	}
}

func services(ns string) []client.Object {
	out := make([]client.Object, 0, servicesPerNS)
	for _, app := range []string{"web", "api"} {
		out = append(out, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns},
			// Headless: the test API server's service range holds 254 addresses.
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app}, ClusterIP: corev1.ClusterIPNone,
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		})
	}
	return out
}

// template is a workload's pod template, bound to node (the scheduler on
// the shared machine would be the slowest step of creating the fleet; the
// webhook sees the pods all the same).
func template(app, node string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{
			"app": app, "app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "shop", "tier": "backend", "version": "v1",
		}},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.example/shop/" + app + ":1.0",
				Ports:     []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}},
			}},
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}
}

func selector(app string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
}

func workloads(ns, node string) []client.Object {
	surge := intstr.FromString("50%")
	rolling := appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &surge}}
	dep := func(app string, n int32) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns}, Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(n), Selector: selector(app), Template: template(app, node), Strategy: rolling}}
	}
	return []client.Object{
		dep("web", webReplicas),
		dep("api", apiReplicas),
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](dbReplicas), Selector: selector("db"), Template: template("db", node), ServiceName: "db",
			PodManagementPolicy: appsv1.ParallelPodManagement}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "batch", Namespace: ns}, Spec: batchv1.JobSpec{
			Completions: ptr.To[int32](jobPods), Parallelism: ptr.To[int32](jobPods),
			Template: func() corev1.PodTemplateSpec {
				t := template("batch", node)
				t.Spec.RestartPolicy = corev1.RestartPolicyNever
				return t
			}()}},
	}
}

// meshKind is one kind of mesh object meshshift reads and a spec its real
// CRD schema accepts, selecting one of the namespace's workloads.
type meshKind struct {
	group, version, kind string
	spec                 func(app string) map[string]any
}

func sel(app string) map[string]any { return map[string]any{"matchLabels": map[string]any{"app": app}} }

var (
	// safeKinds never block a flip to ambient: the wave namespaces get only these.
	safeKinds = []meshKind{
		{"security.istio.io", "v1", "PeerAuthentication", func(app string) map[string]any {
			return map[string]any{"selector": sel(app), "mtls": map[string]any{"mode": "STRICT"}}
		}},
		{"networking.istio.io", "v1", "DestinationRule", func(app string) map[string]any {
			return map[string]any{"host": app, "trafficPolicy": map[string]any{"tls": map[string]any{"mode": "ISTIO_MUTUAL"}}}
		}},
	}
	otherKinds = []meshKind{
		{"networking.istio.io", "v1", "VirtualService", func(app string) map[string]any {
			return map[string]any{"hosts": []any{app}, "http": []any{map[string]any{"timeout": "5s",
				"route": []any{map[string]any{"destination": map[string]any{"host": app}}}}}}
		}},
		{"security.istio.io", "v1", "AuthorizationPolicy", func(app string) map[string]any {
			return map[string]any{"selector": sel(app), "action": "ALLOW",
				"rules": []any{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"ports": []any{"8080"}}}}}}}
		}},
		{"networking.istio.io", "v1", "Sidecar", func(app string) map[string]any {
			return map[string]any{"workloadSelector": map[string]any{"labels": map[string]any{"app": app}},
				"egress": []any{map[string]any{"hosts": []any{"./*"}}}}
		}},
		{"networking.istio.io", "v1alpha3", "EnvoyFilter", func(app string) map[string]any {
			return map[string]any{"workloadSelector": map[string]any{"labels": map[string]any{"app": app}},
				"configPatches": []any{map[string]any{"applyTo": "HTTP_FILTER",
					"match": map[string]any{"context": "SIDECAR_INBOUND"},
					"patch": map[string]any{"operation": "INSERT_BEFORE", "value": map[string]any{"name": "bench.lua"}}}}}
		}},
		{"telemetry.istio.io", "v1", "Telemetry", func(app string) map[string]any {
			return map[string]any{"selector": sel(app), "accessLogging": []any{map[string]any{"providers": []any{map[string]any{"name": "envoy"}}}}}
		}},
		{"security.istio.io", "v1", "RequestAuthentication", func(app string) map[string]any {
			return map[string]any{"selector": sel(app), "jwtRules": []any{map[string]any{"issuer": "https://issuer.example", "jwksUri": "https://issuer.example/jwks"}}}
		}},
		{"extensions.istio.io", "v1alpha1", "WasmPlugin", func(app string) map[string]any {
			return map[string]any{"selector": sel(app), "url": "oci://registry.example/plugins/auth:1"}
		}},
		{"gateway.networking.k8s.io", "v1", "HTTPRoute", func(app string) map[string]any {
			return map[string]any{"parentRefs": []any{map[string]any{"group": "", "kind": "Service", "name": app}},
				"rules": []any{map[string]any{"backendRefs": []any{map[string]any{"name": app, "port": int64(80)}}}}}
		}},
		{"gateway.networking.k8s.io", "v1", "GRPCRoute", func(app string) map[string]any {
			return map[string]any{"parentRefs": []any{map[string]any{"group": "", "kind": "Service", "name": app}},
				"rules": []any{map[string]any{"backendRefs": []any{map[string]any{"name": app, "port": int64(80)}}}}}
		}},
	}
)

// meshObject is the n-th mesh object: namespaces in turn, kinds in turn
// (only safe kinds in the wave namespaces), selecting web or api.
func (l layout) meshObject(n int) *unstructured.Unstructured {
	i := n % l.namespaces
	round := n / l.namespaces
	kinds := append(append([]meshKind{}, safeKinds...), otherKinds...)
	if l.inWave(i) {
		kinds = safeKinds
	}
	k := kinds[(i+round)%len(kinds)]
	app := []string{"web", "api"}[round%2]
	u := &unstructured.Unstructured{Object: map[string]any{"spec": k.spec(app)}}
	u.SetAPIVersion(k.group + "/" + k.version)
	u.SetKind(k.kind)
	u.SetNamespace(nsName(i))
	u.SetName(fmt.Sprintf("%s-%d", app, round))
	return u
}
