//go:build unix

package cli

import (
	"syscall"
	"time"
)

// processCPU is the CPU time the process used (user + system): unlike wall
// time it does not grow while other processes hold the machine's cores.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
