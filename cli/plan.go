package cli

import (
	"fmt"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
)

// Options are what plan, explain and precheck are asked.
type Options struct {
	// Target, when set, plans a migration toward this mode: every selected
	// namespace is treated as if the migrator had written its
	// meshshift.io/mode annotation. Empty decides the objects as they are.
	Target meshv1alpha1.Mode
	// Namespaces limits the plan to these namespaces; empty means all.
	Namespaces []string
	// Waves is how many waves to propose (default 3).
	Waves int
	// Ztunnel and Cilium override what the objects say about the cluster.
	Ztunnel, Cilium *bool
	// Now is the clock reading used to judge traffic staleness.
	Now time.Time
}

// Sidecar resource requests assumed when a workload names none (Istio's
// defaults for istio-proxy).
var (
	DefaultSidecarCPU    = resource.MustParse("100m")
	DefaultSidecarMemory = resource.MustParse("128Mi")
)

// Row is one workload's decision in a plan.
type Row struct {
	Namespace   string             `json:"namespace"`
	Workload    string             `json:"workload"`
	Kind        string             `json:"kind"`
	Replicas    int32              `json:"replicas"`
	CurrentMode string             `json:"currentMode"`
	Mode        meshv1alpha1.Mode  `json:"mode"`
	Rule        string             `json:"rule"`
	Reason      string             `json:"reason"`
	Waypoint    string             `json:"waypoint,omitempty"`
	Policy      string             `json:"policy"`
	Warnings    []string           `json:"warnings,omitempty"`
	Changes     bool               `json:"changes"`
	Wave        int                `json:"wave,omitempty"`
	FreedCPU    *resource.Quantity `json:"freedCPU,omitempty"`
	FreedMemory *resource.Quantity `json:"freedMemory,omitempty"`
}

// Wave is one proposed wave: namespaces flipped together.
type Wave struct {
	Index      int      `json:"index"`
	Namespaces []string `json:"namespaces"`
	// Workloads is how many workloads change mode in the wave.
	Workloads int `json:"workloads"`
	// Risk scores what could go wrong: 1 per workload going ambient, 2 per
	// workload going to Cilium, 3 per workload needing a waypoint, 5 per
	// workload a blocker keeps on its sidecar in a flipped namespace.
	Risk        int               `json:"risk"`
	FreedCPU    resource.Quantity `json:"freedCPU"`
	FreedMemory resource.Quantity `json:"freedMemory"`
}

// Plan is the decisions and the proposed waves.
type Plan struct {
	Rows  []Row  `json:"rows"`
	Waves []Wave `json:"waves"`
	// Blocked are the namespaces left out of the waves: a workload in them
	// would break (the DENY-all trap) or the cluster cannot serve its mode;
	// the migrator's precheck would stop such a wave.
	Blocked []BlockedNamespace `json:"blocked,omitempty"`
	Notes   []string           `json:"notes,omitempty"`
}

// BlockedNamespace is a namespace no wave may flip yet, and why.
type BlockedNamespace struct {
	Namespace string   `json:"namespace"`
	Reasons   []string `json:"reasons"`
}

// Evaluated is one workload with the exact input Decide was called with and
// its answer.
type Evaluated struct {
	W        *WorkloadInfo
	Input    policies.Input
	Decision policies.Decision
	// Current is the mode the workload runs in now ("" when unknown).
	Current meshv1alpha1.Mode
}

// selected reports whether a namespace is in the options' scope.
func (o *Options) selected(ns string) bool {
	return len(o.Namespaces) == 0 || slices.Contains(o.Namespaces, ns)
}

// capabilities are the inventory's, with the options' overrides.
func (inv *Inventory) capabilities(o *Options) signals.Capabilities {
	c := inv.Capabilities
	if o.Ztunnel != nil {
		c.Ztunnel = *o.Ztunnel
	}
	if o.Cilium != nil {
		c.Cilium = *o.Cilium
	}
	return c
}

