package migrator

import (
	"context"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
)

// FeatureSource says which mesh features select a workload's pods;
// *signals.Index satisfies it.
type FeatureSource interface {
	FeaturesFor(namespace string, podLabels map[string]string) signals.Features
}

// workload is a Deployment, StatefulSet, DaemonSet, ReplicationController,
// Job, CronJob or Argo Rollout.
type workload struct {
	kind     string
	obj      client.Object
	template *corev1.PodTemplateSpec
}

func (w *workload) String() string { return w.kind + "/" + w.obj.GetName() }

// waitsForNextRun is true for Jobs and CronJobs: a wave counts them but does
// not restart them or wait for them; their next run's pods are admitted in
// the namespace's new mode.
func (w *workload) waitsForNextRun() bool { return w.kind == "Job" || w.kind == "CronJob" }

// listWorkloads lists a namespace's Deployments, StatefulSets, DaemonSets,
// ReplicationControllers, Jobs (those a CronJob owns are runs of the
// CronJob), CronJobs and, where the cluster serves them, Argo Rollouts,
// sorted by kind and name.
func (r *Reconciler) listWorkloads(ctx context.Context, ns string) ([]workload, error) {
	var out []workload
	var deps appsv1.DeploymentList
	if err := r.Client.List(ctx, &deps, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list deployments in %s: %w", ns, err)
	}
	for i := range deps.Items {
		d := &deps.Items[i]
		if d.Labels[LabelGatewayName] != "" {
			continue // a gateway's or waypoint's own proxy, which its controller runs
		}
		out = append(out, workload{"Deployment", d, &d.Spec.Template})
	}
	var sts appsv1.StatefulSetList
	if err := r.Client.List(ctx, &sts, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list statefulsets in %s: %w", ns, err)
	}
	for i := range sts.Items {
		s := &sts.Items[i]
		out = append(out, workload{"StatefulSet", s, &s.Spec.Template})
	}
	var dss appsv1.DaemonSetList
	if err := r.Client.List(ctx, &dss, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list daemonsets in %s: %w", ns, err)
	}
	for i := range dss.Items {
		d := &dss.Items[i]
		out = append(out, workload{"DaemonSet", d, &d.Spec.Template})
	}
	more, err := r.listOtherWorkloads(ctx, ns, deps.Items)
	if err != nil {
		return nil, err
	}
	out = append(out, more...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].kind != out[j].kind {
			return out[i].kind < out[j].kind
		}
		return out[i].obj.GetName() < out[j].obj.GetName()
	})
	return out, nil
}

// policyFor is the DataplanePolicy governing a namespace (policies.Select);
// policies that do not compile are skipped (their own status says why).
func (r *Reconciler) policyFor(ctx context.Context, nsLabels map[string]string) *policies.Policy {
	var list meshv1alpha1.DataplanePolicyList
	if err := r.Client.List(ctx, &list); err != nil {
		return policies.Builtin()
	}
	return policies.Select(r.compiled(list.Items), nsLabels)
}

// compiled are the policies of items that compile. A policy is compiled
// once per resourceVersion (its CEL programs are the costly part, and a wave
// asks for every namespace's policy in each step).
func (r *Reconciler) compiled(items []meshv1alpha1.DataplanePolicy) []*policies.Policy {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.compiledPolicies == nil {
		r.compiledPolicies = map[types.UID]compiledPolicy{}
	}
	live := make(map[types.UID]bool, len(items))
	var ps []*policies.Policy
	for i := range items {
		dp := &items[i]
		live[dp.UID] = true
		c, ok := r.compiledPolicies[dp.UID]
		if !ok || c.resourceVersion != dp.ResourceVersion || dp.UID == "" {
			p, errs := policies.Compile(dp)
			c = compiledPolicy{resourceVersion: dp.ResourceVersion}
			if len(errs) == 0 {
				c.policy = p
			}
			if dp.UID != "" {
				r.compiledPolicies[dp.UID] = c
			}
		}
		if c.policy != nil {
			ps = append(ps, c.policy)
		}
	}
	for uid := range r.compiledPolicies {
		if !live[uid] {
			delete(r.compiledPolicies, uid)
		}
	}
	return ps
}

// compiledPolicy is a DataplanePolicy compiled at resourceVersion; policy
// is nil when it does not compile.
type compiledPolicy struct {
	resourceVersion string
	policy          *policies.Policy
}

// decide runs policies.Decide for a workload's pod template in a namespace
// whose annotation asks for mode.
func (r *Reconciler) decide(ns *corev1.Namespace, w *workload, mode meshv1alpha1.Mode, p *policies.Policy, caps signals.Capabilities) policies.Decision {
	d, _ := r.decideWith(ns, w, mode, p, caps, false)
	return d
}

