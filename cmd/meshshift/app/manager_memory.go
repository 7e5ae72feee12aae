package app

import (
	"context"
	"runtime"
	"runtime/debug"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// releaseAfterSync returns to the operating system, once, the memory the
// informers' initial lists took: every object is decoded whole before the
// cache's transform trims it, and the Go runtime gives that peak back only
// slowly, so without this the manager's resident memory stays at the peak of
// its start. It runs on every replica (each one's caches are its own).
type releaseAfterSync struct {
	waitForSync func(context.Context) bool
	log         logr.Logger
	// free returns memory to the OS (debug.FreeOSMemory; a test may count it).
	free func()
}

var _ manager.LeaderElectionRunnable = (*releaseAfterSync)(nil)

func (r *releaseAfterSync) NeedLeaderElection() bool { return false }

// Start waits for the caches to sync, releases the memory once, and
// returns (a runnable that returns nil does not stop the manager).
func (r *releaseAfterSync) Start(ctx context.Context) error {
	if !r.waitForSync(ctx) {
		return nil // stopping before the caches synced
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r.free()
	runtime.ReadMemStats(&after)
	r.log.Info("memory of the informers' initial lists returned to the os",
		"heap", after.HeapInuse, "released", int64(after.HeapReleased)-int64(before.HeapReleased))
	return nil
}

// addReleaseAfterSync adds a releaseAfterSync of mgr's cache to mgr.
func addReleaseAfterSync(mgr manager.Manager, log logr.Logger) error {
	return mgr.Add(&releaseAfterSync{waitForSync: mgr.GetCache().WaitForCacheSync, log: log, free: debug.FreeOSMemory})
}