// Input builds Decide's input for one workload.
func (inv *Inventory) Input(w *WorkloadInfo, o *Options) policies.Input {
	nsObj := inv.Namespaces[w.Namespace]
	ns := policies.Namespace{Name: w.Namespace}
	if nsObj != nil {
		ns.Labels, ns.Annotations = nsObj.Labels, nsObj.Annotations
	}
	if o.Target != "" && !slices.Contains(policies.SystemNamespaces, w.Namespace) {
		ann := make(map[string]string, len(ns.Annotations)+1)
		for k, v := range ns.Annotations {
			ann[k] = v
		}
		ann[meshv1alpha1.AnnotationMode] = string(o.Target)
		ns.Annotations = ann
	}
	t := &w.Template
	// The pod's controller as the webhook sees it (a Rollout's pods belong to
	// its ReplicaSets, a CronJob's Job pods are keyed on the CronJob).
	ownerKind := map[string]string{"Deployment": "ReplicaSet", "StatefulSet": "StatefulSet", "DaemonSet": "DaemonSet",
		"ReplicationController": "ReplicationController", "Job": "Job", "CronJob": "CronJob", "Rollout": "ReplicaSet"}[w.Kind]
	ownerName := ""
	if ownerKind != "" {
		ownerName = w.Name
	}
	name := t.Name
	if name == "" {
		name = w.Name
	}
	in := policies.Input{
		Workload: policies.Workload{
			Name: name, Namespace: w.Namespace, Labels: t.Labels, Annotations: t.Annotations,
			HostNetwork: t.Spec.HostNetwork, OwnerKind: ownerKind, OwnerName: ownerName, Workload: w.Name,
			Nodes: signals.NodeRequirementOf(&t.Spec),
		},
		Namespace:    ns,
		Features:     signals.AppendAnnotationFeatures(inv.Index.FeaturesFor(w.Namespace, t.Labels), t.Annotations),
		Now:          o.Now,
		Capabilities: inv.capabilities(o),
		Policy:       policies.Select(inv.Policies, ns.Labels),
	}
	if tr, ok := inv.Traffic.Lookup(w.Namespace, w.Name); ok {
		in.Traffic, in.HasTraffic = tr, true
	}
	return in
}

