package agent

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/meshshift/meshshift/bpf"
)

// Counters is what the collector reads: *bpf.Objects in the agent.
type Counters interface {
	Read() (map[uint64]*bpf.Stats, error)
	Forget(ids []uint64) error
}

// PodStats are one pod's counters, summed over its cgroups (including
// cgroups that are gone, so that counters never go down while the pod lives).
type PodStats struct {
	UID string
	// Known is false while the pod resolver does not know the UID; such a
	// pod is exported as unattributed.
	Known bool
	Meta  PodMeta
	Stats bpf.Stats
}

// Aggregate is one collection.
type Aggregate struct {
	Time time.Time
	// Pods sorted by UID.
	Pods []PodStats
	// Unattributed: cgroups that are not a pod's, pods the resolver does not
	// know, and what the kernel could not attribute (cgroup id 0).
	Unattributed bpf.Stats
	// Cgroups is how many cgroups have counters in the kernel.
	Cgroups int
}

// Collector turns per-cgroup counters into per-pod figures.
type Collector struct {
	src  Counters
	root string
	pods PodResolver
	now  func() time.Time
	// WalkEvery bounds how often the cgroup tree is walked when nothing
	// new appeared (a walk also finds removed cgroups).
	walkEvery time.Duration

	mu          sync.Mutex
	refs        map[uint64]PodRef
	nonPod      map[uint64]struct{}
	lastWalk    time.Time
	retired     map[string]*bpf.Stats // pod UID -> counters of removed cgroups
	retiredNone bpf.Stats             // removed cgroups that were no pod's
	last        *Aggregate
}

// NewCollector reads src, attributing cgroups found below cgroupRoot (the
// cgroup v2 mount) and naming pods through pods. now may be nil (time.Now).
func NewCollector(src Counters, cgroupRoot string, pods PodResolver, now func() time.Time) *Collector {
	if now == nil {
		now = time.Now
	}
	return &Collector{
		src: src, root: cgroupRoot, pods: pods, now: now, walkEvery: 30 * time.Second,
		refs: map[uint64]PodRef{}, nonPod: map[uint64]struct{}{}, retired: map[string]*bpf.Stats{},
	}
}

// SetWalkInterval sets how often the cgroup tree is walked when no new
// cgroup appeared (default 30 s; a walk is what finds removed cgroups).
func (c *Collector) SetWalkInterval(d time.Duration) {
	c.mu.Lock()
	c.walkEvery = d
	c.mu.Unlock()
}

// Last returns the latest aggregate (nil before the first Collect).
func (c *Collector) Last() *Aggregate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Collect reads the kernel's counters, attributes them and keeps the result
// as Last.
func (c *Collector) Collect() (*Aggregate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	raw, err := c.src.Read()
	if err != nil {
		return nil, err
	}
	needWalk := now.Sub(c.lastWalk) >= c.walkEvery
	for id := range raw {
		if id == 0 {
			continue
		}
		_, isPod := c.refs[id]
		_, isNot := c.nonPod[id]
		if !isPod && !isNot {
			needWalk = true
			break
		}
	}
	var errs []error
	if needWalk {
		// raw was read before the walk: an id missing from the walk is gone.
		pods, all, err := WalkCgroups(c.root)
		if err != nil {
			return nil, err
		}
		c.lastWalk = now
		old := c.refs
		c.refs = pods
		c.nonPod = map[uint64]struct{}{}
		var gone []uint64
		for id := range raw {
			if id == 0 {
				continue
			}
			if _, ok := all[id]; !ok {
				gone = append(gone, id)
				continue
			}
			if _, ok := pods[id]; !ok {
				c.nonPod[id] = struct{}{}
			}
		}
		for _, id := range gone {
			// One at a time: a cgroup the kernel still counts must not also
			// be retired, or it would be counted twice.
			if err := c.src.Forget([]uint64{id}); err != nil {
				errs = append(errs, err)
				if ref, ok := old[id]; ok {
					c.refs[id] = ref // still counted: keep it with its pod
				}
				continue
			}
			// Only an earlier walk can tell whose the removed folder was.
			if ref, ok := old[id]; ok {
				r := c.retired[ref.UID]
				if r == nil {
					r = &bpf.Stats{}
					c.retired[ref.UID] = r
				}
				r.Add(raw[id])
			} else {
				c.retiredNone.Add(raw[id])
			}
			delete(raw, id)
		}
	}

	agg := &Aggregate{Time: now, Cgroups: len(raw)}
	agg.Unattributed.Add(&c.retiredNone) // a copy would share its Peers map
	byUID := map[string]*PodStats{}
	pod := func(uid string) *PodStats {
		ps := byUID[uid]
		if ps == nil {
			ps = &PodStats{UID: uid}
			ps.Meta, ps.Known = c.pods.Pod(uid)
			byUID[uid] = ps
		}
		return ps
	}
	for id, st := range raw {
		if ref, ok := c.refs[id]; ok {
			pod(ref.UID).Stats.Add(st)
		} else {
			agg.Unattributed.Add(st)
		}
	}
	for uid, st := range c.retired {
		_, live := byUID[uid]
		if _, known := c.pods.Pod(uid); !live && !known {
			delete(c.retired, uid) // the pod is gone for good
			continue
		}
		pod(uid).Stats.Add(st)
	}
	for _, ps := range byUID {
		if !ps.Known {
			agg.Unattributed.Add(&ps.Stats)
		}
		agg.Pods = append(agg.Pods, *ps)
	}
	sort.Slice(agg.Pods, func(i, j int) bool { return agg.Pods[i].UID < agg.Pods[j].UID })
	c.last = agg
	if err := errors.Join(errs...); err != nil {
		return agg, fmt.Errorf("forget removed cgroups: %w", err)
	}
	return agg, nil
}
