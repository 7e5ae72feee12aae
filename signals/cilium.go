package signals

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// ciliumNamespaceLabel is the pseudo-label Cilium uses for a pod's namespace.
const ciliumNamespaceLabel = "io.kubernetes.pod.namespace"

// ciliumEntry classifies a Cilium object read as unstructured:
// CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy with L7 rules select pods
// by endpointSelector; CiliumEnvoyConfig / CiliumClusterwideEnvoyConfig select
// the pods of the Services they list. Objects without L7 give no feature.
func (ix *Index) ciliumEntry(u *unstructured.Unstructured) (ObjectKey, *entry, error) {
	k := ObjectKey{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
	switch k.Kind {
	case KindCiliumNetworkPolicy, KindCiliumClusterwideNP:
		e, err := ciliumPolicyEntry(k, u.Object)
		return k, e, err
	case KindCiliumEnvoyConfig, KindCiliumClusterwideEC:
		e, err := ciliumEnvoyConfigEntry(k, u.Object)
		return k, e, err
	}
	return k, nil, fmt.Errorf("index: unsupported Cilium kind %s", k.Kind)
}

type ciliumRule struct {
	EndpointSelector *metav1.LabelSelector `json:"endpointSelector,omitempty"`
	Ingress          []ciliumRuleDirection `json:"ingress,omitempty"`
	IngressDeny      []ciliumRuleDirection `json:"ingressDeny,omitempty"`
	Egress           []ciliumRuleDirection `json:"egress,omitempty"`
	EgressDeny       []ciliumRuleDirection `json:"egressDeny,omitempty"`
}

type ciliumRuleDirection struct {
	ToPorts []struct {
		Rules map[string]any `json:"rules,omitempty"`
	} `json:"toPorts,omitempty"`
}

func (r *ciliumRule) l7() bool {
	for _, dirs := range [][]ciliumRuleDirection{r.Ingress, r.IngressDeny, r.Egress, r.EgressDeny} {
		for _, d := range dirs {
			for _, p := range d.ToPorts {
				for kind, v := range p.Rules {
					if kind == "l7proto" || nonEmpty(v) {
						return true
					}
				}
			}
		}
	}
	return false
}

func nonEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	case string:
		return x != ""
	}
	return true
}

func ciliumPolicyEntry(k ObjectKey, obj map[string]any) (*entry, error) {
	var rules []ciliumRule
	if spec, ok := obj["spec"].(map[string]any); ok {
		var r ciliumRule
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(spec, &r); err != nil {
			return nil, fmt.Errorf("index: %s spec: %w", k, err)
		}
		rules = append(rules, r)
	}
	if specs, ok := obj["specs"].([]any); ok {
		for i, s := range specs {
			m, ok := s.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("index: %s specs[%d]: not an object", k, i)
			}
			var r ciliumRule
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &r); err != nil {
				return nil, fmt.Errorf("index: %s specs[%d]: %w", k, i, err)
			}
			rules = append(rules, r)
		}
	}
	// The index keeps one selector per object: the first rule with L7 decides.
	for _, r := range rules {
		if !r.l7() {
			continue
		}
		e := &entry{key: k, features: []Feature{FeatureCiliumL7Policy}, scope: scopePods, ns: k.Namespace, meshWide: k.Namespace == ""}
		if r.EndpointSelector != nil {
			sel := &metav1.LabelSelector{MatchLabels: map[string]string{}}
			for key, v := range r.EndpointSelector.MatchLabels {
				key = trimCiliumSource(key)
				if key == ciliumNamespaceLabel {
					e.ns, e.meshWide = v, false
					continue
				}
				sel.MatchLabels[key] = v
			}
			for _, req := range r.EndpointSelector.MatchExpressions {
				req.Key = trimCiliumSource(req.Key)
				sel.MatchExpressions = append(sel.MatchExpressions, req)
			}
			e.selector = sel.MatchLabels
			if len(sel.MatchExpressions) > 0 {
				s, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchExpressions: sel.MatchExpressions})
				if err != nil {
					return nil, fmt.Errorf("index: %s endpointSelector: %w", k, err)
				}
				e.exprs = s
			}
		}
		return e, nil
	}
	return nil, nil
}

// trimCiliumSource drops Cilium's label source prefix ("k8s:", "any:").
func trimCiliumSource(key string) string {
	for _, p := range []string{"k8s:", "any:"} {
		if strings.HasPrefix(key, p) {
			return key[len(p):]
		}
	}
	return key
}

func ciliumEnvoyConfigEntry(k ObjectKey, obj map[string]any) (*entry, error) {
	svcs, found, err := unstructured.NestedSlice(obj, "spec", "services")
	if err != nil {
		return nil, fmt.Errorf("index: %s spec.services: %w", k, err)
	}
	if !found {
		return nil, nil
	}
	e := &entry{key: k, features: []Feature{FeatureCiliumEnvoyConfig}, scope: scopeServices}
	for i, s := range svcs {
		m, ok := s.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("index: %s spec.services[%d]: not an object", k, i)
		}
		name, _ := m["name"].(string)
		ns, _ := m["namespace"].(string)
		if ns == "" {
			ns = k.Namespace
		}
		if name == "" || ns == "" {
			return nil, fmt.Errorf("index: %s spec.services[%d]: name and namespace are required", k, i)
		}
		e.services = append(e.services, ObjectKey{Kind: "Service", Namespace: ns, Name: name})
	}
	if len(e.services) == 0 {
		return nil, nil
	}
	return e, nil
}
