package signals

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	extensionsapi "istio.io/api/extensions/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	telemetryapi "istio.io/api/telemetry/v1alpha1"
	typeapi "istio.io/api/type/v1beta1"
	extensionsv1alpha1 "istio.io/client-go/pkg/apis/extensions/v1alpha1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestScopeOfEveryKind: for each pod-selecting kind, which pods an object
// without selector and one with a selector select, in a namespace and in the
// root namespace, as istiod attaches them:
//   - AuthorizationPolicy, RequestAuthentication, EnvoyFilter, WasmPlugin,
//     TrafficExtension: looked up in the workload's namespace and the root
//     namespace, then matched by selector — a root-namespace object with a
//     selector applies in every namespace;
//   - Telemetry: selector objects only from the workload's namespace;
//   - PeerAuthentication: a root-namespace one with a selector is ignored;
//   - Sidecar: the root namespace's one without selector is the mesh
//     default; one there with a selector serves the root namespace only.
func TestScopeOfEveryKind(t *testing.T) {
	web := map[string]string{"app": "web"}
	other := map[string]string{"app": "other"}
	type kind struct {
		name string
		feat Feature
		make func(ns string, s map[string]string) any
	}
	ws := func(s map[string]string) *networkingapi.WorkloadSelector {
		if s == nil {
			return nil
		}
		return &networkingapi.WorkloadSelector{Labels: s}
	}
	kinds := []kind{
		{KindAuthorizationPolicy, FeatureL4Authz, func(ns string, s map[string]string) any {
			return &securityv1.AuthorizationPolicy{ObjectMeta: meta(ns, "o"), Spec: securityapi.AuthorizationPolicy{Selector: sel2(s)}}
		}},
		{KindRequestAuthentication, FeatureRequestAuthn, func(ns string, s map[string]string) any {
			return &securityv1.RequestAuthentication{ObjectMeta: meta(ns, "o"), Spec: securityapi.RequestAuthentication{Selector: sel2(s)}}
		}},
		{KindEnvoyFilter, FeatureEnvoyFilter, func(ns string, s map[string]string) any {
			return &networkingv1alpha3.EnvoyFilter{ObjectMeta: meta(ns, "o"), Spec: networkingapi.EnvoyFilter{WorkloadSelector: ws(s)}}
		}},
		{KindWasmPlugin, FeatureWasmPlugin, func(ns string, s map[string]string) any {
			return &extensionsv1alpha1.WasmPlugin{ObjectMeta: meta(ns, "o"), Spec: extensionsapi.WasmPlugin{Selector: sel2(s)}}
		}},
		{KindTrafficExtension, FeatureTrafficExtension, func(ns string, s map[string]string) any {
			return &extensionsv1alpha1.TrafficExtension{ObjectMeta: meta(ns, "o"), Spec: extensionsapi.TrafficExtension{Selector: sel2(s)}}
		}},
		{KindTelemetry, FeatureHTTPTelemetry, func(ns string, s map[string]string) any {
			return &telemetryv1.Telemetry{ObjectMeta: meta(ns, "o"), Spec: telemetryapi.Telemetry{Selector: sel2(s), Tracing: []*telemetryapi.Tracing{{}}}}
		}},
		{KindPeerAuthentication, FeaturePeerAuthDisable, func(ns string, s map[string]string) any {
			return &securityv1.PeerAuthentication{ObjectMeta: meta(ns, "o"), Spec: securityapi.PeerAuthentication{Selector: sel2(s),
				Mtls: &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_DISABLE}}}
		}},
		{KindSidecar, FeatureSidecarEgressLockdown, func(ns string, s map[string]string) any {
			return &networkingv1.Sidecar{ObjectMeta: meta(ns, "o"), Spec: networkingapi.Sidecar{WorkloadSelector: ws(s),
				OutboundTrafficPolicy: &networkingapi.OutboundTrafficPolicy{Mode: networkingapi.OutboundTrafficPolicy_REGISTRY_ONLY}}}
		}},
	}
	// Which pods each placement selects, per kind: shop/web, shop/other,
	// istio-system/web.
	type want struct{ shopWeb, shopOther, rootWeb bool }
	rootSelectorEverywhere := want{true, false, true}
	rootSelectorRootOnly := want{false, false, true}
	placements := []struct {
		name   string
		ns     string
		sel    map[string]string
		byKind map[string]want
		dflt   want
	}{
		{"namespace-wide", "shop", nil, nil, want{true, true, false}},
		{"namespace selector", "shop", web, nil, want{true, false, false}},
		{"mesh-wide", "istio-system", nil, nil, want{true, true, true}},
		{"root namespace selector", "istio-system", web, map[string]want{
			KindTelemetry:          rootSelectorRootOnly,
			KindSidecar:            rootSelectorRootOnly,
			KindPeerAuthentication: {false, false, false},
		}, rootSelectorEverywhere},
	}
	for _, k := range kinds {
		for _, p := range placements {
			t.Run(k.name+"/"+p.name, func(t *testing.T) {
				ix := shopIndex(t)
				ix.UpsertService("istio-system", "web", web)
				mustUpsert(t, ix, k.make(p.ns, p.sel))
				w, ok := p.byKind[k.name]
				if !ok {
					w = p.dflt
				}
				ref := Features{fr(k.feat, k.name, p.ns, "o")}
				for _, c := range []struct {
					ns   string
					pod  map[string]string
					want bool
				}{{"shop", web, w.shopWeb}, {"shop", other, w.shopOther}, {"istio-system", web, w.rootWeb}} {
					var want Features
					if c.want {
						want = ref
					}
					if diff := cmp.Diff(want, ix.FeaturesFor(c.ns, c.pod)); diff != "" {
						t.Errorf("pod %v in %s (-want +got):\n%s", c.pod, c.ns, diff)
					}
				}
			})
		}
	}
}

