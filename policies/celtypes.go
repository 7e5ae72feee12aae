package policies

import (
	"reflect"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/signals"
)

// The CEL view of a decision's inputs. The objects rules see are small
// wrappers held in the pooled activation, read field by field without
// reflection, so evaluating a rule allocates only for the values it reads that
// must be boxed (a label's value, a traffic figure). The chained fast program
// avoids most of those too: see celfast.go.

// CEL type names of the rule variables.
const (
	celWorkloadType  = "meshshift.Workload"
	celNamespaceType = "meshshift.Namespace"
	celTrafficType   = "meshshift.Traffic"
)

var stringStringMap = types.NewMapType(types.StringType, types.StringType)

type fieldDef struct {
	typ *types.Type
	get func(obj any) ref.Val
}

type structDef struct {
	typ    *types.Type
	fields map[string]fieldDef
	names  []string
}

func newStructDef(name string, fields map[string]fieldDef) *structDef {
	d := &structDef{typ: types.NewObjectType(name), fields: fields}
	for n := range fields {
		d.names = append(d.names, n)
	}
	return d
}

func str(s string) ref.Val {
	if v, ok := interned[s]; ok {
		return v
	}
	return types.String(s)
}

// interned holds the boxed strings rules compare most: feature, protocol,
// mode and owner kind names, and common label values.
var interned = func() map[string]ref.Val {
	m := map[string]ref.Val{"": types.String("")}
	for _, f := range signals.AllFeatures {
		m[string(f)] = types.String(f)
	}
	for _, p := range []signals.Protocol{signals.ProtocolHTTP1, signals.ProtocolHTTP2, signals.ProtocolTLS, signals.ProtocolOther} {
		m[string(p)] = types.String(p)
	}
	for _, md := range v1alpha1.Modes {
		m[string(md)] = types.String(md)
	}
	for _, k := range []string{"ReplicaSet", "StatefulSet", "DaemonSet", "Job", "Deployment", "CronJob", "true", "false", "enabled", "disabled"} {
		m[k] = types.String(k)
	}
	return m
}()

var celStructs = map[string]*structDef{
	celWorkloadType: newStructDef(celWorkloadType, map[string]fieldDef{
		"name":        {types.StringType, func(o any) ref.Val { return types.String(o.(*celWorkload).w.Name) }},
		"namespace":   {types.StringType, func(o any) ref.Val { return types.String(o.(*celWorkload).w.Namespace) }},
		"labels":      {stringStringMap, func(o any) ref.Val { return &o.(*celWorkload).labels }},
		"annotations": {stringStringMap, func(o any) ref.Val { return &o.(*celWorkload).annotations }},
		"hostNetwork": {types.BoolType, func(o any) ref.Val { return types.Bool(o.(*celWorkload).w.HostNetwork) }},
		"ownerKind":   {types.StringType, func(o any) ref.Val { return str(o.(*celWorkload).w.OwnerKind) }},
		"ownerName":   {types.StringType, func(o any) ref.Val { return types.String(o.(*celWorkload).w.OwnerName) }},
		"workload":    {types.StringType, func(o any) ref.Val { return types.String(o.(*celWorkload).w.Workload) }},
	}),
	celNamespaceType: newStructDef(celNamespaceType, map[string]fieldDef{
		"name":        {types.StringType, func(o any) ref.Val { return types.String(o.(*celNamespace).ns.Name) }},
		"labels":      {stringStringMap, func(o any) ref.Val { return &o.(*celNamespace).labels }},
		"annotations": {stringStringMap, func(o any) ref.Val { return &o.(*celNamespace).annotations }},
	}),
	celTrafficType: newStructDef(celTrafficType, map[string]fieldDef{
		"available":      {types.BoolType, func(o any) ref.Val { return types.Bool(o.(*celTraffic).t.Available) }},
		"stale":          {types.BoolType, func(o any) ref.Val { return types.Bool(o.(*celTraffic).t.Stale) }},
		"age":            {types.DurationType, func(o any) ref.Val { return types.Duration{Duration: o.(*celTraffic).t.Age} }},
		"requestRate":    {types.DoubleType, func(o any) ref.Val { return types.Double(o.(*celTraffic).t.RequestRate) }},
		"errorRate":      {types.DoubleType, func(o any) ref.Val { return types.Double(o.(*celTraffic).t.ErrorRate) }},
		"p99Latency":     {types.DurationType, func(o any) ref.Val { return types.Duration{Duration: o.(*celTraffic).t.P99Latency} }},
		"connectionRate": {types.DoubleType, func(o any) ref.Val { return types.Double(o.(*celTraffic).t.ConnectionRate) }},
		"retransmitRate": {types.DoubleType, func(o any) ref.Val { return types.Double(o.(*celTraffic).t.RetransmitRate) }},
		"protocols":      {types.NewListType(types.StringType), func(o any) ref.Val { return &o.(*celTraffic).protocols }},
	}),
}

// provider adds the three object types to the environment's own provider.
type provider struct{ types.Provider }

func (p provider) FindStructType(name string) (*types.Type, bool) {
	if d, ok := celStructs[name]; ok {
		return types.NewTypeTypeWithParam(d.typ), true
	}
	return p.Provider.FindStructType(name)
}

