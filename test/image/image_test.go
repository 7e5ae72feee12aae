package image

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestBuildWriteRead builds the test app and pause images, writes both into
// one tarball and reads them back: config, static binary, passwd entry.
func TestBuildWriteRead(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds a Go binary with the go tool; run without -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	app, pause, err := BuildTestApp(ctx, filepath.Join("..", ".."), tmp)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(tmp, "images.tar")
	if err := Write(file, map[string]v1.Image{TestAppTag: app, PauseTag: pause}); err != nil {
		t.Fatal(err)
	}
	for tag, wantEntry := range map[string][]string{TestAppTag: {TestAppBinary}, PauseTag: {TestAppBinary, "pause"}} {
		ref, err := name.NewTag(tag)
		if err != nil {
			t.Fatal(err)
		}
		img, err := tarball.ImageFromPath(file, &ref)
		if err != nil {
			t.Fatalf("read %s back: %v", tag, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantEntry, cf.Config.Entrypoint); diff != "" {
			t.Errorf("%s entrypoint (-want +got):\n%s", tag, diff)
		}
		if cf.OS != "linux" || cf.Architecture == "" {
			t.Errorf("%s platform %s/%s, want linux/<arch>", tag, cf.OS, cf.Architecture)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("%s layers = %d (%v), want 1", tag, len(layers), err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(tr)
			files["/"+strings.TrimSuffix(h.Name, "/")] = b
		}
		_ = rc.Close()
		if !strings.Contains(string(files["/etc/passwd"]), "nonroot:x:65532:65532:") {
			t.Errorf("%s /etc/passwd lacks nonroot 65532: %q", tag, files["/etc/passwd"])
		}
		bin := filepath.Join(t.TempDir(), "bin")
		if err := os.WriteFile(bin, files[TestAppBinary], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := IsStatic(bin); err != nil {
			t.Error(err)
		}
	}
}

// TestIsStaticRejectsDynamic: a binary with an ELF interpreter is refused.
func TestIsStaticRejectsDynamic(t *testing.T) {
	if err := IsStatic("/bin/sh"); err == nil {
		t.Fatal("IsStatic(/bin/sh) = nil, want an error (it is dynamically linked)")
	}
}

// TestWriteRejectsBadTag: a tag that is not a valid reference is named in the error.
func TestWriteRejectsBadTag(t *testing.T) {
	img, err := Build(Spec{Entrypoint: []string{"/x"}})
	if err != nil {
		t.Fatal(err)
	}
	err = Write(filepath.Join(t.TempDir(), "x.tar"), map[string]v1.Image{"Bad Tag": img})
	if err == nil || !strings.Contains(err.Error(), `"Bad Tag"`) {
		t.Fatalf("Write with a bad tag: %v, want an error naming it", err)
	}
}
