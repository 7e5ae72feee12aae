package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	extensionsv1alpha1 "istio.io/client-go/pkg/apis/extensions/v1alpha1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsjson "sigs.k8s.io/json"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
)

// kindInfo says how one known kind is read.
type kindInfo struct {
	// versions accepted for the group (Istio serves the same schema under
	// several versions; every one decodes into the newest type).
	versions []string
	// typed returns a new typed object; nil means the kind stays unstructured
	// (Cilium's, whose module meshshift does not import).
	typed func() any
	// spec returns the protobuf spec of an Istio object, checked strictly.
	spec func(obj any) proto.Message
}

const (
	groupIstioNetworking = "networking.istio.io"
	groupIstioSecurity   = "security.istio.io"
	groupIstioTelemetry  = "telemetry.istio.io"
	groupIstioExtensions = "extensions.istio.io"
	groupGateway         = "gateway.networking.k8s.io"
	groupCilium          = "cilium.io"
	groupArgo            = "argoproj.io"
	groupCRD             = "apiextensions.k8s.io"
)

var (
	istioNetworkingVersions = []string{"v1", "v1beta1", "v1alpha3"}
	istioSecurityVersions   = []string{"v1", "v1beta1"}
	ciliumVersions          = []string{"v2", "v2alpha1"}
)

// knownKinds are the kinds plan, explain and precheck read; any other kind is
// skipped with a note.
var knownKinds = map[schema.GroupKind]kindInfo{
	{Kind: "Namespace"}:                  {versions: []string{"v1"}, typed: func() any { return &corev1.Namespace{} }},
	{Kind: "Pod"}:                        {versions: []string{"v1"}, typed: func() any { return &corev1.Pod{} }},
	{Kind: "Service"}:                    {versions: []string{"v1"}, typed: func() any { return &corev1.Service{} }},
	{Kind: "Node"}:                       {versions: []string{"v1"}, typed: func() any { return &corev1.Node{} }},
	{Group: "apps", Kind: "Deployment"}:  {versions: []string{"v1"}, typed: func() any { return &appsv1.Deployment{} }},
	{Group: "apps", Kind: "StatefulSet"}: {versions: []string{"v1"}, typed: func() any { return &appsv1.StatefulSet{} }},
	{Group: "apps", Kind: "DaemonSet"}:   {versions: []string{"v1"}, typed: func() any { return &appsv1.DaemonSet{} }},
	{Kind: "ReplicationController"}:      {versions: []string{"v1"}, typed: func() any { return &corev1.ReplicationController{} }},
	{Group: "batch", Kind: "Job"}:        {versions: []string{"v1"}, typed: func() any { return &batchv1.Job{} }},
	{Group: "batch", Kind: "CronJob"}:    {versions: []string{"v1"}, typed: func() any { return &batchv1.CronJob{} }},
	// Argo Rollouts, read as unstructured (meshshift does not import Argo):
	// its spec.template, or the Deployment its spec.workloadRef names.
	{Group: groupArgo, Kind: "Rollout"}: {versions: []string{"v1alpha1"}},
	{Group: meshv1alpha1.GroupVersion.Group, Kind: "DataplanePolicy"}: {versions: []string{"v1alpha1"},
		typed: func() any { return &meshv1alpha1.DataplanePolicy{} }},
	{Group: meshv1alpha1.GroupVersion.Group, Kind: "MeshMigration"}: {versions: []string{"v1alpha1"},
		typed: func() any { return &meshv1alpha1.MeshMigration{} }},

	{Group: groupIstioNetworking, Kind: "VirtualService"}: {versions: istioNetworkingVersions,
		typed: func() any { return &networkingv1.VirtualService{} },
		spec:  func(o any) proto.Message { return &o.(*networkingv1.VirtualService).Spec }},
	{Group: groupIstioNetworking, Kind: "DestinationRule"}: {versions: istioNetworkingVersions,
		typed: func() any { return &networkingv1.DestinationRule{} },
		spec:  func(o any) proto.Message { return &o.(*networkingv1.DestinationRule).Spec }},
	{Group: groupIstioNetworking, Kind: "Sidecar"}: {versions: istioNetworkingVersions,
		typed: func() any { return &networkingv1.Sidecar{} },
		spec:  func(o any) proto.Message { return &o.(*networkingv1.Sidecar).Spec }},
	{Group: groupIstioNetworking, Kind: "WorkloadEntry"}: {versions: istioNetworkingVersions,
		typed: func() any { return &networkingv1.WorkloadEntry{} },
		spec:  func(o any) proto.Message { return &o.(*networkingv1.WorkloadEntry).Spec }},
	{Group: groupIstioNetworking, Kind: "EnvoyFilter"}: {versions: []string{"v1alpha3"},
		typed: func() any { return &networkingv1alpha3.EnvoyFilter{} },
		spec:  func(o any) proto.Message { return &o.(*networkingv1alpha3.EnvoyFilter).Spec }},
	{Group: groupIstioSecurity, Kind: "AuthorizationPolicy"}: {versions: istioSecurityVersions,
		typed: func() any { return &securityv1.AuthorizationPolicy{} },
		spec:  func(o any) proto.Message { return &o.(*securityv1.AuthorizationPolicy).Spec }},
	{Group: groupIstioSecurity, Kind: "RequestAuthentication"}: {versions: istioSecurityVersions,
		typed: func() any { return &securityv1.RequestAuthentication{} },
		spec:  func(o any) proto.Message { return &o.(*securityv1.RequestAuthentication).Spec }},
	{Group: groupIstioSecurity, Kind: "PeerAuthentication"}: {versions: istioSecurityVersions,
		typed: func() any { return &securityv1.PeerAuthentication{} },
		spec:  func(o any) proto.Message { return &o.(*securityv1.PeerAuthentication).Spec }},
	{Group: groupIstioTelemetry, Kind: "Telemetry"}: {versions: []string{"v1", "v1alpha1"},
		typed: func() any { return &telemetryv1.Telemetry{} },
		spec:  func(o any) proto.Message { return &o.(*telemetryv1.Telemetry).Spec }},
	{Group: groupIstioExtensions, Kind: "WasmPlugin"}: {versions: []string{"v1alpha1"},
		typed: func() any { return &extensionsv1alpha1.WasmPlugin{} },
		spec:  func(o any) proto.Message { return &o.(*extensionsv1alpha1.WasmPlugin).Spec }},
	{Group: groupIstioExtensions, Kind: "TrafficExtension"}: {versions: []string{"v1alpha1"},
		typed: func() any { return &extensionsv1alpha1.TrafficExtension{} },
		spec:  func(o any) proto.Message { return &o.(*extensionsv1alpha1.TrafficExtension).Spec }},

	{Group: groupGateway, Kind: "HTTPRoute"}: {versions: []string{"v1", "v1beta1"}, typed: func() any { return &gatewayv1.HTTPRoute{} }},
	{Group: groupGateway, Kind: "GRPCRoute"}: {versions: []string{"v1"}, typed: func() any { return &gatewayv1.GRPCRoute{} }},
	{Group: groupGateway, Kind: "Gateway"}:   {versions: []string{"v1", "v1beta1"}, typed: func() any { return &gatewayv1.Gateway{} }},

	{Group: groupCilium, Kind: "CiliumNetworkPolicy"}:            {versions: ciliumVersions},
	{Group: groupCilium, Kind: "CiliumClusterwideNetworkPolicy"}: {versions: ciliumVersions},
	{Group: groupCilium, Kind: "CiliumEnvoyConfig"}:              {versions: ciliumVersions},
	{Group: groupCilium, Kind: "CiliumClusterwideEnvoyConfig"}:   {versions: ciliumVersions},

	{Group: groupCRD, Kind: "CustomResourceDefinition"}: {versions: []string{"v1"}},
}

