package policies

import (
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meshshift/meshshift/api/v1alpha1"
)

// Set holds the compiled DataplanePolicies of a cluster, compiling each once
// per generation. Feed it from an informer (Upsert on add and update, Delete on
// delete) and ask For a namespace's policy. An update that does not compile
// keeps the last good generation in force and is reported by Errors (the
// validating webhook refuses such updates; this covers policies written while
// it was down). Safe for concurrent use; pure like the rest of the package.
type Set struct {
	mu       sync.RWMutex
	policies map[string]*Policy
	errs     map[string]field.ErrorList
	list     []*Policy // sorted by name, rebuilt on change
}

// NewSet returns an empty Set.
func NewSet() *Set {
	return &Set{policies: map[string]*Policy{}, errs: map[string]field.ErrorList{}}
}

// Upsert compiles dp unless its generation is already compiled, and returns the
// compile errors (nil when it compiled or was current).
func (s *Set) Upsert(dp *v1alpha1.DataplanePolicy) field.ErrorList {
	s.mu.RLock()
	cur := s.policies[dp.Name]
	s.mu.RUnlock()
	if cur != nil && cur.generation == dp.Generation {
		return nil
	}
	p, errs := Compile(dp)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(errs) > 0 {
		s.errs[dp.Name] = errs
		return errs
	}
	delete(s.errs, dp.Name)
	s.policies[dp.Name] = p
	s.rebuild()
	return nil
}

// Delete forgets a policy.
func (s *Set) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.policies, name)
	delete(s.errs, name)
	s.rebuild()
}

func (s *Set) rebuild() {
	s.list = s.list[:0:0]
	for _, p := range s.policies {
		s.list = append(s.list, p)
	}
	sort.Slice(s.list, func(i, j int) bool { return s.list[i].name < s.list[j].name })
}

// For returns the policy governing a namespace with these labels (Select).
func (s *Set) For(nsLabels map[string]string) *Policy {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Select(s.list, nsLabels)
}

// Get returns the compiled policy of that name.
func (s *Set) Get(name string) (*Policy, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.policies[name]
	return p, ok
}

// Errors returns the errors of the latest generation of a policy that did not
// compile (nil when it compiled).
func (s *Set) Errors(name string) field.ErrorList {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.errs[name]
}
