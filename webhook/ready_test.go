package webhook

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"
)

// syncer is a cache whose informers have synced or not; one that has not
// blocks until the caller gives up, as controller-runtime's cache does.
type syncer struct{ synced bool }

func (s syncer) WaitForCacheSync(ctx context.Context) bool {
	if s.synced {
		return true
	}
	<-ctx.Done()
	return false
}

func TestInformersSyncedReadiness(t *testing.T) {
	req := httptest.NewRequest("GET", "/readyz", nil)
	start := time.Now()
	if err := informersSynced(syncer{})(req); err == nil {
		t.Fatal("ready before the informers synced: a new replica would decide from empty caches")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("the check waited %v; a probe must get its answer at once", el)
	}
	if err := informersSynced(syncer{synced: true})(req); err != nil {
		t.Fatalf("not ready with synced informers: %v", err)
	}
}
