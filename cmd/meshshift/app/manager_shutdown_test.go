package app

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/meshshift/meshshift/webhook"
)

func TestDrainOnSignal(t *testing.T) {
	t.Run("drains, then stops", func(t *testing.T) {
		sig := make(chan os.Signal, 2)
		d := &webhook.Drain{}
		exited := make(chan int, 1)
		ctx := drainOnSignal(context.Background(), sig, d, 200*time.Millisecond, logr.Discard(), func(c int) { exited <- c })
		if d.Draining() {
			t.Fatal("draining before any signal")
		}
		start := time.Now()
		sig <- syscall.SIGTERM
		<-ctx.Done()
		if !d.Draining() {
			t.Fatal("the manager stopped without draining the webhook first")
		}
		if el := time.Since(start); el < 200*time.Millisecond {
			t.Fatalf("the manager stopped %v after SIGTERM, before the 200ms drain ended", el)
		}
		select {
		case c := <-exited:
			t.Fatalf("exit(%d) after one signal", c)
		default:
		}
		sig <- syscall.SIGTERM
		select {
		case c := <-exited:
			if c != 1 {
				t.Fatalf("second signal exited %d, want 1", c)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a second signal did not exit")
		}
	})
	t.Run("a second signal while draining exits at once", func(t *testing.T) {
		sig := make(chan os.Signal, 2)
		d := &webhook.Drain{}
		exited := make(chan int, 1)
		ctx := drainOnSignal(context.Background(), sig, d, time.Hour, logr.Discard(), func(c int) { exited <- c })
		sig <- os.Interrupt
		sig <- os.Interrupt
		select {
		case c := <-exited:
			if c != 1 {
				t.Fatalf("exit(%d), want 1", c)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a second signal while draining did not exit")
		}
		<-ctx.Done()
	})
}