func (p provider) FindStructFieldNames(name string) ([]string, bool) {
	if d, ok := celStructs[name]; ok {
		return d.names, true
	}
	return p.Provider.FindStructFieldNames(name)
}

func (p provider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	d, ok := celStructs[name]
	if !ok {
		return p.Provider.FindStructFieldType(name, field)
	}
	f, ok := d.fields[field]
	if !ok {
		return nil, false
	}
	get := f.get
	return &types.FieldType{
		Type:    f.typ,
		IsSet:   func(any) bool { return true },
		GetFrom: func(obj any) (any, error) { return get(obj), nil },
	}, true
}

func withInputTypes() cel.EnvOption {
	return func(env *cel.Env) (*cel.Env, error) {
		return cel.CustomTypeProvider(provider{env.CELTypeProvider()})(env)
	}
}

// object is the ref.Val part shared by the three wrappers: they are only ever
// read field by field.
type object struct{ typ *types.Type }

func (o *object) ConvertToNative(reflect.Type) (any, error) {
	return nil, errNoNative
}
func (o *object) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return o.typ
	}
	return types.NewErr("type conversion error from %s to %s", o.typ, t)
}
func (o *object) Type() ref.Type { return o.typ }

type celWorkload struct {
	object
	w                   Workload
	labels, annotations strMap
}

func (c *celWorkload) Equal(other ref.Val) ref.Val { return types.Bool(other == ref.Val(c)) }
func (c *celWorkload) Value() any                  { return c }

type celNamespace struct {
	object
	ns                  Namespace
	labels, annotations strMap
}

func (c *celNamespace) Equal(other ref.Val) ref.Val { return types.Bool(other == ref.Val(c)) }
func (c *celNamespace) Value() any                  { return c }

type celTraffic struct {
	object
	t         Traffic
	protocols strList
}

func (c *celTraffic) Equal(other ref.Val) ref.Val { return types.Bool(other == ref.Val(c)) }
func (c *celTraffic) Value() any                  { return c }

// strMap is a map(string, string) read in place; the rarely used operations
// go through cel-go's own map.
type strMap struct{ m map[string]string }

var _ traits.Mapper = (*strMap)(nil)

func (s *strMap) std() traits.Mapper { return types.NewStringStringMap(types.DefaultTypeAdapter, s.m) }

func (s *strMap) ConvertToNative(t reflect.Type) (any, error) { return s.std().ConvertToNative(t) }
func (s *strMap) ConvertToType(t ref.Type) ref.Val            { return s.std().ConvertToType(t) }
func (s *strMap) Equal(o ref.Val) ref.Val                     { return s.std().Equal(o) }
func (s *strMap) Type() ref.Type                              { return types.MapType }
func (s *strMap) Value() any                                  { return s.m }
func (s *strMap) Iterator() traits.Iterator                   { return s.std().Iterator() }
func (s *strMap) Size() ref.Val                               { return types.Int(len(s.m)) }

func (s *strMap) Contains(key ref.Val) ref.Val {
	_, found := s.Find(key)
	return types.Bool(found)
}

func (s *strMap) Get(key ref.Val) ref.Val {
	v, found := s.Find(key)
	if !found {
		return types.NewErr("no such key: %v", key)
	}
	return v
}

func (s *strMap) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return s.std().Find(key)
	}
	v, found := s.m[string(k)]
	if !found {
		return nil, false
	}
	return str(v), true
}

// Fold lets comprehensions walk the map without an iterator.
func (s *strMap) Fold(f traits.Folder) {
	for k, v := range s.m {
		if !f.FoldEntry(str(k), str(v)) {
			return
		}
	}
}

// strList is a list(string) of interned values; the rarely used operations go
// through cel-go's own list.
type strList struct{ vals []ref.Val }

var _ traits.Lister = (*strList)(nil)

func (s *strList) std() traits.Lister { return types.NewRefValList(types.DefaultTypeAdapter, s.vals) }

func (s *strList) ConvertToNative(t reflect.Type) (any, error) { return s.std().ConvertToNative(t) }
func (s *strList) ConvertToType(t ref.Type) ref.Val            { return s.std().ConvertToType(t) }
func (s *strList) Equal(o ref.Val) ref.Val                     { return s.std().Equal(o) }
func (s *strList) Type() ref.Type                              { return types.ListType }
func (s *strList) Value() any                                  { return s.vals }
func (s *strList) Iterator() traits.Iterator                   { return s.std().Iterator() }
func (s *strList) Size() ref.Val                               { return types.Int(len(s.vals)) }
func (s *strList) Add(o ref.Val) ref.Val                       { return s.std().Add(o) }
func (s *strList) Get(i ref.Val) ref.Val                       { return s.std().Get(i) }

func (s *strList) Contains(v ref.Val) ref.Val {
	x, ok := v.(types.String)
	if !ok {
		return s.std().Contains(v)
	}
	for _, e := range s.vals {
		if e.(types.String) == x {
			return types.True
		}
	}
	return types.False
}

// Fold lets comprehensions walk the list without an iterator.
func (s *strList) Fold(f traits.Folder) {
	for i, v := range s.vals {
		if !f.FoldEntry(types.Int(i), v) {
			return
		}
	}
}
