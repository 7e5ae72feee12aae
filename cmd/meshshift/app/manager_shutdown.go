package app

import (
	"context"
	"os"
	"time"

	"github.com/go-logr/logr"

	"github.com/meshshift/meshshift/webhook"
)

// drainOnSignal returns a context cancelled drain after the first signal:
// in between the webhook answers every review with "Connection: close", so
// the API server moves its connections to the other replicas before this
// one's server stops (a review written on a connection as the server closes
// it is not retried and its pod is admitted undecided). A second signal
// exits at once, as controller-runtime's signal handler does.
func drainOnSignal(parent context.Context, sig <-chan os.Signal, d *webhook.Drain, drain time.Duration, log logr.Logger, exit func(int)) context.Context {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-sig:
		case <-ctx.Done():
			return
		}
		log.Info("draining webhook connections before stopping", "drain", drain.String())
		d.Start()
		t := time.NewTimer(drain)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-sig:
			cancel()
			exit(1)
			return
		case <-ctx.Done():
			return
		}
		if _, ok := <-sig; ok {
			exit(1)
		}
	}()
	return ctx
}
