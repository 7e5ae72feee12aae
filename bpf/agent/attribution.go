package agent

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// PodRef is where a cgroup sits in the kubelet's tree.
type PodRef struct {
	// UID is the pod's UID ("" when the cgroup is not a pod's).
	UID string
	// Container is the container id, when the cgroup is a container's.
	Container string
}

var (
	// systemd driver: kubepods-burstable-pod<uid with _>.slice,
	// kubepods-pod<uid>.slice; cgroupfs driver: pod<uid>.
	podSegment = regexp.MustCompile(`^(?:[a-z-]*kubepods-(?:besteffort-|burstable-|guaranteed-)?)?pod([0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12})(?:\.slice)?$`)
	// cri-containerd-<id>.scope, crio-<id>.scope, docker-<id>.scope, or a
	// bare 64-hex id (cgroupfs driver).
	containerSegment = regexp.MustCompile(`^(?:(?:cri-containerd|crio|docker|containerd)-)?([0-9a-f]{64})(?:\.scope)?$`)
)

// ParseCgroupPath finds the pod (and container) in a cgroup path relative to
// the cgroup v2 root. ok is false when no path segment names a pod.
func ParseCgroupPath(rel string) (ref PodRef, ok bool) {
	segs := strings.Split(filepath.ToSlash(rel), "/")
	for i, s := range segs {
		m := podSegment.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		ref.UID = strings.ReplaceAll(strings.ToLower(m[1]), "_", "-")
		if i+1 < len(segs) {
			if c := containerSegment.FindStringSubmatch(segs[i+1]); c != nil {
				ref.Container = c[1]
			}
		}
		return ref, true
	}
	return PodRef{}, false
}

// WalkCgroups maps the id of every cgroup below root (the cgroup v2 mount,
// or a folder in it) that belongs to a pod, and returns the ids of all
// cgroups found. Folders that vanish during the walk are skipped.
func WalkCgroups(root string) (pods map[uint64]PodRef, all map[uint64]struct{}, err error) {
	pods = make(map[uint64]PodRef)
	all = make(map[uint64]struct{})
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root {
				return err
			}
			return fs.SkipDir // gone or unreadable
		}
		if !d.IsDir() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Stat(path, &st) != nil {
			return fs.SkipDir
		}
		all[st.Ino] = struct{}{}
		rel, _ := filepath.Rel(root, path)
		if ref, ok := ParseCgroupPath(rel); ok {
			pods[st.Ino] = ref
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("walk cgroups under %s: %w", root, err)
	}
	return pods, all, nil
}
