package signals

import (
	"context"
	"fmt"

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

// Watch feeds ix from informers of every type WatchedObjects names, so one
// index serves everything in a manager. A type missing from the cache's scheme,
// or whose CRD the cluster does not
// serve (a mesh that is not installed) is skipped and logged: the index knows
// nothing of it, and installing that CRD later needs a restart.
func Watch(ctx context.Context, informers Informers, ix *Index, log logr.Logger) error {
	onError := func(_ any, err error) { log.Info("mesh object not indexed", "error", err.Error()) }
	for _, obj := range WatchedObjects() {
		cobj, ok := obj.(client.Object)
		if !ok {
			continue
		}
		inf, err := informers.GetInformer(ctx, cobj)
		if err != nil {
			if runtime.IsNotRegisteredError(err) {
				log.Info("mesh object type not watched: not in the manager's scheme", "type", fmt.Sprintf("%T", obj))
				continue
			}
			if apimeta.IsNoMatchError(err) {
				log.Info("mesh object type not watched: the cluster does not serve it", "type", fmt.Sprintf("%T", obj), "kind", obj.GetObjectKind().GroupVersionKind().Kind)
				continue
			}
			return fmt.Errorf("get %T informer: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(ix.EventHandler(onError)); err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
	}
	return nil
}
