# Grafana Loki for the end-to-end test of the OTLP/HTTP exporter.
#
# Included by the top-level Makefile after it defines ROOT, BIN and GO.
# Loki is built from the pinned module in tools/loki (a module of its own, so
# the project's go.mod never depends on Loki) into $(BIN)/loki. A cold build
# takes several minutes; Go's build cache makes later ones quick.

LOKI_VERSION := v3.7.8
LOKI         := $(BIN)/loki
LOKI_LDFLAGS := -X github.com/grafana/loki/v3/pkg/util/build.Version=$(LOKI_VERSION)

.PHONY: loki

## loki: the Grafana Loki binary in .bin/.
loki: $(LOKI)

$(LOKI): $(ROOT)/tools/loki/go.mod $(ROOT)/tools/loki/go.sum
	@mkdir -p $(@D)
	cd $(ROOT)/tools/loki && $(GO) build -ldflags "$(LOKI_LDFLAGS)" -o $@ github.com/grafana/loki/v3/cmd/loki
	@touch $@
