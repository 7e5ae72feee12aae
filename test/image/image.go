package image

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one regular file (or, with Dir, a folder) of an image's layer.
type File struct {
	// Path is the absolute path inside the image, e.g. /usr/local/bin/meshshift.
	Path string
	// Data is the content; ignored for a folder.
	Data []byte
	// Mode is the permission bits (0o755 for a binary).
	Mode int64
	// Dir makes this entry a folder.
	Dir bool
	// UID and GID own the entry (root when zero).
	UID, GID int
}

// Spec is everything an image holds: one layer of files and its config.
type Spec struct {
	Files        []File
	Entrypoint   []string
	Cmd          []string
	User         string
	WorkingDir   string
	Env          []string
	ExposedPorts []string // "9443/tcp"
	Labels       map[string]string
}

// epoch is every file's modification time: the same binary gives the same digest.
var epoch = time.Unix(0, 0).UTC()

// Build lays the files into one layer on an empty OCI image and sets its config.
func Build(s Spec) (v1.Image, error) {
	layer, err := layerOf(s.Files)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = s.Entrypoint
	cf.Config.Cmd = s.Cmd
	cf.Config.User = s.User
	cf.Config.WorkingDir = s.WorkingDir
	cf.Config.Env = s.Env
	cf.Config.Labels = s.Labels
	if len(s.ExposedPorts) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range s.ExposedPorts {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set image config: %w", err)
	}
	return img, nil
}

// layerOf writes the files, their parent folders first, into an uncompressed tar.
func layerOf(files []File) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{"/": true}
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	var addDir func(p string, mode int64, uid, gid int) error
	addDir = func(p string, mode int64, uid, gid int) error {
		if dirs[p] {
			return nil
		}
		if err := addDir(path.Dir(p), 0o755, 0, 0); err != nil {
			return err
		}
		dirs[p] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(p, "/") + "/", Mode: mode, Uid: uid, Gid: gid, ModTime: epoch})
	}
	for _, f := range sorted {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
			return nil, fmt.Errorf("image file path %q: want an absolute, clean path", f.Path)
		}
		if f.Dir {
			if err := addDir(f.Path, f.Mode, f.UID, f.GID); err != nil {
				return nil, fmt.Errorf("write layer: %w", err)
			}
			continue
		}
		if err := addDir(path.Dir(f.Path), 0o755, 0, 0); err != nil {
			return nil, fmt.Errorf("write layer: %w", err)
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.Path, "/"), Mode: f.Mode, Uid: f.UID, Gid: f.GID, Size: int64(len(f.Data)), ModTime: epoch}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("write layer: %w", err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("write layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}
	return l, nil
}

// Write writes images, each under its tag, into one tarball at file (the
// format `docker load` and `ctr images import` read).
func Write(file string, images map[string]v1.Image) error {
	refs := make(map[name.Reference]v1.Image, len(images))
	for tag, img := range images {
		ref, err := name.NewTag(tag, name.StrictValidation)
		if err != nil {
			return fmt.Errorf("image tag %q: %w", tag, err)
		}
		refs[ref] = img
	}
	if err := tarball.MultiRefWriteToFile(file, refs); err != nil {
		return fmt.Errorf("write image tarball %s: %w", file, err)
	}
	return nil
}

// GoBuild builds the main package pkg of the module in dir into out as a
// static binary, with the Dockerfile's flags: CGO_ENABLED=0, -trimpath,
// -ldflags "-s -w" plus ldflags.
func GoBuild(ctx context.Context, dir, pkg, out, ldflags string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", strings.TrimSpace("-s -w "+ldflags), "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, stderr.String())
	}
	return IsStatic(out)
}

// IsStatic fails when the ELF file at p asks for a dynamic loader.
func IsStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("read binary %s: %w", p, err)
	}
	defer func() { _ = f.Close() }()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return errors.New("binary " + p + " is dynamically linked (has an ELF interpreter); build with CGO_ENABLED=0")
		}
	}
	return nil
}

// Nonroot is the user the images run as, the distroless "nonroot" user.
const (
	NonrootUID  = 65532
	NonrootUser = "65532:65532"
)

// baseFiles are the few files a distroless static image has that a Go binary
// may look at: /etc/passwd and /etc/group naming root and nonroot, a
// world-writable /tmp and nonroot's home.
func baseFiles() []File {
	return []File{
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		{Path: "/tmp", Mode: 0o1777, Dir: true},
		{Path: "/home/nonroot", Mode: 0o700, Dir: true, UID: NonrootUID, GID: NonrootUID},
	}
}
