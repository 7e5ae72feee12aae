package signals

import (
	"slices"
	"sync"
	"time"

	securityapi "istio.io/api/security/v1beta1"
	"k8s.io/apimachinery/pkg/labels"
)

// DefaultRootNamespace is Istio's default root namespace: selector-based
// policies there apply to the whole mesh.
const DefaultRootNamespace = "istio-system"

// ObjectKey names one indexed mesh object.
type ObjectKey struct {
	Kind      string
	Namespace string
	Name      string
}

func (k ObjectKey) String() string {
	if k.Namespace == "" {
		return k.Kind + " " + k.Name
	}
	return k.Kind + " " + k.Namespace + "/" + k.Name
}

// labelPair is one key=value label; selectors are filed under one of theirs.
type labelPair struct{ k, v string }

// selScope says how an entry selects pods.
type selScope uint8

const (
	// scopePods: pods matching selector (or every pod with an empty selector) in
	// ns, or in every namespace when meshWide.
	scopePods selScope = iota
	// scopeServices: pods selected by services (by name, by namespace wildcard,
	// or every service).
	scopeServices
	// scopeWorkloadEntry: pods of the services whose selector matches the
	// WorkloadEntry's labels (a Service spanning pods and a VM).
	scopeWorkloadEntry
)

// entry is one indexed mesh object: what it gives and how it selects.
type entry struct {
	key      ObjectKey
	features []Feature
	scope    selScope
	ns       string // where it selects ("" with meshWide)
	meshWide bool
	selector map[string]string // matchLabels-like; nil or empty selects all
	exprs    labels.Selector   // further requirements, nil when none
	// scopeServices:
	services    []ObjectKey // Kind "Service"
	svcNsAll    []string    // every service of these namespaces
	svcEveryone bool        // every service of every namespace
	// scopeWorkloadEntry:
	weLabels map[string]string
	// Kinds of which one object per level applies (precNone for the others):
	prec    precKind
	level   uint8     // levelMesh, levelNamespace or levelWorkload
	created time.Time // the oldest of one level wins, as in istiod
	// precPeerAuth:
	mode        securityapi.PeerAuthentication_MutualTLS_Mode
	portDisable bool // a port-level DISABLE (workload level only)
}

func (e *entry) matchesPod(podLabels map[string]string) bool {
	for k, v := range e.selector {
		if pv, ok := podLabels[k]; !ok || pv != v {
			return false
		}
	}
	return e.exprs == nil || e.exprs.Matches(labels.Set(podLabels))
}

// anchor is the label the entry is filed under: its smallest selector key.
func (e *entry) anchor() (labelPair, bool) {
	var best labelPair
	found := false
	for k, v := range e.selector {
		if !found || k < best.k {
			best, found = labelPair{k, v}, true
		}
	}
	return best, found
}

// service is an indexed Kubernetes Service (its selector).
type service struct {
	key      ObjectKey
	selector map[string]string
}

func (s *service) matches(l map[string]string) bool {
	if len(s.selector) == 0 {
		return false // a Service without selector selects no pods
	}
	for k, v := range s.selector {
		if pv, ok := l[k]; !ok || pv != v {
			return false
		}
	}
	return true
}

// bucket holds the entries that select pods of one namespace (or of all).
type bucket struct {
	all       []*entry               // empty selector: every pod
	byLabel   map[labelPair][]*entry // filed under their anchor
	exprsOnly []*entry               // only expressions, no matchLabels
	// Service-mediated, in the namespace bucket of the services:
	services    map[string]*service // by name
	svcByLabel  map[labelPair][]*service
	svcAttached map[string][]*entry // service name → entries naming it
	svcAll      []*entry            // entries naming every service here
	wEntries    []*entry            // WorkloadEntries of this namespace
	workloads   map[string]map[string]string
}

func newBucket() *bucket {
	return &bucket{
		byLabel:     map[labelPair][]*entry{},
		services:    map[string]*service{},
		svcByLabel:  map[labelPair][]*service{},
		svcAttached: map[string][]*entry{},
		workloads:   map[string]map[string]string{},
	}
}

// Index maps mesh objects to the workloads they select, for Decide's Features.
// It is fed incrementally (Upsert/Delete, or EventHandler on informers) and
// answers FeaturesFor for a pod that does not exist yet (the webhook's case).
// Safe for concurrent use.
type Index struct {
	mu      sync.RWMutex
	root    string
	entries map[ObjectKey]*entry
	buckets map[string]*bucket
	mesh    *bucket // mesh-wide entries (root namespace, cluster-wide objects)
	gen     uint64
}

// NewIndex returns an empty index; rootNamespace "" means DefaultRootNamespace.
func NewIndex(rootNamespace string) *Index {
	if rootNamespace == "" {
		rootNamespace = DefaultRootNamespace
	}
	return &Index{root: rootNamespace, entries: map[ObjectKey]*entry{}, buckets: map[string]*bucket{}, mesh: newBucket()}
}