// decideWith is decide; with moved, the selector-attached L7 policies that
// select the workload count as moved to the waypoint (asMoved), and ok says
// whether there were any.
func (r *Reconciler) decideWith(ns *corev1.Namespace, w *workload, mode meshv1alpha1.Mode, p *policies.Policy, caps signals.Capabilities, moved bool) (policies.Decision, bool) {
	ann := make(map[string]string, len(ns.Annotations)+1)
	for k, v := range ns.Annotations {
		ann[k] = v
	}
	ann[meshv1alpha1.AnnotationMode] = string(mode)
	in := policies.Input{
		Workload: policies.Workload{
			Name: w.obj.GetName(), Namespace: ns.Name,
			Labels: w.template.Labels, Annotations: w.template.Annotations,
			HostNetwork: w.template.Spec.HostNetwork, OwnerKind: w.kind, OwnerName: w.obj.GetName(),
			Workload: w.obj.GetName(), Nodes: signals.NodeRequirementOf(&w.template.Spec),
		},
		Namespace:    policies.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ann},
		Now:          r.Clock.Now(),
		Capabilities: caps,
		Policy:       p,
	}
	if r.Features != nil {
		in.Features = r.Features.FeaturesFor(ns.Name, w.template.Labels)
	}
	in.Features = signals.AppendAnnotationFeatures(in.Features, w.template.Annotations)
	ok := false
	if moved {
		in.Features, ok = asMoved(in.Features)
	}
	return policies.Decide(in), ok
}

// nsPlan is what a flip of one namespace involves.
type nsPlan struct {
	// blockers stop the flip; each names the object and why.
	blockers []string
	// notes are workloads that will not take the target mode, and why.
	notes []string
	// waypoint is the Gateway's name when a workload will be ambient-waypoint.
	waypoint string
	// services select ambient-waypoint workloads: their current use-waypoint label.
	services map[string]*string
	// moving are the workloads ("Kind/name") that only selector-attached L7
	// policies keep on a sidecar: with those moved to the waypoint they are
	// ambient-waypoint (spec.policyMigration).
	moving []string
	// movingWaypoint is the waypoint the moving workloads use.
	movingWaypoint string
	// apply is true with spec.policyMigration Apply: the moving workloads
	// are planned as ambient-waypoint, and their policies move in the wave.
	apply bool
	// trapped is true when a moving workload is kept by a deny-all trap
	// (a blocker unless the policies move).
	trapped bool
}

