#!/usr/bin/env bash
# Builds the binaries the tests run (a real Kubernetes control plane, a real
# node's kubelet, kube-proxy and containerd, kwok, istiod with istioctl, the
# helm CLI and istiod's chart, and a Prometheus with Kubernetes service discovery) from the Go modules pinned under test/assets/, and caches them
# outside the clone, keyed by a hash of each module's go.mod and go.sum. A
# second run, even from a fresh clone, finds them and costs seconds.
#
#   hack/assets.sh [kube|kwok|istio|containerd|prometheus|node|all]   build (or reuse) and print the folders
#
# Cache root: $MESHSHIFT_ASSETS_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/meshshift/assets.
# test/harness computes the same keys (see test/harness/assets.go).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${MESHSHIFT_ASSETS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshshift/assets}
k8s_version=v1.37.2

say() { printf '%s assets: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# key NAME: the cache folder of the nested module NAME.
key() {
  local m="$root/test/assets/$1"
  printf '%s/%s-%s' "$cache" "$1" "$(cat "$m/go.mod" "$m/go.sum" | sha256sum | cut -c1-16)"
}

# build NAME OUT PKG [LDFLAGS]: go build one tool of module NAME, printing a
# line a minute while it runs (a cold kube-apiserver takes ~8 minutes on 2 cores).
build() {
  local name=$1 out=$2 pkg=$3 ld=${4:-}
  local start=$SECONDS
  say "building $(basename "$out") from $pkg"
  ( while sleep 60; do say "  still building $(basename "$out") ($((SECONDS - start))s)"; done ) &
  local ticker=$!
  local rc=0
  (cd "$root/test/assets/$name" && go build -trimpath -ldflags "-s -w $ld" -o "$out" "$pkg") || rc=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  [ "$rc" -eq 0 ] || { say "build of $pkg failed (exit $rc)"; exit "$rc"; }
  say "built $(basename "$out") in $((SECONDS - start))s"
}

kube() {
  local dir; dir=$(key kube)
  if [ -x "$dir/kube-apiserver" ] && [ -x "$dir/etcd" ] && [ -x "$dir/kube-controller-manager" ] && [ -x "$dir/kube-scheduler" ] \
     && [ -x "$dir/kubelet" ] && [ -x "$dir/kube-proxy" ]; then
    say "kube control plane cached in $dir"; echo "$dir"; return
  fi
  local tmp="$dir.tmp"
  mkdir -p "$tmp"
  local ld="" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=37 -X $p.gitTreeState=clean"
  done
  say "downloading modules for the kube control plane"
  (cd "$root/test/assets/kube" && go mod download)
  [ -x "$tmp/etcd" ] || build kube "$tmp/etcd" go.etcd.io/etcd/server/v3
  [ -x "$tmp/kube-apiserver" ] || build kube "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$ld"
  [ -x "$tmp/kube-scheduler" ] || build kube "$tmp/kube-scheduler" k8s.io/kubernetes/cmd/kube-scheduler "$ld"
  [ -x "$tmp/kube-controller-manager" ] || build kube "$tmp/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager "$ld"
  # A real node: kubelet and kube-proxy, static (no cgo), from the same module.
  [ -x "$tmp/kubelet" ] || CGO_ENABLED=0 build kube "$tmp/kubelet" k8s.io/kubernetes/cmd/kubelet "$ld"
  [ -x "$tmp/kube-proxy" ] || CGO_ENABLED=0 build kube "$tmp/kube-proxy" k8s.io/kubernetes/cmd/kube-proxy "$ld"
  rm -rf "$dir" && mv "$tmp" "$dir"
  say "kube control plane ready in $dir"; echo "$dir"
}

kwok() {
  local dir; dir=$(key kwok)
  if [ -x "$dir/kwok" ] && [ -s "$dir/stages.yaml" ]; then
    say "kwok cached in $dir"; echo "$dir"; return
  fi
  local tmp="$dir.tmp"
  mkdir -p "$tmp"
  (cd "$root/test/assets/kwok" && go mod download)
  build kwok "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok
  # The kwok binary has no stages of its own: ship the set kwokctl uses.
  local src; src=$(cd "$root/test/assets/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
  local f first=1
  : > "$tmp/stages.yaml"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [ -f "$src/$f" ] || { say "kwok stage $src/$f is missing"; exit 1; }
    [ $first -eq 1 ] || echo '---' >> "$tmp/stages.yaml"
    first=0
    cat "$src/$f" >> "$tmp/stages.yaml"
  done
  rm -rf "$dir" && mv "$tmp" "$dir"
  say "kwok ready in $dir"; echo "$dir"
}

containerd() {
  local dir; dir=$(key containerd)
  if [ -x "$dir/containerd" ] && [ -x "$dir/containerd-shim-runc-v2" ] && [ -x "$dir/ctr" ]; then
    say "containerd cached in $dir"; echo "$dir"; return
  fi
  local tmp="$dir.tmp"
  mkdir -p "$tmp"
  say "downloading modules for containerd"
  (cd "$root/test/assets/containerd" && go mod download)
  local t
  for t in containerd containerd-shim-runc-v2 ctr; do
    [ -x "$tmp/$t" ] || CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -tags=no_btrfs" build containerd "$tmp/$t" "github.com/containerd/containerd/v2/cmd/$t"
  done
  rm -rf "$dir" && mv "$tmp" "$dir"
  say "containerd ready in $dir"; echo "$dir"
}

# prometheus: a Prometheus with Kubernetes service discovery, which Debian's
# package lacks; the real-node tests discover the node agents with it.
prometheus() {
  local dir; dir=$(key prometheus)
  if [ -x "$dir/prometheus" ]; then
    say "prometheus cached in $dir"; echo "$dir"; return
  fi
  local tmp="$dir.tmp"
  mkdir -p "$tmp"
  say "downloading modules for prometheus"
  (cd "$root/test/assets/prometheus" && go mod download)
  # Kubernetes discovery only (file, HTTP and static come with the minimum):
  # the cloud discoveries would add their SDKs to the build.
  CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -tags=remove_all_sd,enable_kubernetes_sd" \
    build prometheus "$tmp/prometheus" github.com/prometheus/prometheus/cmd/prometheus
  rm -rf "$dir" && mv "$tmp" "$dir"
  say "prometheus ready in $dir"; echo "$dir"
}

istio() {
  local dir; dir=$(key istio)
  if [ -x "$dir/pilot-discovery" ] && [ -x "$dir/istioctl" ] && [ -x "$dir/helm" ] && [ -d "$dir/istio-discovery" ]; then
    say "istiod cached in $dir"; echo "$dir"; return
  fi
  local tmp="$dir.tmp"
  mkdir -p "$tmp"
  say "downloading modules for istiod"
  (cd "$root/test/assets/istio" && go mod download)
  [ -x "$tmp/pilot-discovery" ] || build istio "$tmp/pilot-discovery" istio.io/istio/pilot/cmd/pilot-discovery
  # istioctl from the same istio module: the tests run `istioctl analyze` as an oracle.
  [ -x "$tmp/istioctl" ] || build istio "$tmp/istioctl" istio.io/istio/istioctl/cmd/istioctl
  [ -x "$tmp/helm" ] || build istio "$tmp/helm" helm.sh/helm/v4/cmd/helm
  # istiod's own chart, which renders the real injector ConfigMap and webhook configuration.
  local src; src=$(cd "$root/test/assets/istio" && go list -m -f '{{.Dir}}' istio.io/istio)/manifests/charts/istio-control/istio-discovery
  rm -rf "$tmp/istio-discovery" && cp -r "$src" "$tmp/istio-discovery" && chmod -R u+w "$tmp/istio-discovery"
  rm -rf "$dir" && mv "$tmp" "$dir"
  say "istiod ready in $dir"; echo "$dir"
}

what=${1:-all}
case "$what" in
  kube) kube ;;
  kwok) kwok ;;
  istio) istio ;;
  containerd) containerd ;;
  prometheus) prometheus ;;
  node) kube; containerd; prometheus ;;
  all) kube; kwok; istio; containerd; prometheus ;;
  *) echo "usage: $0 [kube|kwok|istio|containerd|prometheus|node|all]" >&2; exit 2 ;;
esac
