package agent

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCgroupPath(t *testing.T) {
	const uid = "0f5c3a2e-8b1d-4c6e-9a7f-1234567890ab"
	const cid = "4b825dc642cb6eb9a060e54bf8d69288fbee49044b825dc642cb6eb9a060e54b"
	tests := []struct {
		name string
		path string
		want PodRef
		ok   bool
	}{
		{"systemd containerd burstable", "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f5c3a2e_8b1d_4c6e_9a7f_1234567890ab.slice/cri-containerd-" + cid + ".scope", PodRef{uid, cid}, true},
		{"systemd crio besteffort", "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f5c3a2e_8b1d_4c6e_9a7f_1234567890ab.slice/crio-" + cid + ".scope", PodRef{uid, cid}, true},
		{"systemd guaranteed pod folder", "kubepods.slice/kubepods-pod0f5c3a2e_8b1d_4c6e_9a7f_1234567890ab.slice", PodRef{UID: uid}, true},
		{"cgroupfs", "kubepods/burstable/pod" + uid + "/" + cid, PodRef{uid, cid}, true},
		{"cgroupfs guaranteed", "kubepods/pod" + uid + "/" + cid, PodRef{uid, cid}, true},
		{"nested in kind", "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod0f5c3a2e_8b1d_4c6e_9a7f_1234567890ab.slice", PodRef{UID: uid}, true},
		{"docker scope", "kubepods.slice/kubepods-pod0f5c3a2e_8b1d_4c6e_9a7f_1234567890ab.slice/docker-" + cid + ".scope", PodRef{uid, cid}, true},
		{"system service", "system.slice/containerd.service", PodRef{}, false},
		{"root", ".", PodRef{}, false},
		{"short uid", "kubepods/podabc/x", PodRef{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseCgroupPath(tt.path)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ref (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseCgroupPath(f *testing.F) {
	f.Add("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f5c3a2e_8b1d_4c6e_9a7f_1234567890ab.slice/cri-containerd-4b825dc642cb6eb9a060e54bf8d69288fbee49044b825dc642cb6eb9a060e54b.scope")
	f.Add("kubepods/besteffort/pod0f5c3a2e-8b1d-4c6e-9a7f-1234567890ab/4b825dc642cb6eb9a060e54bf8d69288fbee49044b825dc642cb6eb9a060e54b")
	f.Add("system.slice/containerd.service")
	f.Fuzz(func(t *testing.T, path string) {
		ref, ok := ParseCgroupPath(path)
		if !ok {
			if ref != (PodRef{}) {
				t.Fatalf("not a pod path but ref %+v", ref)
			}
			return
		}
		if len(ref.UID) != 36 || strings.ContainsAny(ref.UID, "_ABCDEF") {
			t.Fatalf("uid %q is not a lower-case dashed UID", ref.UID)
		}
		if ref.Container != "" && len(ref.Container) != 64 {
			t.Fatalf("container id %q is not 64 hex digits", ref.Container)
		}
	})
}