// planNamespace is the precheck of one namespace: the ambient blockers and
// capability fallbacks of policies.Decide over every workload, the policy's
// allowed modes, workloads that cannot restart, degraded PodDisruptionBudgets,
// and the waypoint and Services that ambient-waypoint workloads need.
func (r *Reconciler) planNamespace(ctx context.Context, mm *meshv1alpha1.MeshMigration, ns *corev1.Namespace) (*nsPlan, error) {
	target := mm.Spec.TargetMode
	plan := &nsPlan{services: map[string]*string{}, apply: mm.Spec.PolicyMigration == meshv1alpha1.PolicyMigrationApply}
	p := r.policyFor(ctx, ns.Labels)
	if !p.Allows(ns.Labels, target) {
		plan.blockers = append(plan.blockers, fmt.Sprintf("namespace %s: DataplanePolicy %s does not allow %s here", ns.Name, p.Name(), target))
	}
	caps, err := r.capabilities(ctx)
	if err != nil {
		return nil, err
	}
	ws, err := r.listWorkloads(ctx, ns.Name)
	if err != nil {
		return nil, err
	}
	var svcs corev1.ServiceList
	if err := r.Client.List(ctx, &svcs, client.InNamespace(ns.Name)); err != nil {
		return nil, fmt.Errorf("list services in %s: %w", ns.Name, err)
	}
	for i := range ws {
		w := &ws[i]
		if why := cannotRestart(w); why != "" {
			plan.blockers = append(plan.blockers, ns.Name+"/"+w.String()+": "+why)
		}
		d := r.decide(ns, w, target, p, caps)
		if (d.Rule == policies.RuleDenyAllTrap || d.Rule == policies.RuleFeatureSidecar) && target.Sidecarless() {
			// Only selector-attached L7 policies keep it on a sidecar when,
			// with them moved to the waypoint, it is ambient-waypoint.
			if d2, ok := r.decideWith(ns, w, target, p, caps, true); ok && d2.Mode == meshv1alpha1.ModeAmbientWaypoint {
				plan.moving = append(plan.moving, w.String())
				plan.trapped = plan.trapped || d.Rule == policies.RuleDenyAllTrap
				if plan.movingWaypoint == "" {
					plan.movingWaypoint = d2.Waypoint
				}
				if plan.apply {
					d = d2
				}
			}
		}
		switch {
		case d.Excluded:
			continue
		case d.Rule == policies.RuleDenyAllTrap:
			plan.blockers = append(plan.blockers, ns.Name+"/"+w.String()+": "+d.Reason)
		case (d.Rule == policies.RuleCapabilityFallback || d.Rule == policies.RuleNodeUnserved) && target.Sidecarless():
			plan.blockers = append(plan.blockers, ns.Name+"/"+w.String()+": "+d.Reason)
		case d.Mode != target:
			plan.notes = append(plan.notes, ns.Name+"/"+w.String()+" becomes "+string(d.Mode)+": "+d.Reason)
		}
		if d.Mode == meshv1alpha1.ModeAmbientWaypoint {
			if plan.waypoint == "" {
				plan.waypoint = d.Waypoint
			} else if plan.waypoint != d.Waypoint {
				plan.blockers = append(plan.blockers, fmt.Sprintf("%s/%s: uses waypoint %s while other workloads use %s; one waypoint per namespace is supported",
					ns.Name, w, d.Waypoint, plan.waypoint))
			}
			for j := range svcs.Items {
				s := &svcs.Items[j]
				if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.template.Labels)) {
					plan.services[s.Name] = valueOf(s.Labels, policies.LabelIstioUseWaypoint)
				}
			}
		}
	}
	var pdbs policyv1.PodDisruptionBudgetList
	if err := r.Client.List(ctx, &pdbs, client.InNamespace(ns.Name)); err != nil {
		return nil, fmt.Errorf("list poddisruptionbudgets in %s: %w", ns.Name, err)
	}
	for _, b := range pdbs.Items {
		if b.Status.ObservedGeneration == b.Generation && b.Status.CurrentHealthy < b.Status.DesiredHealthy {
			plan.blockers = append(plan.blockers, fmt.Sprintf("%s/PodDisruptionBudget/%s: %d healthy pods, %d desired; the namespace is already degraded",
				ns.Name, b.Name, b.Status.CurrentHealthy, b.Status.DesiredHealthy))
		}
	}
	return plan, nil
}

// cannotRestart says why a restartedAt change would not replace a workload's
// pods by itself, respecting its rollout strategy; "" when it would.
func cannotRestart(w *workload) string {
	switch o := w.obj.(type) {
	case *appsv1.Deployment:
		if o.Spec.Paused {
			return "the Deployment is paused; its pods would not restart"
		}
	case *appsv1.StatefulSet:
		if o.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
			return "updateStrategy OnDelete: its pods would keep the old mode; use RollingUpdate or restart them yourself"
		}
	case *appsv1.DaemonSet:
		if o.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
			return "updateStrategy OnDelete: its pods would keep the old mode; use RollingUpdate or restart them yourself"
		}
	case *corev1.ReplicationController:
		if o.Spec.Replicas == nil || *o.Spec.Replicas > 0 {
			return "a ReplicationController does not replace its pods when its template changes: they would keep the old mode; move it to a Deployment, or delete its pods yourself after the flip"
		}
	}
	return ""
}

// restartNamespace writes token as the pod-template restartedAt of every
// workload of the namespace that is not excluded from the mesh (an Argo
// Rollout gets spec.restartAt instead, as Argo Rollouts documents); each
// workload's controller then rolls its pods by its own strategy. Jobs and
// CronJobs are not restarted: it returns how many wait for their next run,
// and how many workloads carry the token.
func (r *Reconciler) restartNamespace(ctx context.Context, ns, token string) (restarted, waiting int32, err error) {
	ws, err := r.listWorkloads(ctx, ns)
	if err != nil {
		return 0, 0, err
	}
	for i := range ws {
		w := &ws[i]
		switch {
		case w.template.Spec.HostNetwork:
			continue
		case w.waitsForNextRun():
			waiting++
			continue
		case w.kind == "ReplicationController":
			continue // precheck blocks a wave with one that runs pods
		case w.kind == "Rollout":
			if err := r.restartRollout(ctx, w, token); err != nil {
				return 0, 0, err
			}
			restarted++
			continue
		}
		restarted++
		if w.template.Annotations[AnnotationRestartedAt] == token {
			continue
		}
		patch := client.MergeFrom(w.obj.DeepCopyObject().(client.Object))
		if w.template.Annotations == nil {
			w.template.Annotations = map[string]string{}
		}
		w.template.Annotations[AnnotationRestartedAt] = token
		if err := r.Client.Patch(ctx, w.obj, patch); err != nil {
			return 0, 0, fmt.Errorf("restart %s/%s: %w", ns, w, err)
		}
	}
	return restarted, waiting, nil
}

