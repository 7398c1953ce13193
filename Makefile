# otelcol-k8sevents: build, test and demo targets.
#
# Everything the project needs is built from pinned Go modules into .bin/
# (git-ignored); nothing is installed by hand.

SHELL        := /bin/bash
ROOT         := $(abspath .)
BIN          := $(ROOT)/.bin
GO           ?= go
# -parallel 6: the end-to-end tests run side by side (each starts its own
# control plane and mostly waits on it), six at a time.
GOTEST_FLAGS ?= -race -count=1 -timeout 60m -parallel 6

OCB_VERSION  := v0.165.0
KUBE_VERSION := v1.37.2
OCB          := $(BIN)/ocb
# The version is in the file name, so that changing it installs the new one.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT         := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
COLLECTOR    := $(ROOT)/_build/otelcol-k8sevents

KUBE_BINS    := $(BIN)/kube-apiserver $(BIN)/kube-controller-manager $(BIN)/kube-scheduler
ETCD         := $(BIN)/etcd
KUBE_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION)

RECEIVER_SRC := $(shell find receiver processor -name '*.go' -not -name '*_test.go') go.mod go.sum

include mk/loki.mk
include mk/node.mk
include mk/demo.mk
include mk/peer.mk
include mk/helm.mk
include mk/crds.mk
include mk/alerting.mk

.PHONY: all build test test-deps unit-test lint kube bench bench-e2e bench-rollout bench-alerts fmt vet clean

all: build

## build: the otelcol-k8sevents distribution, built by the pinned ocb.
build: $(COLLECTOR)

$(OCB):
	GOBIN=$(BIN) $(GO) install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION)
	mv $(BIN)/builder $(OCB)

$(COLLECTOR): $(OCB) builder-config.yaml $(RECEIVER_SRC)
	$(OCB) --config builder-config.yaml
	@touch $@

## lint: golangci-lint with .golangci.yml over every package of the module
## (receiver, e2e, internal/...). The tool modules in tools/ are not linted.
lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $@

## kube: etcd, kube-apiserver, kube-controller-manager and kube-scheduler in .bin/.
## Go's build cache makes this a quick no-op when nothing changed.
kube: $(ETCD) $(KUBE_BINS)

$(ETCD): tools/etcd/go.mod tools/etcd/go.sum
	cd tools/etcd && $(GO) build -o $@ go.etcd.io/etcd/server/v3

# One go build for every Kubernetes binary (the control plane's, and the
# node's of mk/node.mk): they share most of their packages, and one build
# compiles each once, where two at a time would both compile them. go build
# leaves an up-to-date binary untouched, so touch them for make.
$(KUBE_BINS) $(NODE_BINS) &: tools/kube/go.mod tools/kube/go.sum
	@mkdir -p $(BIN)
	cd tools/kube && $(GO) build -ldflags "$(KUBE_LDFLAGS)" -o $(BIN)/ \
		$(addprefix k8s.io/kubernetes/cmd/,$(notdir $(KUBE_BINS) $(NODE_BINS)))
	@touch $(KUBE_BINS) $(NODE_BINS)

# What `make test` runs. Each is a go build of a module of its own (the
# collector, tools/kube, tools/loki, ...), built side by side: on a cold
# cache one build alone leaves a core idle while it downloads modules and
# links, which another build fills. TEST_JOBS=1 builds them one at a time.
TEST_DEPS := build kube loki node image peer helm crds prometheus alertmanager
TEST_JOBS ?= 4

## test-deps: everything `make test` runs, built TEST_JOBS at a time.
test-deps: $(TEST_DEPS)

## test: unit tests, then the end-to-end tests against the real control plane
## (with a real node when run as root: see mk/node.mk), the real collector
## binary and image, contrib's collector v0.152.0 with k8s_events and
## k8sobjects (the migration guide's before-and-after queries), helm (the chart's lint, template, install,
## upgrade and uninstall), the Prometheus Operator's ServiceMonitor and
## PrometheusRule CRDs (the chart's server-side dry run), and Loki, Prometheus
## and Alertmanager (the shipped alert rules, end to end).
test:
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) test-deps
	K8SEVENTS_COLLECTOR=$(COLLECTOR) K8SEVENTS_KUBE_BIN=$(BIN) K8SEVENTS_LOKI=$(LOKI) K8SEVENTS_IMAGE=$(IMAGE) K8SEVENTS_PEER=$(PEER) K8SEVENTS_HELM=$(HELM) K8SEVENTS_CRDS=$(CRDS_DIR) \
		K8SEVENTS_PROMETHEUS=$(PROMETHEUS) K8SEVENTS_ALERTMANAGER=$(ALERTMANAGER) \
		$(GO) test $(GOTEST_FLAGS) ./...

## unit-test: only the tests that need neither the control plane nor the binary.
unit-test:
	$(GO) test $(GOTEST_FLAGS) -short ./...

## bench: the conversion benchmark recorded in BENCHMARKS.md.
bench:
	$(GO) test -run '^$$' -bench ConvertEvents -benchmem -count 5 ./receiver/k8sevents/

## bench-e2e: the end-to-end tests whose figures BENCHMARKS.md records
## (events lost and repeated, failover time, heap), with their log lines.
E2E_FIGURES := TestEveryChangeOnce|TestKillNine|TestLeaderFailover|TestMemoryDoesNotGrowWithStoredEvents|TestAPIServerGoesAway|TestGracefulRestart|TestWatchEndedByAPIServer|TestWatchEveryUpdateOnce
bench-e2e: build kube
	K8SEVENTS_COLLECTOR=$(COLLECTOR) K8SEVENTS_KUBE_BIN=$(BIN) \
		$(GO) test -count=1 -timeout 60m -parallel 1 -v -run '^($(E2E_FIGURES))$$' ./e2e/ | grep -E '^( *--- | *[a-z_]+_test.go:[0-9]+: ((poll|watch): |expected|created))'

## bench-rollout: the rolling upgrades of BENCHMARKS.md: `helm upgrade` of the
## chart and `kubectl rollout restart` of deploy/ on a real node (as root)
## while Events are created, with the lost and repeated Events.
bench-rollout: build kube node image helm
	K8SEVENTS_COLLECTOR=$(COLLECTOR) K8SEVENTS_KUBE_BIN=$(BIN) K8SEVENTS_IMAGE=$(IMAGE) K8SEVENTS_HELM=$(HELM) \
		$(GO) test -count=1 -timeout 30m -v -run '^(TestChartOnNode|TestDeployed)$$' ./e2e/ | grep -E '^( *--- | *[a-z_]+_test.go:[0-9]+: (helm upgrade|kubectl rollout))'

## bench-alerts: TestAlerts, the time from an Event to its alert in
## Alertmanager by the Loki ruler and by Prometheus (BENCHMARKS.md), on a real
## node (as root).
bench-alerts: build kube loki node prometheus alertmanager
	K8SEVENTS_COLLECTOR=$(COLLECTOR) K8SEVENTS_KUBE_BIN=$(BIN) K8SEVENTS_LOKI=$(LOKI) \
		K8SEVENTS_PROMETHEUS=$(PROMETHEUS) K8SEVENTS_ALERTMANAGER=$(ALERTMANAGER) \
		$(GO) test -count=1 -timeout 30m -v -run '^TestAlerts$$' ./e2e/ | grep -E '^( *--- |ok|FAIL| *alerts_test.go:[0-9]+: (event to alertmanager|resolved|OOM kill))'

## fmt: gofmt and goimports (module imports last) as make lint checks them.
fmt: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) fmt ./...

vet:
	$(GO) vet ./...

clean:
	rm -rf _build .demo
