package webhook

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshshift/meshshift/signals"
)

// CapabilityWatcher keeps signals.DetectCapabilities' answer over the cached
// DaemonSets, Deployments and Nodes, recomputed every Interval, so the
// admission path reads it without listing anything.
type CapabilityWatcher struct {
	Cache    client.Reader
	SpireCA  bool
	Interval time.Duration
	Log      logr.Logger

	cur atomic.Pointer[signals.Capabilities]
}

// Get is the latest detection (zero before the first).
func (w *CapabilityWatcher) Get() signals.Capabilities {
	if c := w.cur.Load(); c != nil {
		return *c
	}
	return signals.Capabilities{SpireCA: w.SpireCA}
}

// Refresh detects the capabilities now.
func (w *CapabilityWatcher) Refresh(ctx context.Context) error {
	var ds appsv1.DaemonSetList
	var deps appsv1.DeploymentList
	var nodes corev1.NodeList
	for _, l := range []client.ObjectList{&ds, &deps, &nodes} {
		if err := w.Cache.List(ctx, l, client.UnsafeDisableDeepCopy); err != nil {
			return fmt.Errorf("list %T: %w", l, err)
		}
	}
	c, err := signals.DetectCapabilities(ds.Items, deps.Items, nodes.Items, w.SpireCA)
	if err != nil {
		// Partial: a node with malformed labels is skipped; keep the rest.
		w.Log.Info("capabilities detected with errors", "error", err.Error())
	}
	w.cur.Store(&c)
	return nil
}

// Start refreshes every Interval until ctx ends.
func (w *CapabilityWatcher) Start(ctx context.Context) error {
	interval := w.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	return runEvery(ctx, interval, w.Log, "capability detection failed", w.Refresh)
}

// runEvery calls fn every interval until ctx ends, logging its errors with
// msg; it returns nil when ctx ends.
func runEvery(ctx context.Context, interval time.Duration, log logr.Logger, msg string, fn func(context.Context) error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := fn(ctx); err != nil {
				log.Error(err, msg)
			}
		}
	}
}

// NeedLeaderElection is false: every replica decides.
func (w *CapabilityWatcher) NeedLeaderElection() bool { return false }
