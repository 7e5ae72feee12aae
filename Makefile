# meshshift — `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO          ?= go
PKGS        ?= ./...
TEST_FLAGS  ?= -count=1 -timeout 40m
FUZZTIME    ?= 10s
# Minimizing a new input runs the target many times; in a big test binary
# (webhook, policies: controller-runtime, cel-go) that stalls fuzzing for
# tens of seconds, so it is capped.
FUZZMINIMIZE ?= 2s
CONTROLLER_GEN := $(GO) tool controller-gen
GOLANGCI_LINT  := $(GO) tool -modfile=hack/tools/go.mod golangci-lint

##@ General
.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Build
.PHONY: build
build: ## Build bin/meshshift.
	$(GO) build -o bin/meshshift ./cmd/meshshift

.PHONY: generate
generate: ## Regenerate deepcopy code and the eBPF objects (installs clang-19 when missing).
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: ## Regenerate CRDs and RBAC from the code's markers.
	$(CONTROLLER_GEN) crd rbac:roleName=meshshift-manager paths=./... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

##@ Test
.PHONY: deps
deps: ## Install the Debian packages the tests need (prometheus, iproute2, nftables) when missing.
	hack/deps.sh

.PHONY: assets
assets: ## Build (or reuse from the cache) the real control plane, kwok, istiod and istioctl, a real node (kubelet, kube-proxy, containerd) and Prometheus the tests run.
	hack/assets.sh all >/dev/null

.PHONY: test
test: deps assets ## Run every test: unit, integration against the real control plane, eBPF in the real kernel.
	@# The agent's packages run last and alone: their tests compare latencies the
	@# kernel measured with the client's own, which other packages' control
	@# planes running at the same time on a small machine would skew.
	$(GO) test $(TEST_FLAGS) $$($(GO) list $(PKGS) | grep -v '/meshshift/bpf')
	bpf=$$($(GO) list $(PKGS) | grep '/meshshift/bpf' || true); [ -z "$$bpf" ] || $(GO) test $(TEST_FLAGS) -p 1 $$bpf

