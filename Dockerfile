# syntax=docker/dockerfile:1
# One image for the manager (webhooks and migrator) and the node agent:
#   docker build -t ghcr.io/meshshift/meshshift:dev .
#   args: manager ... | agent ...
# The eBPF objects are committed (bpf/*_bpfel.o) and embedded by the Go build,
# so the build needs no clang.

FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS build
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=v0.0.0-dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X github.com/meshshift/meshshift/cmd/meshshift/app.version=${VERSION}" \
      -o /out/meshshift ./cmd/meshshift

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/meshshift /usr/local/bin/meshshift
LABEL org.opencontainers.image.title="meshshift" \
      org.opencontainers.image.description="Moves a Kubernetes fleet from sidecar to sidecarless dataplanes in SLO-gated waves" \
      org.opencontainers.image.source="https://github.com/meshshift/meshshift"
# manager: webhook 9443, metrics 8080, probes 8081; agent: metrics 9990.
EXPOSE 9443 8080 8081 9990
# The agent's DaemonSet runs it as root with only CAP_BPF, CAP_PERFMON and
# CAP_NET_ADMIN; the manager runs as this nonroot user.
# `make image` builds the same image without Docker (test/image keeps the two
# in step).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/meshshift"]