// Evaluate decides every workload in scope with policies.Decide.
func (inv *Inventory) Evaluate(o *Options) []Evaluated {
	out := make([]Evaluated, 0, len(inv.Workloads))
	for _, w := range inv.Workloads {
		if !o.selected(w.Namespace) {
			continue
		}
		in := inv.Input(w, o)
		// The current mode is read from the objects as they are, without the
		// simulated target annotation.
		cur, _ := policies.CurrentMode(&in.Workload, &policies.Namespace{Name: w.Namespace,
			Labels: inv.Namespaces[w.Namespace].Labels, Annotations: inv.Namespaces[w.Namespace].Annotations})
		out = append(out, Evaluated{W: w, Input: in, Decision: policies.Decide(in), Current: cur})
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// sidecarRequests are the CPU and memory one sidecar of the workload requests:
// its istio-proxy container's requests, else Istio's proxyCPU/proxyMemory
// annotations, else Istio's defaults.
func sidecarRequests(t *corev1.PodTemplateSpec) (cpu, mem resource.Quantity) {
	cpu, mem = DefaultSidecarCPU.DeepCopy(), DefaultSidecarMemory.DeepCopy()
	for _, c := range append(slices.Clone(t.Spec.InitContainers), t.Spec.Containers...) {
		if c.Name != "istio-proxy" {
			continue
		}
		if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
			cpu = q.DeepCopy()
		}
		if q, ok := c.Resources.Requests[corev1.ResourceMemory]; ok {
			mem = q.DeepCopy()
		}
		return cpu, mem
	}
	if v, ok := t.Annotations["sidecar.istio.io/proxyCPU"]; ok {
		if q, err := resource.ParseQuantity(v); err == nil {
			cpu = q
		}
	}
	if v, ok := t.Annotations["sidecar.istio.io/proxyMemory"]; ok {
		if q, err := resource.ParseQuantity(v); err == nil {
			mem = q
		}
	}
	return cpu, mem
}

func times(q resource.Quantity, n int32) resource.Quantity {
	if q.Format == resource.BinarySI {
		return *resource.NewQuantity(q.Value()*int64(n), resource.BinarySI)
	}
	return *resource.NewMilliQuantity(q.MilliValue()*int64(n), q.Format)
}

// BuildPlan decides every workload and proposes waves: the namespaces where
// at least one workload changes mode, lowest risk first, then most resources
// freed, then by name, cut into o.Waves waves of near-equal size. Toward
// ambient-waypoint, a workload kept on its sidecar only by selector-attached
// L7 policies is planned as moving them to its waypoint, and the namespaces
// of its observed callers on sidecars (the traffic snapshot's Callers) come
// in an earlier wave or the same one (callers calling each other share a
// wave); a caller that stays on its sidecar blocks the callee's namespace.
func BuildPlan(inv *Inventory, o *Options) *Plan {
	p := &Plan{Notes: inv.Notes}
	type nsScore struct {
		name      string
		blocked   []string
		risk      int
		workloads int
		cpu, mem  resource.Quantity
	}
	scores := map[string]*nsScore{}
	var movers []planMover
	flips := map[signals.WorkloadKey]bool{}
	evals := inv.Evaluate(o)
	if len(evals) > 0 {
		p.Rows = make([]Row, 0, len(evals))
	}
	for _, e := range evals {
		d := &e.Decision
		// A workload whose L7 policies move to its waypoint is planned in
		// the mode it gets once they have moved.
		eff := d
		moved, isMove := policyMove(&e, o)
		if isMove {
			eff = &moved
			movers = append(movers, planMover{namespace: e.W.Namespace, name: e.W.Name, waypoint: moved.Waypoint})
		}
		cur := string(e.Current)
		if cur == "" {
			cur = "unknown"
		}
		r := Row{Namespace: e.W.Namespace, Workload: e.W.Name, Kind: e.W.Kind, Replicas: e.W.Replicas,
			CurrentMode: cur, Mode: eff.Mode, Rule: eff.Rule, Reason: eff.Reason, Waypoint: eff.Waypoint,
			Policy: eff.Policy, Warnings: eff.Warnings, Changes: e.Current != eff.Mode}
		if r.Changes && !eff.Excluded && eff.Mode != meshv1alpha1.ModeSidecar {
			flips[signals.WorkloadKey{Namespace: e.W.Namespace, Name: e.W.Name}] = true
		}
		s := scores[e.W.Namespace]
		if s == nil {
			s = &nsScore{name: e.W.Namespace}
			scores[e.W.Namespace] = s
		}
		if r.Changes && !d.Excluded {
			s.workloads++
			switch eff.Mode {
			case meshv1alpha1.ModeAmbient:
				s.risk++
			case meshv1alpha1.ModeCilium:
				s.risk += 2
			case meshv1alpha1.ModeAmbientWaypoint:
				s.risk += 3
			}
			if e.Current == meshv1alpha1.ModeSidecar && eff.Mode != meshv1alpha1.ModeSidecar {
				cpu, mem := sidecarRequests(&e.W.Template)
				fc, fm := times(cpu, e.W.Replicas), times(mem, e.W.Replicas)
				r.FreedCPU, r.FreedMemory = &fc, &fm
				s.cpu.Add(fc)
				s.mem.Add(fm)
			}
		}
		if d.Rule == policies.RuleDenyAllTrap || d.Rule == policies.RuleFeatureSidecar {
			s.risk += 5
		}
		if (d.Rule == policies.RuleDenyAllTrap && !isMove) || ((d.Rule == policies.RuleCapabilityFallback || d.Rule == policies.RuleNodeUnserved) && o.Target.Sidecarless()) {
			s.blocked = append(s.blocked, e.W.Name+": "+d.Reason)
		}
		if why := cannotRestart(e.W); why != "" && r.Changes && o.Target != "" {
			s.blocked = append(s.blocked, e.W.Name+": "+why)
		}
		p.Rows = append(p.Rows, r)
	}
	// The callers of workloads whose L7 policies move to a waypoint leave
	// their sidecars first (or in the same wave); a namespace they cannot
	// wait for is blocked.
	// A namespace whose L7 policies cannot all move safely is refused by
	// the migrator's precheck: plan blocks it too.
	moveBlocks, err := policyMoveBlocks(inv, o, evals)
	if err != nil {
		p.Notes = append(slices.Clone(p.Notes), err.Error())
	}
	for ns, why := range moveBlocks {
		if s := scores[ns]; s != nil {
			s.blocked = append(s.blocked, why...)
		}
	}
	blockedNS := map[string][]string{}
	for _, s := range scores {
		if len(s.blocked) > 0 {
			blockedNS[s.name] = s.blocked
		}
	}
	edges, notes := callerOrder(inv, o, movers, flips, blockedNS)
	if len(notes) > 0 {
		p.Notes = append(slices.Clone(p.Notes), notes...)
	}
	var cands []*nsScore
	for _, s := range scores {
		s.blocked = blockedNS[s.name]
		switch {
		case len(s.blocked) > 0:
			p.Blocked = append(p.Blocked, BlockedNamespace{Namespace: s.name, Reasons: s.blocked})
		case s.workloads > 0:
			cands = append(cands, s)
		}
	}
	sort.Slice(p.Blocked, func(i, j int) bool { return p.Blocked[i].Namespace < p.Blocked[j].Namespace })
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.risk != b.risk {
			return a.risk < b.risk
		}
		if c := a.cpu.Cmp(b.cpu); c != 0 {
			return c > 0
		}
		if c := a.mem.Cmp(b.mem); c != 0 {
			return c > 0
		}
		return a.name < b.name
	})
	n := o.Waves
	if n <= 0 {
		n = 3
	}
	if n > len(cands) {
		n = len(cands)
	}
	byName := make(map[string]*nsScore, len(cands))
	sorted := make([]string, len(cands))
	for i, s := range cands {
		byName[s.name] = s
		sorted[i] = s.name
	}
	waveOf := map[string]int{}
	for i, names := range orderWaves(sorted, edges, n) {
		w := Wave{Index: i + 1}
		for _, name := range names {
			s := byName[name]
			w.Namespaces = append(w.Namespaces, s.name)
			w.Workloads += s.workloads
			w.Risk += s.risk
			w.FreedCPU.Add(s.cpu)
			w.FreedMemory.Add(s.mem)
			waveOf[s.name] = i + 1
		}
		p.Waves = append(p.Waves, w)
	}
	for i := range p.Rows {
		if p.Rows[i].Changes {
			p.Rows[i].Wave = waveOf[p.Rows[i].Namespace]
		}
	}
	return p
}

// Migration returns a MeshMigration running the plan's waves toward target.
func (p *Plan) Migration(name string, target meshv1alpha1.Mode) (*meshv1alpha1.MeshMigration, error) {
	if len(p.Waves) == 0 {
		return nil, fmt.Errorf("no wave to migrate: no workload changes mode")
	}
	mm := &meshv1alpha1.MeshMigration{}
	mm.APIVersion = meshv1alpha1.GroupVersion.String()
	mm.Kind = "MeshMigration"
	mm.Name = name
	mm.Spec.TargetMode = target
	for _, w := range p.Waves {
		mm.Spec.Waves = append(mm.Spec.Waves, meshv1alpha1.WaveSpec{Name: fmt.Sprintf("wave-%d", w.Index), Namespaces: w.Namespaces})
	}
	return mm, nil
}
