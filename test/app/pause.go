package main

import (
	"os"
	"os/signal"
	"syscall"
)

// pause blocks until SIGTERM or SIGINT, reaping any child that exits, as a
// pod's sandbox container does.
func pause() error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s == syscall.SIGCHLD {
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		return nil
	}
	return nil
}
