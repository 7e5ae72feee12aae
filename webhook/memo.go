package webhook

import (
	"bytes"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
)

// answerMemo remembers the pod mutator's last answer for each workload (the
// pod's controller: a ReplicaSet, StatefulSet, DaemonSet or Job). The pods
// of one ReplicaSet come with the same labels and annotations; while those,
// the namespace, the policies, the mesh objects and the capabilities are
// unchanged, the Stabilizer gives the next pod the same decision and the
// patch is the same bytes, so the answer is taken whole from here: the pod's
// labels and annotations are compared raw, never decoded into maps, and
// nothing is decided or encoded again. Only a mutator with a Stabilizer
// uses it (without one every pod is decided afresh, traffic included).
type answerMemo struct {
	mu      sync.Mutex
	max     int
	entries map[memoOwner]*memoEntry
}

type memoOwner struct{ namespace, kind, name string }

// memoEntry is one remembered answer; never changed once stored.
type memoEntry struct {
	labels, annotations []byte // the pod's metadata.labels and .annotations, raw
	hostNetwork         bool
	inputs              inputVersions
	decisions           prometheus.Counter // meshshift_webhook_decisions_total{mode,rule} of the answer
	patch               []byte
	warnings            []string
}

// inputVersions says which state of the caches an answer was made from.
type inputVersions struct {
	namespace, policies, features uint64
	caps                          signals.Capabilities
}

func (a *inputVersions) equal(b *inputVersions) bool {
	return a.namespace == b.namespace && a.policies == b.policies && a.features == b.features &&
		a.caps.Ztunnel == b.caps.Ztunnel && a.caps.Cilium == b.caps.Cilium && a.caps.SpireCA == b.caps.SpireCA &&
		a.caps.Nodes == b.caps.Nodes && slices.Equal(a.caps.MeshNamespaces, b.caps.MeshNamespaces)
}

func newAnswerMemo(max int) *answerMemo {
	return &answerMemo{max: max, entries: map[memoOwner]*memoEntry{}}
}

// get returns the remembered answer when every input matches.
func (m *answerMemo) get(owner memoOwner, labels, annotations []byte, hostNetwork bool, in *inputVersions) (*memoEntry, bool) {
	m.mu.Lock()
	e := m.entries[owner]
	m.mu.Unlock()
	if e == nil || e.hostNetwork != hostNetwork || !e.inputs.equal(in) ||
		!bytes.Equal(e.labels, labels) || !bytes.Equal(e.annotations, annotations) {
		return nil, false
	}
	return e, true
}

// put remembers an answer; e's slices must be its own (not the request's).
// Beyond max owners an arbitrary one is forgotten.
func (m *answerMemo) put(owner memoOwner, e *memoEntry) {
	owner = memoOwner{strings.Clone(owner.namespace), strings.Clone(owner.kind), strings.Clone(owner.name)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.entries[owner]; !ok && len(m.entries) >= m.max {
		for k := range m.entries {
			delete(m.entries, k)
			break
		}
	}
	m.entries[owner] = e
}

// versioned is a FeatureSource that counts its changes (signals.Index).
type versioned interface{ Generation() uint64 }

// versions reads the inputs' versions, and the namespace at the version
// read (the decision is made from that same namespace); ok is false when a
// source cannot say when it changed (no namespace store, or a feature source
// without Generation), and then nothing may be remembered.
func (in *Inputs) versions(namespace string) (v inputVersions, ns policies.Namespace, ok bool) {
	if in.Namespaces == nil || in.Policies == nil {
		return v, ns, false
	}
	ns, v.namespace, _ = in.Namespaces.GetVersion(namespace)
	ns.Name = namespace // an unknown namespace is just its name, as Inputs.namespace says
	v.policies = in.Policies.Version()
	if in.Features != nil {
		g, ok := in.Features.(versioned)
		if !ok {
			return v, ns, false
		}
		v.features = g.Generation()
	}
	if in.Capabilities != nil {
		v.caps = in.Capabilities()
	}
	return v, ns, true
}
