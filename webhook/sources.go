package webhook

import (
	"maps"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
)

// FeatureSource answers which mesh objects select a pod that may not exist yet.
// *signals.Index implements it. It must answer from memory.
type FeatureSource interface {
	AppendFeatures(dst signals.Features, ns string, podLabels map[string]string) signals.Features
}

// TrafficSource returns the latest traffic snapshot, or nil when there is none.
// It must not block.
type TrafficSource func() *signals.TrafficSnapshot

// CapabilitySource returns what the cluster can serve. It must not block.
type CapabilitySource func() signals.Capabilities

// StaticCapabilities is a CapabilitySource that always answers c.
func StaticCapabilities(c signals.Capabilities) CapabilitySource {
	return func() signals.Capabilities { return c }
}

// PolicyStore holds the compiled DataplanePolicies, each compiled once per
// generation. Readers get an immutable snapshot without locking. Invalid
// policies are left out (the validating webhook keeps them from being stored;
// one that slipped through is logged and ignored).
type PolicyStore struct {
	log      logr.Logger
	mu       sync.Mutex
	byName   map[string]*policies.Policy
	results  map[string]compiled // the last generation compiled, valid or not
	snapshot atomic.Pointer[[]*policies.Policy]
	version  atomic.Uint64 // grows with every new snapshot
}

// compiled is what policies.Compile said of one generation of a policy.
type compiled struct {
	generation int64
	errs       field.ErrorList
}

// NewPolicyStore returns an empty store.
func NewPolicyStore(log logr.Logger) *PolicyStore {
	s := &PolicyStore{log: log, byName: map[string]*policies.Policy{}, results: map[string]compiled{}}
	s.publish()
	return s
}

// Version grows with every change of the set Policies returns.
func (s *PolicyStore) Version() uint64 { return s.version.Load() }

// Policies is the current set, sorted by name. Do not change it.
func (s *PolicyStore) Policies() []*policies.Policy { return *s.snapshot.Load() }

// Upsert compiles and stores dp unless its generation was compiled already.
func (s *PolicyStore) Upsert(dp *v1alpha1.DataplanePolicy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, done := s.compileLocked(dp); done {
		s.publish()
	}
}

// Compile is what policies.Compile says of dp: the store's own result when
// it compiled that generation already, else compiled here (and not stored:
// only the informer's events change what the admission path uses).
func (s *PolicyStore) Compile(dp *v1alpha1.DataplanePolicy) field.ErrorList {
	s.mu.Lock()
	r, ok := s.results[dp.Name]
	s.mu.Unlock()
	if ok && r.generation == dp.Generation {
		return r.errs
	}
	_, errs := policies.Compile(dp)
	return errs
}

// compileLocked compiles dp unless its generation was; done reports a compile.
func (s *PolicyStore) compileLocked(dp *v1alpha1.DataplanePolicy) (errs field.ErrorList, done bool) {
	if r, ok := s.results[dp.Name]; ok && r.generation == dp.Generation {
		return r.errs, false
	}
	p, errs := policies.Compile(dp)
	s.results[dp.Name] = compiled{generation: dp.Generation, errs: errs}
	if len(errs) > 0 {
		s.log.Info("ignoring invalid DataplanePolicy", "policy", klog.KObj(dp), "error", errs.ToAggregate().Error())
		delete(s.byName, dp.Name)
	} else {
		s.byName[dp.Name] = p
	}
	return errs, true
}

// Delete forgets the policy called name.
func (s *PolicyStore) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byName, name)
	delete(s.results, name)
	s.publish()
}

func (s *PolicyStore) publish() {
	out := make([]*policies.Policy, 0, len(s.byName))
	for _, p := range s.byName {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	s.snapshot.Store(&out)
	s.version.Add(1)
}

// EventHandler feeds the store from a DataplanePolicy informer.
func (s *PolicyStore) EventHandler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if dp, ok := obj.(*v1alpha1.DataplanePolicy); ok {
				s.Upsert(dp)
			}
		},
		UpdateFunc: func(_, obj any) {
			if dp, ok := obj.(*v1alpha1.DataplanePolicy); ok {
				s.Upsert(dp)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if dp, ok := obj.(*v1alpha1.DataplanePolicy); ok {
				s.Delete(dp.Name)
			}
		},
	}
}

// NamespaceStore keeps every namespace's labels and annotations, fed by the
// Namespace informer, so the admission path reads them without the deep copy
// a cache Get makes. The maps are the informer's own objects' and are never
// changed (informer objects are read-only).
type NamespaceStore struct {
	mu      sync.RWMutex
	m       map[string]storedNamespace
	version uint64
}

// storedNamespace is a namespace and the store's version when it last changed.
type storedNamespace struct {
	ns      policies.Namespace
	version uint64
}

// NewNamespaceStore returns an empty store.
func NewNamespaceStore() *NamespaceStore {
	return &NamespaceStore{m: map[string]storedNamespace{}}
}

// Get returns the namespace called name; ok is false when it is unknown.
func (s *NamespaceStore) Get(name string) (policies.Namespace, bool) {
	ns, _, ok := s.GetVersion(name)
	return ns, ok
}

// GetVersion is Get with a version that changes whenever the namespace's
// labels or annotations do, or it appears or goes (0: unknown).
func (s *NamespaceStore) GetVersion(name string) (policies.Namespace, uint64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.m[name]
	return e.ns, e.version, ok
}

func (s *NamespaceStore) upsert(ns *corev1.Namespace) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[ns.Name]; ok && maps.Equal(old.ns.Labels, ns.Labels) && maps.Equal(old.ns.Annotations, ns.Annotations) {
		return // a resync or a change of something else (status, finalizers)
	}
	s.version++
	s.m[ns.Name] = storedNamespace{ns: policies.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations}, version: s.version}
}

func (s *NamespaceStore) delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
}

// EventHandler feeds the store from a Namespace informer.
func (s *NamespaceStore) EventHandler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if ns, ok := obj.(*corev1.Namespace); ok {
				s.upsert(ns)
			}
		},
		UpdateFunc: func(_, obj any) {
			if ns, ok := obj.(*corev1.Namespace); ok {
				s.upsert(ns)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if ns, ok := obj.(*corev1.Namespace); ok {
				s.delete(ns.Name)
			}
		},
	}
}