// Generation counts changes; it grows with every upsert and delete.
func (ix *Index) Generation() uint64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.gen
}

// Len is the number of indexed mesh objects (Services and workloads excluded).
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.entries)
}

func (ix *Index) bucket(ns string) *bucket {
	b := ix.buckets[ns]
	if b == nil {
		b = newBucket()
		ix.buckets[ns] = b
	}
	return b
}

// put replaces the entry of e.key (e == nil only removes).
func (ix *Index) put(key ObjectKey, e *entry) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.gen++
	if old := ix.entries[key]; old != nil {
		ix.unfile(old)
		delete(ix.entries, key)
	}
	// A precedence kind is kept without features: it still overrides a
	// wider object of its kind (an empty Sidecar hides the mesh-wide one).
	if e != nil && (len(e.features) > 0 || e.prec != precNone) {
		ix.entries[key] = e
		ix.file(e)
	}
}

func (ix *Index) home(e *entry) *bucket {
	if e.meshWide {
		return ix.mesh
	}
	return ix.bucket(e.ns)
}

func (ix *Index) file(e *entry) {
	switch e.scope {
	case scopePods:
		b := ix.home(e)
		if a, ok := e.anchor(); ok {
			b.byLabel[a] = append(b.byLabel[a], e)
		} else if e.exprs != nil {
			b.exprsOnly = append(b.exprsOnly, e)
		} else {
			b.all = append(b.all, e)
		}
	case scopeServices:
		for _, s := range e.services {
			b := ix.bucket(s.Namespace)
			b.svcAttached[s.Name] = append(b.svcAttached[s.Name], e)
		}
		for _, ns := range e.svcNsAll {
			b := ix.bucket(ns)
			b.svcAll = append(b.svcAll, e)
		}
		if e.svcEveryone {
			ix.mesh.svcAll = append(ix.mesh.svcAll, e)
		}
	case scopeWorkloadEntry:
		b := ix.bucket(e.ns)
		b.wEntries = append(b.wEntries, e)
	}
}

func without(list []*entry, e *entry) []*entry {
	if i := slices.Index(list, e); i >= 0 {
		return slices.Delete(list, i, i+1)
	}
	return list
}

func (ix *Index) unfile(e *entry) {
	switch e.scope {
	case scopePods:
		b := ix.home(e)
		if a, ok := e.anchor(); ok {
			if l := without(b.byLabel[a], e); len(l) > 0 {
				b.byLabel[a] = l
			} else {
				delete(b.byLabel, a)
			}
		} else if e.exprs != nil {
			b.exprsOnly = without(b.exprsOnly, e)
		} else {
			b.all = without(b.all, e)
		}
	case scopeServices:
		for _, s := range e.services {
			b := ix.bucket(s.Namespace)
			if l := without(b.svcAttached[s.Name], e); len(l) > 0 {
				b.svcAttached[s.Name] = l
			} else {
				delete(b.svcAttached, s.Name)
			}
		}
		for _, ns := range e.svcNsAll {
			b := ix.bucket(ns)
			b.svcAll = without(b.svcAll, e)
		}
		if e.svcEveryone {
			ix.mesh.svcAll = without(ix.mesh.svcAll, e)
		}
	case scopeWorkloadEntry:
		b := ix.bucket(e.ns)
		b.wEntries = without(b.wEntries, e)
	}
}

// UpsertService records a Service's pod selector.
func (ix *Index) UpsertService(namespace, name string, selector map[string]string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.gen++
	b := ix.bucket(namespace)
	if old := b.services[name]; old != nil {
		ix.unfileService(b, old)
	}
	s := &service{key: ObjectKey{Kind: "Service", Namespace: namespace, Name: name}, selector: cloneMap(selector)}
	b.services[name] = s
	if a, ok := anchorOf(s.selector); ok {
		b.svcByLabel[a] = append(b.svcByLabel[a], s)
	}
}

// DeleteService forgets a Service.
func (ix *Index) DeleteService(namespace, name string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.gen++
	b := ix.bucket(namespace)
	if old := b.services[name]; old != nil {
		ix.unfileService(b, old)
		delete(b.services, name)
	}
}

func (ix *Index) unfileService(b *bucket, s *service) {
	if a, ok := anchorOf(s.selector); ok {
		l := b.svcByLabel[a]
		if i := slices.Index(l, s); i >= 0 {
			l = slices.Delete(l, i, i+1)
		}
		if len(l) > 0 {
			b.svcByLabel[a] = l
		} else {
			delete(b.svcByLabel, a)
		}
	}
}

