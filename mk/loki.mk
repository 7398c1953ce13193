# Grafana Loki for the end-to-end test of the OTLP/HTTP exporter.
#
# Included by the top-level Makefile after it defines ROOT, BIN and GO.
# Loki is built from the pinned module in tools/loki (a module of its own, so
# the project's go.mod never depends on Loki) into $(BIN)/loki, stamped with the
# version that go.mod pins. A cold build takes several minutes; Go's build
# cache makes later ones quick.

# This file is included before the Makefile's first rule; without this, `loki`
# would become the default goal instead of `all`.
loki_default_goal := $(.DEFAULT_GOAL)

LOKI := $(BIN)/loki

.PHONY: loki

## loki: the Grafana Loki binary in .bin/.
loki: $(LOKI)

# go build leaves an up-to-date binary untouched, so touch it for make.
$(LOKI): $(ROOT)/tools/loki/go.mod $(ROOT)/tools/loki/go.sum
	@mkdir -p $(@D)
	cd $(ROOT)/tools/loki && \
		version=$$($(GO) list -m -f '{{.Version}}' github.com/grafana/loki/v3) && \
		$(GO) build -ldflags "-X github.com/grafana/loki/v3/pkg/util/build.Version=$$version" \
			-o $@ github.com/grafana/loki/v3/cmd/loki
	@touch $@

.DEFAULT_GOAL := $(loki_default_goal)
