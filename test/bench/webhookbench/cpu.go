package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// Linux).
const clockTick = 10 * time.Millisecond

// cpuShares is the CPU time, user plus system, of this process and of its
// direct children by command name (kube-apiserver, etcd): where a pod
// create's work is done.
type cpuShares map[string]time.Duration

func readCPUShares() cpuShares {
	out := cpuShares{"webhookbench": cpuTime()}
	self := os.Getpid()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15), counted from 1.
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		comm := s[open+1 : closing]
		f := strings.Fields(s[closing+1:])
		if len(f) < 13 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err != nil || ppid != self {
			continue
		}
		utime, err1 := strconv.ParseInt(f[11], 10, 64)
		stime, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out[comm] += time.Duration(utime+stime) * clockTick
	}
	return out
}

// perPod is the CPU each process spent between a and b, per pod, in µs.
func perPod(a, b cpuShares, pods int) map[string]float64 {
	out := map[string]float64{}
	for name, t := range b {
		out[name] = float64((t - a[name]).Microseconds()) / float64(pods)
	}
	return out
}

// cpuTime is this process's user plus system CPU time: the webhook server and
// the load generator both run here.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
