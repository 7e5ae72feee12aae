package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/migrator/l7policy"
	"github.com/meshshift/meshshift/test/harness"
)

var (
	authzGVK = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"}
	authnGVK = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "RequestAuthentication"}
)

// jwks is Istio's sample JWKS (security/tools/jwt/samples/jwks.json), inline
// so istiod never fetches anything.
const jwks = `{ "keys":[ {"e":"AQAB","kid":"DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ","kty":"RSA","n":"xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ"}]}`

// l7Policies are the originals of a test namespace: a selector-based L7
// ALLOW AuthorizationPolicy and a JWT RequestAuthentication, both selecting
// the app's pods.
func l7Policies(ns string) []*unstructured.Unstructured {
	sel := map[string]any{"matchLabels": map[string]any{"app": app}}
	ap := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"selector": sel, "action": "ALLOW",
			"rules": []any{map[string]any{
				"from": []any{map[string]any{"source": map[string]any{"principals": []any{"cluster.local/ns/front/sa/client"}}}},
				"to":   []any{map[string]any{"operation": map[string]any{"methods": []any{"GET"}, "paths": []any{"/api/*"}}}},
			}},
		},
	}}
	ap.SetGroupVersionKind(authzGVK)
	ap.SetNamespace(ns)
	ap.SetName("web-allow")
	ra := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"selector": sel,
			"jwtRules": []any{map[string]any{"issuer": "testing@secure.istio.io", "jwks": jwks}},
		},
	}}
	ra.SetGroupVersionKind(authnGVK)
	ra.SetNamespace(ns)
	ra.SetName("web-jwt")
	return []*unstructured.Unstructured{ap, ra}
}

