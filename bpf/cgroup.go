package bpf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Cgroup2Mount returns where the cgroup v2 hierarchy is mounted, read from
// /proc/mounts (it is /sys/fs/cgroup on unified hosts and
// /sys/fs/cgroup/unified on hybrid ones).
func Cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return "", fmt.Errorf("open mounts: %w", err)
	}
	defer f.Close()
	return cgroup2MountFrom(f)
}

func cgroup2MountFrom(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == "cgroup2" {
			return fields[1], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read mounts: %w", err)
	}
	return "", errors.New("no cgroup2 mount in /proc/mounts")
}

// CgroupID returns the id of the cgroup v2 folder path: its inode number.
func CgroupID(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat cgroup %s: %w", path, err)
	}
	return st.Ino, nil
}

// ProcessCgroup returns the cgroup v2 folder (below mnt, the hierarchy's
// mount) that this process is in, read from /proc/self/cgroup.
func ProcessCgroup(mnt string) (string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("open /proc/self/cgroup: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return filepath.Join(mnt, rest), nil
		}
	}
	return "", errors.New("no cgroup v2 line in /proc/self/cgroup")
}

// MoveProcess moves this whole process (every thread) into the cgroup v2
// folder path.
func MoveProcess(path string) error {
	if err := os.WriteFile(filepath.Join(path, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("move to cgroup %s: %w", path, err)
	}
	return nil
}
