# Prometheus and Alertmanager for the tests of the shipped alert rules.
#
# Included by the top-level Makefile after it defines ROOT, BIN and GO.
# Each is built from the pinned module in its own tool module (tools/prometheus,
# tools/alertmanager), so the project's go.mod never depends on them, into
# $(BIN), stamped with the version of the module. A binary is rebuilt only when
# its tool module's go.mod or go.sum changes.

alerting_default_goal := $(.DEFAULT_GOAL)

PROMETHEUS   := $(BIN)/prometheus
ALERTMANAGER := $(BIN)/alertmanager

# The tests configure static targets only: remove_all_sd leaves out every
# service-discovery plugin of Prometheus 3 (Kubernetes, the clouds, Consul,
# ...), about a third of its packages. Without the builtinassets tag the web
# UI is not built in; the HTTP API is all the tests use.
PROMETHEUS_TAGS := remove_all_sd

# Alertmanager's module lacks the web UI that ui/web.go embeds
# (ui/app/dist), so it builds from a copy of the module with a placeholder
# page, which a copy of the tool module points at with a replace. The API v2
# is complete; only the UI is missing.
ALERTMANAGER_BUILD := $(ROOT)/_build/alertmanager

# version_ldflags prints the -X flags of github.com/prometheus/common/version
# for module $(1), run in tool module directory $(2): VERSION from the
# module's own file, and the module's version as the revision.
version_ldflags = dir=$$(cd $(2) && $(GO) mod download $(1) && $(GO) list -m -f '{{.Dir}}' $(1)) && \
	version=$$(cat $$dir/VERSION) && \
	revision=$$(cd $(2) && $(GO) list -m -f '{{.Version}}' $(1)) && \
	ldflags="-X github.com/prometheus/common/version.Version=$$version -X github.com/prometheus/common/version.Revision=$$revision"

.PHONY: prometheus alertmanager

## prometheus: the Prometheus server in .bin/, without service discovery.
prometheus: $(PROMETHEUS)

## alertmanager: the Prometheus Alertmanager in .bin/, without its web UI.
alertmanager: $(ALERTMANAGER)

# go build leaves an up-to-date binary untouched, so touch it for make.
$(PROMETHEUS): $(ROOT)/tools/prometheus/go.mod $(ROOT)/tools/prometheus/go.sum
	@mkdir -p $(@D)
	$(call version_ldflags,github.com/prometheus/prometheus,$(ROOT)/tools/prometheus) && \
		cd $(ROOT)/tools/prometheus && \
		$(GO) build -tags $(PROMETHEUS_TAGS) -ldflags "$$ldflags" -o $@ github.com/prometheus/prometheus/cmd/prometheus
	@touch $@

$(ALERTMANAGER): $(ROOT)/tools/alertmanager/go.mod $(ROOT)/tools/alertmanager/go.sum
	@mkdir -p $(@D)
	chmod -R u+w $(ALERTMANAGER_BUILD) 2>/dev/null; rm -rf $(ALERTMANAGER_BUILD) && mkdir -p $(ALERTMANAGER_BUILD)/tool
	$(call version_ldflags,github.com/prometheus/alertmanager,$(ROOT)/tools/alertmanager) && \
		cp -R $$dir $(ALERTMANAGER_BUILD)/module && chmod -R u+w $(ALERTMANAGER_BUILD)/module && \
		mkdir -p $(ALERTMANAGER_BUILD)/module/ui/app/dist && \
		echo '<!doctype html><title>Alertmanager</title><p>The web UI is not built in; use the API (/api/v2).' \
			> $(ALERTMANAGER_BUILD)/module/ui/app/dist/index.html && \
		cp $(ROOT)/tools/alertmanager/go.mod $(ROOT)/tools/alertmanager/go.sum $(ROOT)/tools/alertmanager/tools.go $(ALERTMANAGER_BUILD)/tool/ && \
		cd $(ALERTMANAGER_BUILD)/tool && \
		$(GO) mod edit -replace github.com/prometheus/alertmanager=../module && \
		$(GO) build -ldflags "$$ldflags" -o $@ github.com/prometheus/alertmanager/cmd/alertmanager
	@touch $@

.DEFAULT_GOAL := $(alerting_default_goal)