// clusterScoped kinds have no namespace; every other known kind defaults to
// "default" when its manifest names none (as kubectl does).
var clusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "DataplanePolicy": true, "MeshMigration": true,
	"CiliumClusterwideNetworkPolicy": true, "CiliumClusterwideEnvoyConfig": true, "CustomResourceDefinition": true,
}

// goFieldRe finds the JSON field path in encoding/json's type errors
// ("Go struct field DeploymentSpec.spec.replicas of type int32").
var goFieldRe = regexp.MustCompile(`Go struct field [A-Za-z0-9_]+\.([^ ]+) of type (\S+)`)

// toTyped decodes a known object into its Go type, strictly: an unknown or
// duplicated field, or a value of the wrong type, is an error naming the field.
func toTyped(o *Object, info kindInfo) (any, error) {
	obj := info.typed()
	if err := decodeStrict(o, o.U.Object, obj, ""); err != nil {
		if info.spec != nil {
			// Istio's own decoder names no field: find the value it quotes.
			var me *ManifestError
			if errors.As(err, &me) && (me.Field == "" || me.Field == "spec") {
				if path, ok := quotedValuePath(me.Err.Error(), o.U.Object["spec"], "spec"); ok {
					me.Field = path
				}
			}
		}
		return nil, err
	}
	if info.spec != nil {
		// What Istio's types read, Istio reads; protojson adds what they
		// ignore: an unknown (misspelled) field.
		if err := strictSpec(o, info.spec(obj)); err != nil {
			return nil, err
		}
	}
	return obj, nil
}

var quotedRe = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)

