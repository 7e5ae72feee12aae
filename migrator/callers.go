package migrator

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshshift/meshshift/api/v1alpha1"
	"github.com/meshshift/meshshift/policies"
	"github.com/meshshift/meshshift/signals"
)

// sidecarCallers is the caller-aware check of a wave: for each workload
// whose policies move to the waypoint, the callers the traffic snapshot
// observed that are still on a sidecar and outside the wave's namespaces.
// Sidecar clients bypass waypoints (istio#57213): they would reach the
// workload with no L7 policy enforced. It returns one blocker per workload.
func (r *Reconciler) sidecarCallers(ctx context.Context, wave []string, ns string, moving []string) ([]string, error) {
	if r.Traffic == nil || len(moving) == 0 {
		return nil, nil
	}
	snap := r.Traffic()
	in := map[string]bool{}
	for _, n := range wave {
		in[n] = true
	}
	nsCache := map[string]*corev1.Namespace{}
	wlCache := map[string][]workload{}
	var blockers []string
	for _, key := range moving {
		_, name, _ := strings.Cut(key, "/")
		t, ok := snap.Lookup(ns, name)
		if !ok {
			continue
		}
		var bad []string
		for _, c := range t.Callers {
			if in[c.Namespace] {
				continue
			}
			mode, found, err := r.callerMode(ctx, c, nsCache, wlCache)
			if err != nil {
				return nil, err
			}
			if found && mode == meshv1alpha1.ModeSidecar {
				bad = append(bad, c.String())
			}
		}
		if len(bad) > 0 {
			sort.Strings(bad)
			blockers = append(blockers, fmt.Sprintf("%s/%s: its L7 policies move to the waypoint, but callers still on a sidecar outside this wave would bypass it (istio#57213): %s; migrate them in an earlier wave or in this one",
				ns, key, strings.Join(bad, ", ")))
		}
	}
	return blockers, nil
}

// callerMode is the current mode of a caller workload by its pod template
// and namespace (policies.CurrentMode); found is false when it is gone.
func (r *Reconciler) callerMode(ctx context.Context, c signals.WorkloadKey, nsCache map[string]*corev1.Namespace, wlCache map[string][]workload) (meshv1alpha1.Mode, bool, error) {
	ns, ok := nsCache[c.Namespace]
	if !ok {
		ns = &corev1.Namespace{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: c.Namespace}, ns); err != nil {
			if !apierrors.IsNotFound(err) {
				return "", false, fmt.Errorf("get namespace %s: %w", c.Namespace, err)
			}
			ns = nil
		}
		nsCache[c.Namespace] = ns
	}
	if ns == nil {
		return "", false, nil
	}
	ws, ok := wlCache[c.Namespace]
	if !ok {
		var err error
		if ws, err = r.listWorkloads(ctx, c.Namespace); err != nil {
			return "", false, err
		}
		wlCache[c.Namespace] = ws
	}
	for i := range ws {
		if ws[i].obj.GetName() != c.Name {
			continue
		}
		m, ok := policies.CurrentMode(&policies.Workload{Name: c.Name, Namespace: c.Namespace, Labels: ws[i].template.Labels, Annotations: ws[i].template.Annotations},
			&policies.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations})
		return m, ok, nil
	}
	return "", false, nil
}
