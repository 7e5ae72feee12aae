package signals

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Informers is the part of a controller-runtime cache that Watch needs.
type Informers interface {
	GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error)
}

// WatchRetry is how often Watch looks again for the mesh object types the
// cluster did not serve when it started.
const WatchRetry = 30 * time.Second

// Watch feeds ix from informers of every type WatchedObjects names, so one
// index serves everything in a manager. A type missing from the cache's scheme
// is skipped and logged. A type whose CRD the cluster does not serve (a mesh
// that is not installed) is looked for again every WatchRetry until ctx ends:
// installing a mesh after meshshift started needs no restart.
func Watch(ctx context.Context, informers Informers, ix *Index, log logr.Logger) error {
	return WatchEvery(ctx, informers, ix, log, WatchRetry)
}

// WatchEvery is Watch, looking for types the cluster does not serve every
// retry.
func WatchEvery(ctx context.Context, informers Informers, ix *Index, log logr.Logger, retry time.Duration) error {
	onError := func(_ any, err error) { log.Info("mesh object not indexed", "error", err.Error()) }
	var missing []client.Object
	for _, obj := range WatchedObjects() {
		cobj, ok := obj.(client.Object)
		if !ok {
			continue
		}
		served, err := watchType(ctx, informers, ix, cobj, onError)
		switch {
		case runtime.IsNotRegisteredError(err):
			log.Info("mesh object type not watched: not in the manager's scheme", "type", fmt.Sprintf("%T", obj))
		case err != nil:
			return err
		case !served:
			log.Info("mesh object type not served by the cluster yet: looking again", "kind", kindOf(cobj), "every", retry.String())
			missing = append(missing, cobj)
		}
	}
	if len(missing) > 0 {
		go watchLater(ctx, informers, ix, missing, retry, log, onError)
	}
	return nil
}

// watchType adds ix's handler to obj's informer; served is false when the
// cluster does not serve obj's type.
func watchType(ctx context.Context, informers Informers, ix *Index, obj client.Object, onError func(any, error)) (served bool, err error) {
	inf, err := informers.GetInformer(ctx, obj)
	if apimeta.IsNoMatchError(err) {
		return false, nil
	}
	if err != nil {
		if runtime.IsNotRegisteredError(err) {
			return false, err
		}
		return false, fmt.Errorf("get %s informer: %w", kindOf(obj), err)
	}
	if _, err := inf.AddEventHandler(ix.EventHandler(onError)); err != nil {
		return false, fmt.Errorf("watch %s: %w", kindOf(obj), err)
	}
	return true, nil
}

// watchLater looks for the missing types every retry until each is served
// (then watched) or ctx ends.
func watchLater(ctx context.Context, informers Informers, ix *Index, missing []client.Object, retry time.Duration, log logr.Logger, onError func(any, error)) {
	t := time.NewTicker(retry)
	defer t.Stop()
	for len(missing) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		left := missing[:0]
		for _, obj := range missing {
			served, err := watchType(ctx, informers, ix, obj, onError)
			switch {
			case err != nil:
				log.Error(err, "mesh object type not watched", "kind", kindOf(obj))
				left = append(left, obj)
			case served:
				log.Info("mesh object type now served by the cluster: watching it", "kind", kindOf(obj))
			default:
				left = append(left, obj)
			}
		}
		missing = left
	}
}

func kindOf(obj client.Object) string {
	if k := obj.GetObjectKind().GroupVersionKind().Kind; k != "" {
		return k
	}
	return fmt.Sprintf("%T", obj)
}
