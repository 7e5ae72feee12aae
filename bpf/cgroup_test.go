package bpf

import (
	"strings"
	"testing"
)

func TestCgroup2MountFrom(t *testing.T) {
	hybrid := `tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
`
	unified := "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"
	for _, tt := range []struct {
		name, mounts, want string
		err                bool
	}{
		{"hybrid", hybrid, "/sys/fs/cgroup/unified", false},
		{"unified", unified, "/sys/fs/cgroup", false},
		{"v1 only", "cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n", "", true},
	} {
		got, err := cgroup2MountFrom(strings.NewReader(tt.mounts))
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("%s: %q, %v; want %q (error %v)", tt.name, got, err, tt.want, tt.err)
		}
	}
}
