package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Tags of the images this package builds.
const (
	// MeshshiftRepo is the repository the shipped manifests name.
	MeshshiftRepo = "ghcr.io/meshshift/meshshift"
	// MeshshiftLocalTag is the tag `make image` and the tests give the image
	// built from the working tree.
	MeshshiftLocalTag = "dev"
	// PauseTag is the sandbox image containerd 2.4 runs for every pod
	// (its default pinned_images.sandbox).
	PauseTag = "registry.k8s.io/pause:3.10.2"
	// TestAppTag is test/app's image: the HTTP server and the load client.
	TestAppTag = "localhost/meshshift-testapp:dev"
)

// versionVar is the variable the Dockerfile stamps with -X.
const versionVar = "github.com/meshshift/meshshift/cmd/meshshift/app.version"

// MeshshiftBinary is where the Dockerfile copies the binary; the entrypoint.
const MeshshiftBinary = "/usr/local/bin/meshshift"

// MeshshiftLabels are the Dockerfile's LABELs.
var MeshshiftLabels = map[string]string{
	"org.opencontainers.image.title":       "meshshift",
	"org.opencontainers.image.description": "Moves a Kubernetes fleet from sidecar to sidecarless dataplanes in SLO-gated waves",
	"org.opencontainers.image.source":      "https://github.com/meshshift/meshshift",
}

// MeshshiftPorts are the Dockerfile's EXPOSEd ports.
var MeshshiftPorts = []string{"9443/tcp", "8080/tcp", "8081/tcp", "9990/tcp"}

// MeshshiftSpec is the image the Dockerfile describes, around binary (the
// content of cmd/meshshift built static).
func MeshshiftSpec(binary []byte) Spec {
	return Spec{
		Files:        append(baseFiles(), File{Path: MeshshiftBinary, Data: binary, Mode: 0o755}),
		Entrypoint:   []string{MeshshiftBinary},
		User:         NonrootUser,
		Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		ExposedPorts: MeshshiftPorts,
		Labels:       MeshshiftLabels,
	}
}

// BuildMeshshift builds cmd/meshshift of the module at root (static, with
// the Dockerfile's flags and version) into tmp and returns its image.
func BuildMeshshift(ctx context.Context, root, tmp, version string) (v1.Image, error) {
	bin := filepath.Join(tmp, "meshshift")
	if err := GoBuild(ctx, root, "./cmd/meshshift", bin, "-X "+versionVar+"="+version); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read meshshift binary: %w", err)
	}
	return Build(MeshshiftSpec(b))
}

// TestAppBinary is where test/app's binary lives in its image and in the pause image.
const TestAppBinary = "/testapp"

// BuildTestApp builds test/app of the module at root into tmp and returns
// two images: the test app (entrypoint /testapp, as nonroot) and a pause
// image (the same binary run as `/testapp pause`: it sleeps until SIGTERM
// and reaps children, which is all a sandbox container does).
func BuildTestApp(ctx context.Context, root, tmp string) (app, pause v1.Image, err error) {
	bin := filepath.Join(tmp, "testapp")
	if err := GoBuild(ctx, root, "./test/app", bin, ""); err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, nil, fmt.Errorf("read test app binary: %w", err)
	}
	files := append(baseFiles(), File{Path: TestAppBinary, Data: b, Mode: 0o755})
	app, err = Build(Spec{Files: files, Entrypoint: []string{TestAppBinary}, User: NonrootUser, ExposedPorts: []string{"8080/tcp"}})
	if err != nil {
		return nil, nil, err
	}
	pause, err = Build(Spec{Files: files, Entrypoint: []string{TestAppBinary, "pause"}, User: "65535:65535"})
	if err != nil {
		return nil, nil, err
	}
	return app, pause, nil
}
