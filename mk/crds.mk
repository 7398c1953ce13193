# The Prometheus Operator's CRDs of the ServiceMonitor and the PrometheusRule,
# for the chart's server-side dry run (e2e/chart_server_test.go): installed in
# the test's control plane, they make the API server validate those objects
# against the operator's real schema.
#
# Included by the top-level Makefile after it defines ROOT, BIN and GO.
# The operator's root module (which holds the CRD YAML files) is not on the
# module proxy, so the CRDs are generated, as the operator's own build does,
# by controller-gen from the Go types of monitoring.coreos.com/v1 (module
# github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring).
# Both are pinned in the tool module tools/crds; controller-gen is built into
# $(BIN), and the binary and the CRDs are rebuilt only when that module's
# go.mod or go.sum changes.

crds_default_goal := $(.DEFAULT_GOAL)

CONTROLLER_GEN := $(BIN)/controller-gen
CRDS_DIR       := $(ROOT)/_build/crds
# The two the chart renders; the others (Prometheus, Alertmanager,
# ThanosRuler: about 650 kB) are left out.
CRDS := $(CRDS_DIR)/monitoring.coreos.com_servicemonitors.yaml \
	$(CRDS_DIR)/monitoring.coreos.com_prometheusrules.yaml

# crd:maxDescLen=0 drops the field descriptions from the schemas: the tests
# need only the types, patterns and required fields, and the two files shrink
# from 90 kB to 33 kB. No other option is needed: the v1 types have no float
# fields (crd:allowDangerousTypes) and generate as they are.
CONTROLLER_GEN_CRD := crd:maxDescLen=0

.PHONY: crds

## crds: the ServiceMonitor and PrometheusRule CRDs in _build/crds/, by controller-gen.
crds: $(CRDS)

# go build leaves an up-to-date binary untouched, so touch it for make.
$(CONTROLLER_GEN): $(ROOT)/tools/crds/go.mod $(ROOT)/tools/crds/go.sum
	@mkdir -p $(@D)
	cd $(ROOT)/tools/crds && $(GO) build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen
	@touch $@

# controller-gen writes every CRD of the package into a scratch directory;
# only the two are kept. It runs in tools/crds, whose go.mod resolves the
# package path to the pinned version.
$(CRDS) &: $(CONTROLLER_GEN) $(ROOT)/tools/crds/go.mod $(ROOT)/tools/crds/go.sum
	rm -rf $(CRDS_DIR).tmp && mkdir -p $(CRDS_DIR)
	cd $(ROOT)/tools/crds && $(CONTROLLER_GEN) $(CONTROLLER_GEN_CRD) \
		paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 \
		output:crd:dir=$(CRDS_DIR).tmp
	cp $(addprefix $(CRDS_DIR).tmp/,$(notdir $(CRDS))) $(CRDS_DIR)/
	rm -rf $(CRDS_DIR).tmp
	@touch $(CRDS)

.DEFAULT_GOAL := $(crds_default_goal)