.PHONY: test-unit
test-unit: ## Run the unit tests only (no control plane, no root).
	$(GO) test -short -count=1 $(PKGS)

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 10s); seed corpora run in every `make test` anyway.
	@for d in $$(grep -rlE '^func Fuzz' --include='*_test.go' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -hoE '^func Fuzz[A-Za-z0-9_]+' $$d/*_test.go | cut -d' ' -f2); do \
	    echo "fuzz: $$d $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $$d || exit 1; \
	  done; \
	done

.PHONY: bench
bench: bench-decide bench-webhook bench-agent bench-agent-rss ## Every benchmark: decisions, webhook, node agent (root).

.PHONY: bench-decide
bench-decide: ## policies.Decide with 10 rules over a 10,000-object index, and index updates.
	$(GO) test -run '^$$' -bench 'BenchmarkDecide' -benchmem ./policies/
	$(GO) test -run '^$$' -bench 'BenchmarkIndexUpdate|BenchmarkFeaturesFor' -benchmem ./signals/

##@ Quality
.PHONY: lint
lint: ## Run golangci-lint (v2, pinned in hack/tools).
	$(GOLANGCI_LINT) run ./...

.PHONY: verify
verify: generate manifests ## Regenerate everything, then fail if the tree changed; gofmt and go vet clean.
	@changed=$$(git status --porcelain -- api config bpf); \
	if [ -n "$$changed" ]; then echo "generated files are stale (run make generate manifests):"; echo "$$changed"; git diff --stat -- api config bpf; exit 1; fi
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

##@ Run
.PHONY: demo
demo: deps assets ## On a real node (root): meshshift from config/default and make image, real traffic, a breaking wave rolled back on the agent's figures; last line sums it up.
	@$(GO) test -c -tags realnodedemo -o bin/meshshift-demo-realnode ./test/demo
	@cd test/demo && ../../bin/meshshift-demo-realnode -test.run '^TestDemoRealNode$$' -test.timeout 15m

.PHONY: demo-sim
demo-sim: deps assets ## Without root: sidecar → ambient in 3 SLO-gated waves on kwok nodes, with a breach rolled back.
	@$(GO) test -c -o bin/meshshift-demo ./test/demo
	@cd test/demo && ../../bin/meshshift-demo -test.run '^TestDemo$$' -test.timeout 10m

##@ Image (Dockerfile, test/image, hack/image)
IMG ?= ghcr.io/meshshift/meshshift:dev
.PHONY: image
image: ## Build meshshift's image without Docker (static, UID 65532, the Dockerfile's entrypoint and labels) into bin/meshshift-image.tar.
	@mkdir -p bin
	$(GO) run ./hack/image -o bin/meshshift-image.tar -tag $(IMG)

##@ Node agent (bpf/, test/bench/agentbench)
.PHONY: generate-bpf bench-agent bench-agent-rss
generate: generate-bpf
generate-bpf: ## Regenerate bpf/*_bpfel.{go,o} (amd64, arm64) with Debian's clang-19 via bpf2go.
	hack/deps.sh clang
	$(GO) generate ./bpf/

bench-agent: ## eBPF overhead on loopback (HTTP/1 stream, request/response, connect-request-close, gRPC), alternating off / do-nothing hooks / agent; last line "agent: stream_ratio=… rr_ratio=… crr_ratio=… grpc_ratio=… ns_per_run=… grpc_user_us_per_req=…" (root).
	$(GO) run ./test/bench/agentbench -rounds 10 -run 300ms

bench-agent-rss: ## The agent's RSS with 1,000 kubelet-shaped pod cgroups tracked and 1,000 live HTTP/2 connections followed (HPACK tables) (root).
	$(GO) run ./test/bench/agentbench -rss -cgroups 1000

##@ Admission webhook (webhook/, test/bench/webhookbench)
.PHONY: bench-webhook fuzz-webhook
bench-webhook: assets ## Handler micro-benchmarks, then meshshift vs no-op and one-label webhooks, and in front of the real istiod, through the real API server, and over direct HTTPS; last line "webhook: create_ratio=… label_ratio=… istiod_ratio=… ambient_vs_sidecar=… direct_ratio=… p99_ms=… rps=…".
	$(GO) test -run '^$$' -bench 'BenchmarkServe|BenchmarkHandleMutatePod|BenchmarkDecode' -benchtime 1s -count 1 ./webhook ./webhook/internal/admjson
	$(GO) run ./test/bench/webhookbench -rounds 6 -pods 400 -direct-rounds 24 -reviews 3000

fuzz-webhook: ## Fuzz the webhook's decoding, handlers and patch encoding, 30s per target.
	for f in FuzzDecodeReview FuzzDecodePod FuzzEncodePatch; do $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s -fuzzminimizetime $(FUZZMINIMIZE) ./webhook/internal/admjson || exit 1; done
	for f in FuzzAdmissionReview FuzzPodMetadata; do $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s -fuzzminimizetime $(FUZZMINIMIZE) ./webhook || exit 1; done

.PHONY: fuzz-agent
fuzz-agent: ## Fuzz the agent's HTTP/2 frame follower and header-block handling, 30s per target.
	for f in FuzzH2Events FuzzHeaderBlock; do $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s -fuzzminimizetime $(FUZZMINIMIZE) ./bpf || exit 1; done

##@ Fleet scale (test/bench/scalebench)
.PHONY: bench-scale
bench-scale: deps assets ## The built manager on 1,000 namespaces / 10,000 pods on kwok nodes, 5,000 Istio and Gateway API objects, 20 policies: RSS and heap after sync, ready time, webhook p99 under paced pod creates (and posted straight at the same rate), plan --cluster, a 50-namespace wave and a breach rolled back; last line "scale: rss_mib=… heap_mib=… ready_s=… p99_ms=… wave_s=… rollback_s=… plan_s=… direct_p99_ms=…". SCALE=0.1 for a quick check.
	nice $(GO) run ./test/bench/scalebench -scale $(or $(SCALE),1)
