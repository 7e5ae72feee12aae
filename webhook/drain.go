package webhook

import (
	"net/http"
	"sync/atomic"
)

// Drain lets a replica that is shutting down hand its callers to the others
// before its server stops. While draining, every answer carries
// "Connection: close": an HTTP/1.1 client closes the connection after
// reading it, and Go's HTTP/2 server turns it into a GOAWAY, after which the
// client opens new streams on a new connection (which the Service routes to a
// replica still serving) while the streams already sent on this one are
// answered. Without it the API server keeps its keep-alive connection to the
// leaving replica, and a review written on it as the server closes it is
// lost: the API server does not retry it (kubernetes#127335) and, with
// failurePolicy Ignore, admits the pod undecided.
type Drain struct {
	draining atomic.Bool
}

// Start makes every later answer close its connection.
func (d *Drain) Start() { d.draining.Store(true) }

// Draining reports whether Start was called.
func (d *Drain) Draining() bool { return d.draining.Load() }

// Wrap returns h answering with "Connection: close" once draining.
func (d *Drain) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}