func sel2(s map[string]string) *typeapi.WorkloadSelector {
	if s == nil {
		return nil
	}
	return &typeapi.WorkloadSelector{MatchLabels: s}
}

// TestOneSidecarApplies: of the Sidecars that could apply, istiod uses one:
// the oldest matching selector in the namespace, else the namespace's
// default, else the root namespace's (push_context.go doGetSidecarScope).
func TestOneSidecarApplies(t *testing.T) {
	web := map[string]string{"app": "web"}
	at := func(min int) metav1.Time { return metav1.NewTime(time.Date(2026, 1, 1, 0, min, 0, 0, time.UTC)) }
	sc := func(ns, name string, created metav1.Time, s map[string]string, spec *networkingapi.Sidecar) *networkingv1.Sidecar {
		o := &networkingv1.Sidecar{ObjectMeta: meta(ns, name)}
		proto.Merge(&o.Spec, spec)
		if s != nil {
			o.Spec.WorkloadSelector = &networkingapi.WorkloadSelector{Labels: s}
		}
		o.CreationTimestamp = created
		return o
	}
	lock := &networkingapi.Sidecar{OutboundTrafficPolicy: &networkingapi.OutboundTrafficPolicy{Mode: networkingapi.OutboundTrafficPolicy_REGISTRY_ONLY}}
	open := &networkingapi.Sidecar{OutboundTrafficPolicy: &networkingapi.OutboundTrafficPolicy{Mode: networkingapi.OutboundTrafficPolicy_ALLOW_ANY}}
	hosts := &networkingapi.Sidecar{Egress: []*networkingapi.IstioEgressListener{{Hosts: []string{"./*"}}}}
	cases := []struct {
		name string
		objs []any
		want Features
	}{
		{"the mesh default applies where the namespace has none",
			[]any{sc("istio-system", "default", at(0), nil, lock)},
			Features{fr(FeatureSidecarEgressLockdown, KindSidecar, "istio-system", "default")}},
		{"the namespace's default hides the mesh's",
			[]any{sc("istio-system", "default", at(0), nil, lock), sc("shop", "default", at(1), nil, open)}, nil},
		{"a namespace Sidecar selecting other pods hides nothing",
			[]any{sc("istio-system", "default", at(0), nil, lock), sc("shop", "db", at(1), map[string]string{"app": "db"}, open)},
			Features{fr(FeatureSidecarEgressLockdown, KindSidecar, "istio-system", "default")}},
		{"a selecting Sidecar beats the namespace's default",
			[]any{sc("shop", "default", at(0), nil, lock), sc("shop", "web", at(1), web, hosts)},
			Features{fr(FeatureSidecarEgressHosts, KindSidecar, "shop", "web")}},
		{"of two selecting Sidecars the older applies",
			[]any{sc("shop", "new", at(5), web, lock), sc("shop", "old", at(1), web, hosts)},
			Features{fr(FeatureSidecarEgressHosts, KindSidecar, "shop", "old")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ix := shopIndex(t)
			mustUpsert(t, ix, tc.objs...)
			if diff := cmp.Diff(tc.want, ix.FeaturesFor("shop", web)); diff != "" {
				t.Errorf("features (-want +got):\n%s", diff)
			}
			// Deleting every Sidecar but the first brings the first back.
			for _, o := range tc.objs[1:] {
				if err := ix.Delete(o); err != nil {
					t.Fatal(err)
				}
			}
			first := tc.objs[0].(*networkingv1.Sidecar)
			want := Features(nil)
			for _, f := range sidecarFeatures(&first.Spec) {
				want = append(want, fr(f, KindSidecar, first.Namespace, first.Name))
			}
			if first.Spec.WorkloadSelector != nil && first.Spec.WorkloadSelector.Labels["app"] != "web" {
				want = nil
			}
			if diff := cmp.Diff(want, ix.FeaturesFor("shop", web)); diff != "" {
				t.Errorf("after deleting the others (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPeerAuthenticationPrecedence: mesh, namespace and workload policies
// inherit (an UNSET mode inherits the wider one; a set one overrides it), and
// port-level modes count only on a workload policy (ComposePeerAuthentication).
func TestPeerAuthenticationPrecedence(t *testing.T) {
	web := map[string]string{"app": "web"}
	mode := func(m securityapi.PeerAuthentication_MutualTLS_Mode) *securityapi.PeerAuthentication_MutualTLS {
		return &securityapi.PeerAuthentication_MutualTLS{Mode: m}
	}
	pa := func(ns, name string, s map[string]string, m securityapi.PeerAuthentication_MutualTLS_Mode, port9000 *securityapi.PeerAuthentication_MutualTLS) *securityv1.PeerAuthentication {
		o := &securityv1.PeerAuthentication{ObjectMeta: meta(ns, name), Spec: securityapi.PeerAuthentication{Selector: sel2(s), Mtls: mode(m)}}
		if port9000 != nil {
			o.Spec.PortLevelMtls = map[uint32]*securityapi.PeerAuthentication_MutualTLS{9000: port9000}
		}
		return o
	}
	const (
		unset   = securityapi.PeerAuthentication_MutualTLS_UNSET
		strict  = securityapi.PeerAuthentication_MutualTLS_STRICT
		disable = securityapi.PeerAuthentication_MutualTLS_DISABLE
	)
	cases := []struct {
		name string
		objs []any
		want Features
	}{
		{"mesh DISABLE applies", []any{pa("istio-system", "mesh", nil, disable, nil)},
			Features{fr(FeaturePeerAuthDisable, KindPeerAuthentication, "istio-system", "mesh")}},
		{"namespace STRICT overrides mesh DISABLE", []any{pa("istio-system", "mesh", nil, disable, nil), pa("shop", "ns", nil, strict, nil)},
			Features{fr(FeatureMTLS, KindPeerAuthentication, "istio-system", "mesh"), fr(FeatureMTLS, KindPeerAuthentication, "shop", "ns")}},
		{"an UNSET namespace policy inherits mesh DISABLE", []any{pa("istio-system", "mesh", nil, disable, nil), pa("shop", "ns", nil, unset, nil)},
			Features{fr(FeatureMTLS, KindPeerAuthentication, "shop", "ns"), fr(FeaturePeerAuthDisable, KindPeerAuthentication, "istio-system", "mesh")}},
		{"workload STRICT overrides namespace DISABLE", []any{pa("shop", "ns", nil, disable, nil), pa("shop", "web", web, strict, nil)},
			Features{fr(FeatureMTLS, KindPeerAuthentication, "shop", "ns"), fr(FeatureMTLS, KindPeerAuthentication, "shop", "web")}},
		{"a workload port DISABLE under namespace STRICT", []any{pa("shop", "ns", nil, strict, nil), pa("shop", "web", web, unset, mode(disable))},
			Features{fr(FeatureMTLS, KindPeerAuthentication, "shop", "ns"), fr(FeaturePeerAuthDisable, KindPeerAuthentication, "shop", "web")}},
		{"a port DISABLE on a namespace policy counts for nothing", []any{pa("shop", "ns", nil, strict, mode(disable))},
			Features{fr(FeatureMTLS, KindPeerAuthentication, "shop", "ns")}},
		{"a root-namespace policy with a selector is ignored", []any{pa("istio-system", "web", web, disable, nil)}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ix := shopIndex(t)
			mustUpsert(t, ix, tc.objs...)
			if diff := cmp.Diff(tc.want, ix.FeaturesFor("shop", web)); diff != "" {
				t.Errorf("features (-want +got):\n%s", diff)
			}
		})
	}
}
