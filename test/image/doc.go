// Package image builds container images without Docker or a registry: static
// Go binaries (CGO_ENABLED=0, the Dockerfile's flags) laid into one layer with
// a minimal /etc/passwd, an OCI image config (entrypoint, user, exposed ports,
// labels), written with go-containerregistry to a tarball that `docker load`
// and `ctr images import` both read.
//
// It knows three images: meshshift's own (the one the Dockerfile describes;
// `make image`, and TestDockerfileAgrees keeps the two from drifting), the
// pause image containerd runs as every pod's sandbox, and the test app of
// test/app. Tests and hack/image use it; production packages must not import
// it, and it imports nothing of meshshift.
package image
