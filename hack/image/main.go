// Command image builds meshshift's container image without Docker or a
// registry (`make image`): cmd/meshshift built static with the Dockerfile's
// flags, in an OCI image with the Dockerfile's user, entrypoint, ports and
// labels, written as a tarball that `docker load` and `ctr images import` read.
//
//	go run ./hack/image -o bin/meshshift-image.tar -tag ghcr.io/meshshift/meshshift:dev
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/meshshift/meshshift/test/image"
)

func main() {
	out := flag.String("o", "bin/meshshift-image.tar", "the tarball to write")
	tag := flag.String("tag", image.MeshshiftRepo+":"+image.MeshshiftLocalTag, "the image's tag")
	version := flag.String("version", "v0.0.0-dev", "the version stamped into the binary (the Dockerfile's VERSION)")
	flag.Parse()
	if err := run(*out, *tag, *version); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(out, tag, version string) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	start := time.Now()
	tmp, err := os.MkdirTemp("", "meshshift-image-")
	if err != nil {
		return fmt.Errorf("create build folder: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	img, err := image.BuildMeshshift(ctx, ".", tmp, version)
	if err != nil {
		return err
	}
	if err := image.Write(out, map[string]v1.Image{tag: img}); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return fmt.Errorf("image digest: %w", err)
	}
	fmt.Printf("image: %s %s in %s (%v)\n", tag, d, out, time.Since(start).Round(time.Millisecond))
	return nil
}
