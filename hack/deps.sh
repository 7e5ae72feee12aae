#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks run, when they are
# missing: a real Prometheus server (the SLO gate's tests), iproute2 and
# nftables (the node agent's network-namespace tests, kube-proxy on a real
# node), runc and the CNI plugins (bridge, host-local, loopback) that a real
# node's containerd runs pods with (test/harness). Idempotent and quiet
# when everything is there. `hack/deps.sh clang` adds the pinned eBPF
# toolchain that `make generate` needs.
set -euo pipefail

want=(prometheus:prometheus ip:iproute2 nft:nftables runc:runc /usr/lib/cni/bridge:containernetworking-plugins)
if [ "${1:-}" = clang ]; then
  want=(clang-19:clang-19 llvm-strip-19:llvm-19 bpftool:bpftool)
  [ -f /usr/include/bpf/bpf_helpers.h ] || want+=(missing-libbpf-dev:libbpf-dev)
fi

missing=()
for w in "${want[@]}"; do
  c=${w%%:*}
  if [[ $c == /* ]]; then [ -x "$c" ] || missing+=("${w#*:}"); continue; fi
  command -v "$c" >/dev/null 2>&1 || missing+=("${w#*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
