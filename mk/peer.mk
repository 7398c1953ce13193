# The peer that `make bench-peer` and e2e/migrate_test.go measure ours
# against: collector-contrib v0.152.0 with its k8s_events and k8sobjects
# receivers (and file_storage, k8s_leader_elector), built by ocb v0.152.0 from
# tools/peer. tools/peer/builder-config.yaml says why v0.152.0.
#
# Included by the top-level Makefile after it defines ROOT, BIN, GO,
# COLLECTOR, and the targets build and kube. tools/peer is a Go module of its
# own (its go.mod and go.sum, written by ocb, are committed), so these
# versions never reach the product's go.mod or builder-config.yaml. The
# contrib modules are not in the checksum database this machine can reach,
# hence GONOSUMDB for that build only; go.sum still pins their checksums.

# Included before the Makefile's first rule: keep `all` the default goal.
peer_default_goal := $(.DEFAULT_GOAL)

PEER_OCB_VERSION := v0.152.0
PEER_OCB         := $(BIN)/ocb-$(PEER_OCB_VERSION)
PEER             := $(BIN)/otelcol-peer
PEER_GONOSUMDB   := github.com/open-telemetry/opentelemetry-collector-contrib

# The variants bench-peer runs, in order: poll (ours, interval 10s), watch
# (ours, mode: watch), owners (ours, mode: watch with extract: owners),
# events and events-storage (contrib k8s_events without and with storage),
# objects and objects-storage (contrib k8sobjects as the Helm chart's
# kubernetesEvents preset configures it, without and with storage). The
# Events of every variant are about 2,000 Pods (-pods). Example:
# make bench-peer BENCH_PEER_VARIANTS=watch,objects
BENCH_PEER_VARIANTS ?= poll,watch,owners,events,events-storage,objects,objects-storage
# More flags for internal/cmd/benchpeer (go run ./internal/cmd/benchpeer -h).
BENCH_PEER_FLAGS    ?=

.PHONY: peer bench-peer

## peer: collector-contrib v0.152.0 with k8s_events and k8sobjects in .bin/otelcol-peer.
peer: $(PEER)

$(PEER_OCB):
	@mkdir -p $(@D)
	GOBIN=$(BIN)/ocb-$(PEER_OCB_VERSION).d $(GO) install go.opentelemetry.io/collector/cmd/builder@$(PEER_OCB_VERSION)
	mv $(BIN)/ocb-$(PEER_OCB_VERSION).d/builder $@ && rmdir $(BIN)/ocb-$(PEER_OCB_VERSION).d

# ocb writes the sources (the same as committed, once gofmt has formatted
# them: ocb does not) into tools/peer and builds tools/peer/otelcol-peer
# (git-ignored), which is moved into .bin.
$(PEER): $(PEER_OCB) $(ROOT)/tools/peer/builder-config.yaml $(ROOT)/tools/peer/go.sum
	cd $(ROOT)/tools/peer && GONOSUMDB=$(PEER_GONOSUMDB) $(PEER_OCB) --config builder-config.yaml
	"$$($(GO) env GOROOT)/bin/gofmt" -w $(ROOT)/tools/peer/*.go
	mv $(ROOT)/tools/peer/otelcol-peer $@

## bench-peer: ours (poll, watch, owners) and contrib's k8s_events and
## k8sobjects v0.152.0 (each without and with storage), one at a time on one
## API server with 100,000 Events stored: startup, new Events, restarts;
## prints Markdown tables for BENCHMARKS.md.
bench-peer: build kube peer
	$(GO) run ./internal/cmd/benchpeer -collector $(COLLECTOR) -peer $(PEER) -kube-bin $(BIN) \
		-variants $(BENCH_PEER_VARIANTS) \
		-command "make bench-peer BENCH_PEER_VARIANTS=$(BENCH_PEER_VARIANTS)$(if $(BENCH_PEER_FLAGS), BENCH_PEER_FLAGS='$(BENCH_PEER_FLAGS)')" \
		$(BENCH_PEER_FLAGS)

.DEFAULT_GOAL := $(peer_default_goal)
