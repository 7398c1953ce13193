# A real node for the tests and the demo (containerd and a kubelet, see
# internal/kubetest), and the collector's container image.
#
# Included by the top-level Makefile after it defines ROOT, BIN, GO,
# COLLECTOR and KUBE_LDFLAGS.

node_default_goal := $(.DEFAULT_GOAL)

# The Debian packages a node needs (kubetest.NodePackages says the same).
NODE_PACKAGES := containerd runc containernetworking-plugins busybox-static iproute2
NODE_BINS     := $(BIN)/kubelet $(BIN)/kubectl

# The image: the collector that `make build` writes (ocb builds it with
# CGO_ENABLED=0, and mkimage refuses it unless it is statically linked),
# named after builder-config.yaml's dist.version.
IMAGE_VERSION := $(shell sed -n 's/^  version: *//p' $(ROOT)/builder-config.yaml)
IMAGE_NAME    := docker.io/library/otelcol-k8sevents:$(IMAGE_VERSION)
IMAGE         := $(ROOT)/_build/otelcol-k8sevents-image.tar
CA_BUNDLE     := $(wildcard /etc/ssl/certs/ca-certificates.crt)

.PHONY: node node-packages image

## node: the kubelet and kubectl in .bin/, and, when run as root on Debian,
## the packages in NODE_PACKAGES (apt-get install, only those missing).
## Without root the packages are left alone and the node tests skip.
node: node-packages $(NODE_BINS)

node-packages:
	@missing=; for p in $(NODE_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		[ "$(NODE_NOTE)" = quiet ] || echo "node: not installing$$missing (needs root and apt-get); the tests that need a node will skip" >&2; \
		exit 0; \
	fi; \
	echo "node: apt-get install$$missing" >&2; \
	DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$$missing >/dev/null

# $(NODE_BINS) are built by the Makefile's rule for the Kubernetes binaries.

## image: _build/otelcol-k8sevents-image.tar, an OCI image tarball of the
## collector (no container engine needed): `ctr -n k8s.io images import` or
## `docker load -i` it.
image: $(IMAGE)

$(IMAGE): $(COLLECTOR) $(wildcard $(ROOT)/internal/ociimage/*.go) $(wildcard $(ROOT)/internal/cmd/mkimage/*.go)
	$(GO) run ./internal/cmd/mkimage -o $@ -name $(IMAGE_NAME) \
		-file $(COLLECTOR):/otelcol-k8sevents -static /otelcol-k8sevents \
		$(if $(CA_BUNDLE),-file $(CA_BUNDLE):/etc/ssl/certs/ca-certificates.crt) \
		-entrypoint '["/otelcol-k8sevents"]' -cmd '["--config", "/etc/otelcol-k8sevents/config.yaml"]' \
		-user 10001:10001 \
		-label org.opencontainers.image.title=otelcol-k8sevents \
		-label org.opencontainers.image.version=$(IMAGE_VERSION)

.DEFAULT_GOAL := $(node_default_goal)
