# Helm, for the chart's tests (charts/otelcol-k8sevents): helm lint,
# template, install, upgrade and uninstall against the test's control plane.
#
# Included by the top-level Makefile after it defines ROOT, BIN and GO.
# Helm is built from the pinned module in tools/helm (a module of its own, so
# the project's go.mod never depends on Helm) into $(BIN)/helm, stamped with
# the version that go.mod pins (the module's own constant says only v4.3).

# Included before the Makefile's first rule: keep `all` the default goal.
helm_default_goal := $(.DEFAULT_GOAL)

HELM := $(BIN)/helm

.PHONY: helm

## helm: the helm binary in .bin/.
helm: $(HELM)

# go build leaves an up-to-date binary untouched, so touch it for make.
$(HELM): $(ROOT)/tools/helm/go.mod $(ROOT)/tools/helm/go.sum
	@mkdir -p $(@D)
	cd $(ROOT)/tools/helm && \
		version=$$($(GO) list -m -f '{{.Version}}' helm.sh/helm/v4) && \
		$(GO) build -ldflags "-X helm.sh/helm/v4/internal/version.version=$$version" \
			-o $@ helm.sh/helm/v4/cmd/helm
	@touch $@

.DEFAULT_GOAL := $(helm_default_goal)