// namespaceReady says whether every workload of the namespace that carries
// token has rolled out and is Ready; failed is true when one reports that its
// rollout cannot progress (a Deployment past its progress deadline, a
// degraded Rollout). Jobs and CronJobs are not waited for.
func (r *Reconciler) namespaceReady(ctx context.Context, ns, token string) (ready bool, waiting string, failed bool, err error) {
	ws, err := r.listWorkloads(ctx, ns)
	if err != nil {
		return false, "", false, err
	}
	for i := range ws {
		w := &ws[i]
		if w.template.Spec.HostNetwork || w.waitsForNextRun() || w.kind == "ReplicationController" {
			continue
		}
		if w.kind == "Rollout" {
			if ok, why, bad := rolloutRestarted(w, token); !ok {
				return false, ns + "/" + w.String() + ": " + why, bad, nil
			}
			continue
		}
		if w.template.Annotations[AnnotationRestartedAt] != token {
			return false, ns + "/" + w.String() + " not restarted yet", false, nil
		}
		if ok, why, bad := rolledOut(w); !ok {
			return false, ns + "/" + w.String() + ": " + why, bad, nil
		}
	}
	return true, "", false, nil
}

func rolledOut(w *workload) (bool, string, bool) {
	switch o := w.obj.(type) {
	case *appsv1.Deployment:
		want := int32(1)
		if o.Spec.Replicas != nil {
			want = *o.Spec.Replicas
		}
		for _, c := range o.Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
				return false, "progress deadline exceeded", true
			}
		}
		st := &o.Status
		if st.ObservedGeneration < o.Generation || st.UpdatedReplicas != want || st.Replicas != want || st.AvailableReplicas != want {
			why := fmt.Sprintf("%d of %d pods updated and available", min(st.UpdatedReplicas, st.AvailableReplicas), want)
			if old := st.Replicas - st.UpdatedReplicas; old > 0 {
				why += fmt.Sprintf(", %d old still running", old)
			}
			if st.ObservedGeneration < o.Generation {
				why += " (the controller has not seen the restart yet)"
			}
			return false, why, false
		}
	case *appsv1.StatefulSet:
		want := int32(1)
		if o.Spec.Replicas != nil {
			want = *o.Spec.Replicas
		}
		wantUpdated := want
		if ru := o.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
			wantUpdated = max(0, want-*ru.Partition)
		}
		st := &o.Status
		if st.ObservedGeneration < o.Generation || st.UpdatedReplicas < wantUpdated || st.ReadyReplicas != want {
			return false, fmt.Sprintf("%d of %d pods updated, %d ready", st.UpdatedReplicas, wantUpdated, st.ReadyReplicas), false
		}
	case *appsv1.DaemonSet:
		st := &o.Status
		if st.ObservedGeneration < o.Generation || st.UpdatedNumberScheduled != st.DesiredNumberScheduled ||
			st.NumberAvailable != st.DesiredNumberScheduled || st.NumberReady != st.DesiredNumberScheduled {
			return false, fmt.Sprintf("%d of %d pods updated, %d available", st.UpdatedNumberScheduled, st.DesiredNumberScheduled, st.NumberAvailable), false
		}
	}
	return true, "", false
}

// DetectCapabilities reads what the cluster serves the way the webhook does
// (signals.DetectCapabilities over the cached DaemonSets, Deployments and
// Nodes), so the precheck and the webhook's decisions agree. A node with
// malformed agent labels is skipped and logged. spireCA comes from configuration.
func DetectCapabilities(ctx context.Context, c client.Reader, spireCA bool) (signals.Capabilities, error) {
	var dss appsv1.DaemonSetList
	if err := c.List(ctx, &dss); err != nil {
		return signals.Capabilities{}, fmt.Errorf("list daemonsets: %w", err)
	}
	var deps appsv1.DeploymentList
	if err := c.List(ctx, &deps); err != nil {
		return signals.Capabilities{}, fmt.Errorf("list deployments: %w", err)
	}
	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes); err != nil {
		return signals.Capabilities{}, fmt.Errorf("list nodes: %w", err)
	}
	caps, err := signals.DetectCapabilities(dss.Items, deps.Items, nodes.Items, spireCA)
	if err != nil {
		log.FromContext(ctx).Info("node capabilities partly unknown", "error", err.Error())
	}
	return caps, nil
}
