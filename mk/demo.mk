# The newcomer's first commands: `make demo` and `make run`.
#
# Included by the top-level Makefile after it defines ROOT, BIN, GO and
# COLLECTOR, and the targets build and kube.

.PHONY: demo run

## demo: a local control plane whose controllers emit real Events (see
## internal/cmd/devcluster), with a real node when run as root (see
## mk/node.mk), and the collector printing them. Ctrl-C stops both.
## devcluster says in one line why it runs without a node.
demo: NODE_NOTE := quiet
demo: build kube node
	GO="$(GO)" BIN="$(BIN)" COLLECTOR="$(COLLECTOR)" DEMO_DIR="$(ROOT)/.demo" \
		bash $(ROOT)/scripts/demo.sh

## run: the collector printing the Events of the cluster in $KUBECONFIG
## (else ~/.kube/config), for example `KUBECONFIG=~/.kube/config make run`.
run: build
	@kc="$${KUBECONFIG:-$$HOME/.kube/config}"; IFS=:; \
	for f in $$kc; do if [ -f "$$f" ]; then exit 0; fi; done; \
	if [ -n "$$KUBECONFIG" ]; then \
		echo "run: no cluster to read: KUBECONFIG=$$KUBECONFIG names no existing file." >&2; \
	else \
		echo "run: no cluster to read: KUBECONFIG is not set and $$HOME/.kube/config does not exist." >&2; \
	fi; \
	echo "run: point KUBECONFIG at a cluster's kubeconfig, or try \`make demo\` for a local one." >&2; \
	exit 1
	$(COLLECTOR) --config $(ROOT)/testdata/run-config.yaml