func anchorOf(sel map[string]string) (labelPair, bool) {
	var best labelPair
	found := false
	for k, v := range sel {
		if !found || k < best.k {
			best, found = labelPair{k, v}, true
		}
	}
	return best, found
}

// UpsertWorkload records a workload's pod-template labels, so SelectedBy can
// answer which workloads an object selects.
func (ix *Index) UpsertWorkload(key WorkloadKey, podLabels map[string]string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.gen++
	ix.bucket(key.Namespace).workloads[key.Name] = cloneMap(podLabels)
}

// DeleteWorkload forgets a workload.
func (ix *Index) DeleteWorkload(key WorkloadKey) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.gen++
	delete(ix.bucket(key.Namespace).workloads, key.Name)
}

// FeaturesFor returns the features of a pod with these labels in namespace ns:
// every indexed object that selects it, sorted and deduplicated.
func (ix *Index) FeaturesFor(ns string, podLabels map[string]string) Features {
	return ix.AppendFeatures(nil, ns, podLabels)
}

// AppendFeatures is FeaturesFor appending to dst (reuse it to avoid allocating).
func (ix *Index) AppendFeatures(dst Features, ns string, podLabels map[string]string) Features {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	start := len(dst)
	dst = ix.appendLocked(dst, ns, podLabels)
	out := dst[start:]
	slices.SortFunc(out, func(a, b FeatureRef) int {
		switch {
		case a.Less(b):
			return -1
		case b.Less(a):
			return 1
		}
		return 0
	})
	return dst[:start+len(slices.Compact(out))]
}

func appendEntry(dst Features, e *entry) Features {
	for _, f := range e.features {
		dst = append(dst, FeatureRef{Feature: f, Kind: e.key.Kind, Namespace: e.key.Namespace, Name: e.key.Name})
	}
	return dst
}

func (ix *Index) appendLocked(dst Features, ns string, podLabels map[string]string) Features {
	sel := selected{dst: dst}
	ix.selectLocked(&sel, ns, podLabels)
	sel.resolvePrec()
	return sel.dst
}

func (ix *Index) selectLocked(sel *selected, ns string, podLabels map[string]string) {
	nb := ix.buckets[ns]
	mb := ix.mesh
	if nb != nil {
		for _, e := range nb.all {
			sel.add(e)
		}
		for _, e := range nb.exprsOnly {
			if e.matchesPod(podLabels) {
				sel.add(e)
			}
		}
	}
	for _, e := range mb.all {
		sel.add(e)
	}
	for _, e := range mb.exprsOnly {
		if e.matchesPod(podLabels) {
			sel.add(e)
		}
	}
	// One pass over the pod's labels: entries filed under each label in the
	// namespace and mesh-wide, and the namespace's Services selecting the pod.
	inService := false
	for k, v := range podLabels {
		lp := labelPair{k, v}
		for _, e := range mb.byLabel[lp] {
			if e.matchesPod(podLabels) {
				sel.add(e)
			}
		}
		if nb == nil {
			continue
		}
		for _, e := range nb.byLabel[lp] {
			if e.matchesPod(podLabels) {
				sel.add(e)
			}
		}
		for _, s := range nb.svcByLabel[lp] {
			if !s.matches(podLabels) {
				continue
			}
			inService = true
			for _, e := range nb.svcAttached[s.key.Name] {
				sel.dst = appendEntry(sel.dst, e)
			}
			for _, e := range nb.wEntries {
				if s.matches(e.weLabels) {
					sel.dst = appendEntry(sel.dst, e)
				}
			}
		}
	}
	if inService {
		for _, e := range nb.svcAll {
			sel.dst = appendEntry(sel.dst, e)
		}
		for _, e := range mb.svcAll {
			sel.dst = appendEntry(sel.dst, e)
		}
	}
}

// SelectedBy returns the recorded workloads (UpsertWorkload) that an object
// selects, sorted.
func (ix *Index) SelectedBy(key ObjectKey) []WorkloadKey {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	e := ix.entries[key]
	if e == nil {
		return nil
	}
	var out []WorkloadKey
	var buf Features
	for ns, b := range ix.buckets {
		for name, l := range b.workloads {
			buf = ix.appendLocked(buf[:0], ns, l)
			for _, r := range buf {
				if r.Kind == key.Kind && r.Namespace == key.Namespace && r.Name == key.Name {
					out = append(out, WorkloadKey{Namespace: ns, Name: name})
					break
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b WorkloadKey) int {
		if a.Namespace != b.Namespace {
			if a.Namespace < b.Namespace {
				return -1
			}
			return 1
		}
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// Objects lists the indexed mesh objects with their features, sorted.
func (ix *Index) Objects() map[ObjectKey][]Feature {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make(map[ObjectKey][]Feature, len(ix.entries))
	for k, e := range ix.entries {
		out[k] = slices.Clone(e.features)
	}
	return out
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
