package app

import (
	"context"
	"testing"
)

func TestReleaseAfterSyncOnceSynced(t *testing.T) {
	for _, synced := range []bool{true, false} {
		freed := 0
		r := &releaseAfterSync{waitForSync: func(context.Context) bool { return synced }, free: func() { freed++ }}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[synced]; freed != want {
			t.Errorf("synced %v: memory released %d times, want %d", synced, freed, want)
		}
	}
	if (&releaseAfterSync{}).NeedLeaderElection() {
		t.Error("releaseAfterSync waits for the leader election: every replica holds its own caches")
	}
}