// quotedValuePath finds the path of the first string value in v that an
// error message quotes.
func quotedValuePath(msg string, v any, path string) (string, bool) {
	for _, m := range quotedRe.FindAllString(msg, -1) {
		cands := []string{strings.Trim(m, `"`)}
		if u, err := strconv.Unquote(m); err == nil {
			// A JSON value quoted once more: "\"SOMETIMES\"".
			cands = append(cands, u, strings.Trim(u, `"`))
		}
		for _, c := range cands {
			if p, ok := findValue(v, c, path); ok {
				return p, true
			}
		}
	}
	return "", false
}

// findValue finds the path of the first string value equal to want, depth
// first in key order.
func findValue(v any, want, path string) (string, bool) {
	switch t := v.(type) {
	case string:
		return path, t == want
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if p, ok := findValue(t[k], want, path+"."+k); ok {
				return p, true
			}
		}
	case []any:
		for i, x := range t {
			if p, ok := findValue(x, want, fmt.Sprintf("%s[%d]", path, i)); ok {
				return p, true
			}
		}
	}
	return "", false
}

// decodeStrict decodes v (a part of o at the field path prefix, "" for the
// whole object) into out, strictly; errors name the field from o's top.
func decodeStrict(o *Object, v, out any, prefix string) error {
	at := func(f string) string {
		switch {
		case prefix == "":
			return f
		case f == "":
			return prefix
		}
		return prefix + "." + f
	}
	b, err := json.Marshal(v)
	if err != nil {
		return &ManifestError{Source: o.Source, Object: o.Ref(), Field: at(""), Err: fmt.Errorf("encode: %w", err)}
	}
	strict, err := sigsjson.UnmarshalStrict(b, out)
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if m := goFieldRe.FindStringSubmatch(err.Error()); m != nil {
				field = m[1]
			}
			return &ManifestError{Source: o.Source, Object: o.Ref(), Field: at(field),
				Err: fmt.Errorf("got a JSON %s, want %s", te.Value, te.Type)}
		}
		return &ManifestError{Source: o.Source, Object: o.Ref(), Field: at(""), Err: err}
	}
	if len(strict) > 0 {
		return &ManifestError{Source: o.Source, Object: o.Ref(), Field: at(strictField(strict[0])), Err: strictReason(strict[0])}
	}
	return nil
}

// strictField pulls the field path out of sigs.k8s.io/json's strict errors
// (`unknown field "spec.foo"`, `duplicate field "metadata.name"`).
func strictField(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '"'); i >= 0 {
		if j := strings.LastIndexByte(s, '"'); j > i {
			return s[i+1 : j]
		}
	}
	return ""
}

func strictReason(err error) error {
	s := err.Error()
	switch {
	case strings.HasPrefix(s, "unknown field"):
		return errors.New("unknown field (misspelled, or not in this apiVersion)")
	case strings.HasPrefix(s, "duplicate field"):
		return errors.New("given twice")
	}
	return err
}

// strictSpec re-reads an Istio spec with protojson, which (unlike the
// client-go types' own decoder) rejects unknown fields; only those are
// reported (protojson is stricter than Istio about values: durations).
func strictSpec(o *Object, msg proto.Message) error {
	spec, ok := o.U.Object["spec"]
	if !ok {
		return nil
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return &ManifestError{Source: o.Source, Object: o.Ref(), Field: "spec", Err: fmt.Errorf("encode: %w", err)}
	}
	fresh := msg.ProtoReflect().New().Interface()
	if err := protojson.Unmarshal(b, fresh); err != nil {
		msg := cleanProtoErr(err)
		if m := protoUnknownRe.FindStringSubmatch(msg); m != nil {
			path, ok := findKey(spec, m[1], "spec")
			if !ok {
				path = "spec"
			}
			return &ManifestError{Source: o.Source, Object: o.Ref(), Field: path,
				Err: errors.New("unknown field (misspelled, or not in this apiVersion)")}
		}
		// Anything else protojson alone rejects (a duration written "500ms",
		// which Istio reads) is not an error.
	}
	return nil
}

var (
	protoUnknownRe = regexp.MustCompile(`unknown field "([^"]+)"`)
)

// findKey finds the path of the first map key named key in v, depth first.
func findKey(v any, key, path string) (string, bool) {
	switch t := v.(type) {
	case map[string]any:
		if _, ok := t[key]; ok {
			return path + "." + key, true
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if p, ok := findKey(t[k], key, path+"."+k); ok {
				return p, true
			}
		}
	case []any:
		for i, x := range t {
			if p, ok := findKey(x, key, fmt.Sprintf("%s[%d]", path, i)); ok {
				return p, true
			}
		}
	}
	return "", false
}

// cleanProtoErr drops protojson's random prefix and offsets.
func cleanProtoErr(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "proto: ")
	s = strings.TrimPrefix(s, "proto:\u00a0")
	if i := strings.Index(s, "(line "); i >= 0 {
		if j := strings.Index(s[i:], "): "); j >= 0 {
			s = s[:i] + s[i+j+3:]
		}
	}
	s = strings.TrimPrefix(strings.TrimSpace(s), "syntax error ")
	return s
}