// listPolicies lists a namespace's AuthorizationPolicies and RequestAuthentications.
func (e *env) listPolicies(ctx context.Context, ns string) ([]unstructured.Unstructured, error) {
	var out []unstructured.Unstructured
	for _, gvk := range []schema.GroupVersionKind{authzGVK, authnGVK} {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := e.cl.List(ctx, l, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		out = append(out, l.Items...)
	}
	return out, nil
}

// specJSON is the JSON of an object's spec, as the API server stores it.
func specJSON(u *unstructured.Unstructured) string {
	b, _ := json.Marshal(u.Object["spec"])
	return string(b)
}

// protectionState is what the invariant is checked on.
type protectionState struct {
	pods     []corev1.Pod
	policies []unstructured.Unstructured
	services []corev1.Service
	gateways map[string]bool // waypoint name -> programmed
}

func (e *env) readProtection(ctx context.Context, ns string) (*protectionState, error) {
	st := &protectionState{gateways: map[string]bool{}}
	var pods corev1.PodList
	if err := e.cl.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": app}); err != nil {
		return nil, err
	}
	st.pods = pods.Items
	var err error
	if st.policies, err = e.listPolicies(ctx, ns); err != nil {
		return nil, err
	}
	var svcs corev1.ServiceList
	if err := e.cl.List(ctx, &svcs, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	st.services = svcs.Items
	var gws gatewayv1.GatewayList
	if err := e.cl.List(ctx, &gws, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	for _, g := range gws.Items {
		st.gateways[g.Name] = meta.IsStatusConditionTrue(g.Status.Conditions, string(gatewayv1.GatewayConditionProgrammed))
	}
	return st, nil
}

// podAmbient says whether a pod runs without a sidecar in ambient mode by
// the mesh's labels (what ztunnel and the injector read).
func podAmbient(p *corev1.Pod) bool {
	return p.Labels["istio.io/dataplane-mode"] == "ambient" && p.Labels["sidecar.istio.io/inject"] == "false"
}

func selectorSelects(u *unstructured.Unstructured, l map[string]string) (bool, bool) {
	ml, found, _ := unstructured.NestedStringMap(u.Object, "spec", "selector", "matchLabels")
	if !found {
		return false, false
	}
	return labels.SelectorFromSet(ml).Matches(labels.Set(l)), true
}

func targetServices(u *unstructured.Unstructured) []string {
	refs, _, _ := unstructured.NestedSlice(u.Object, "spec", "targetRefs")
	var out []string
	for _, r := range refs {
		m, _ := r.(map[string]any)
		if m["kind"] == "Service" {
			out = append(out, fmt.Sprint(m["name"]))
		}
	}
	return out
}

// protectionViolations checks the invariant for the originals named
// in origs ("Kind/name"): each pod is selected either by the (narrowed)
// original — a pod on its sidecar — or by a targetRefs copy of it on a
// Service that selects the pod and uses a programmed waypoint — an ambient
// pod; never by a selector-based L7 policy while ambient (ztunnel would
// enforce it); never by neither. And no targetRefs policy exists without a
// programmed waypoint, and no original is half-narrowed.
func protectionViolations(st *protectionState, origs []string) []string {
	var out []string
	byKey := map[string]*unstructured.Unstructured{}
	var copies []*unstructured.Unstructured
	for i := range st.policies {
		u := &st.policies[i]
		if u.GetLabels()[l7policy.LabelMigration] != "" {
			copies = append(copies, u)
			if len(targetServices(u)) > 0 && !anyProgrammed(st.gateways) {
				out = append(out, fmt.Sprintf("%s %s has targetRefs but no waypoint is programmed (%v)", u.GetKind(), u.GetName(), st.gateways))
			}
			continue
		}
		byKey[u.GetKind()+"/"+u.GetName()] = u
		narrowed := l7policy.IsNarrowed(u)
		ml, _, _ := unstructured.NestedStringMap(u.Object, "spec", "selector", "matchLabels")
		if narrowed != (ml[meshv1alpha1.LabelDataplane] == "sidecar") {
			out = append(out, fmt.Sprintf("%s %s half-narrowed: annotation %v, selector %v", u.GetKind(), u.GetName(), narrowed, ml))
		}
	}
	svcByName := map[string]*corev1.Service{}
	for i := range st.services {
		svcByName[st.services[i].Name] = &st.services[i]
	}
	for i := range st.pods {
		p := &st.pods[i]
		ambient := podAmbient(p)
		for _, key := range origs {
			orig := byKey[key]
			bySelector := false
			if orig != nil {
				bySelector, _ = selectorSelects(orig, p.Labels)
			}
			byWaypoint := false
			for _, c := range copies {
				if c.GetAnnotations()[l7policy.AnnotationSource] != strings.Replace(key, "/", "/"+p.Namespace+"/", 1) {
					continue
				}
				for _, s := range targetServices(c) {
					svc := svcByName[s]
					if svc == nil || len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(p.Labels)) {
						continue
					}
					if wp := svc.Labels["istio.io/use-waypoint"]; wp != "" && st.gateways[wp] {
						byWaypoint = true
					}
				}
			}
			switch {
			case ambient && bySelector:
				out = append(out, fmt.Sprintf("ambient pod %s is selected by %s: ztunnel would enforce it", p.Name, key))
			case ambient && !byWaypoint:
				out = append(out, fmt.Sprintf("ambient pod %s: no targetRefs copy of %s on a Service using a programmed waypoint", p.Name, key))
			case !ambient && !bySelector:
				out = append(out, fmt.Sprintf("sidecar pod %s (labels %v) is not selected by %s", p.Name, p.Labels, key))
			}
		}
	}
	sort.Strings(out)
	return out
}

func anyProgrammed(gws map[string]bool) bool {
	for _, ok := range gws {
		if ok {
			return true
		}
	}
	return false
}

// istioctlAnalyze runs Istio's analyzers (harness.Cluster.Analyze: istioctl
// built from the pinned istio module, all namespaces) and returns the
// messages of level Error; with -v the others of ns are logged.
func istioctlAnalyze(t *testing.T, c *harness.Cluster, ns string) ([]string, error) {
	t.Helper()
	msgs, _, err := c.Analyze(context.Background())
	if err != nil {
		return nil, err
	}
	var errs []string
	for _, m := range msgs {
		if m.Level == "Error" {
			errs = append(errs, m.String())
		} else if testing.Verbose() && strings.Contains(m.Origin, " "+ns+"/") {
			t.Logf("istioctl analyze: %s", m)
		}
	}
	return errs, nil
}
