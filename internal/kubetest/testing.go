package kubetest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// StartForTest starts a control plane for t and stops it in t.Cleanup.
//
// It skips t in -short mode (`make unit-test`), and when $K8SEVENTS_KUBE_BIN
// is unset and the binaries are not in the module's .bin: run `make test`,
// which builds them and sets the variable. When the variable is set (or
// opts.BinDir is) but the binaries are missing, it fails t instead.
//
// With opts.Node, it skips t when this machine cannot run a node (not root,
// packages missing: see CheckNode), except when $CI is "true", where it
// fails t. A SIGINT or SIGTERM (Ctrl-C of `go test`) then stops every node
// of the process before it exits, so that no container, mount or bridge
// outlives the test binary.
//
// When t has failed by the time it is cleaned up, the end of every
// component's log is logged first.
func StartForTest(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	if testing.Short() {
		t.Skip("kubetest: needs a control plane; skipped in -short mode")
	}
	if opts.BinDir == "" {
		bin, err := FindBinDir()
		if err != nil {
			if os.Getenv(EnvBinDir) == "" && errors.Is(err, ErrNoBinaries) {
				t.Skipf("kubetest: %v; run `make test` (it builds them with `make kube` and sets %s)", err, EnvBinDir)
			}
			t.Fatalf("kubetest: %v", err)
		}
		opts.BinDir = bin
	}
	if opts.Node {
		if err := CheckNode(opts.BinDir); err != nil {
			// CI runs as root on Debian, where `make test` installs what a
			// node needs: there a missing node is a failure, not a skip.
			if os.Getenv("CI") == "true" {
				t.Fatalf("kubetest: %v (CI=true: node tests must run)", err)
			}
			t.Skipf("kubetest: %v", err)
		}
		handleInterrupts()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cp, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range []string{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler, Containerd, Kubelet} {
				if _, err := os.Stat(cp.LogPath(c)); err == nil {
					t.Logf("kubetest: last lines of %s:\n%s", cp.LogPath(c), tail(cp.LogPath(c), 40))
				}
			}
		}
		if err := cp.Stop(); err != nil {
			t.Errorf("kubetest: %v", err)
		}
	})
	return cp
}
