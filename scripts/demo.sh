#!/usr/bin/env bash
# The demo behind `make demo`: a local control plane whose controllers emit
# real Events, with a real node whose kubelet does too where the machine
# allows it (internal/cmd/devcluster), and the collector printing them.
# Ctrl-C stops both, and devcluster removes the node's containers, mounts and
# bridge. Needs `make build kube node` first; the Make target does that.
#
# Environment (set by mk/demo.mk, defaults for running it by hand):
#   GO         go command                  (go)
#   BIN        control-plane binaries      (<repo>/.bin)
#   COLLECTOR  the collector binary        (<repo>/_build/otelcol-k8sevents)
#   DEMO_DIR   control-plane files         (<repo>/.demo)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
go=${GO:-go}
bin=${BIN:-$root/.bin}
collector=${COLLECTOR:-$root/_build/otelcol-k8sevents}
dir=${DEMO_DIR:-$root/.demo}
config=$root/testdata/demo-config.yaml
kubeconfig=$dir/kubeconfig

say() { echo "demo: $*" >&2; }

if [[ ! -x $collector ]]; then
	say "no collector at $collector; run make build"
	exit 1
fi

# A binary, not `go run`: signals must reach devcluster itself, and its
# control plane dies with it.
(cd "$root" && "$go" build -o "$bin/devcluster" ./internal/cmd/devcluster)

cluster_pid=
collector_pid=
stop() {
	trap - EXIT INT TERM HUP
	say "stopping"
	local pid
	for pid in $collector_pid $cluster_pid; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}
# A reader of our output that went first (`make demo | tee`) must not stop
# the cleanup.
trap '' PIPE
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

mkdir -p "$dir"
rm -f "$kubeconfig"
K8SEVENTS_KUBE_BIN=$bin "$bin/devcluster" -dir "$dir" &
cluster_pid=$!

say "waiting for the control plane (logs in $dir/cluster)"
started=$SECONDS
until [[ -s $kubeconfig ]]; do
	if ! kill -0 "$cluster_pid" 2>/dev/null; then
		say "devcluster exited before the control plane was ready; see its message above"
		exit 1
	fi
	if ((SECONDS - started > 300)); then
		say "the control plane was not ready after 5 minutes; logs in $dir/cluster"
		exit 1
	fi
	sleep 0.5
done

say "starting the collector ($config); Events are printed below, Ctrl-C stops"
KUBECONFIG=$kubeconfig "$collector" --config "$config" &
collector_pid=$!
# `wait` rather than a foreground child, so that Ctrl-C runs the traps at
# once; -n, so that the demo also ends when the control plane does.
status=0
wait -n "$collector_pid" "$cluster_pid" || status=$?
if kill -0 "$cluster_pid" 2>/dev/null; then
	say "the collector exited with status $status"
else
	say "devcluster exited with status $status"
fi
exit "$status"
