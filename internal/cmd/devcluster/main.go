// Command devcluster starts a local Kubernetes control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler) and plays a short
// story whose objects make the real controllers emit Events. `make demo`
// points the collector at it. It runs until SIGINT or SIGTERM.
//
// Where the machine allows (root, and what `make node` installs and
// builds), it also starts a real node, containerd and a kubelet, and the
// story runs Pods on it: a crash loop, an OOM-killed container and a failing
// liveness probe, with the kubelet's Events about them. Otherwise it says
// why in one line and plays the story without a node.
//
//	go run ./internal/cmd/devcluster -dir .demo
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
)

// nodeMonitorGracePeriod is how long node-1 stays Ready without a kubelet:
// short, so NodeNotReady shows up while the demo is still being watched.
const nodeMonitorGracePeriod = 20 * time.Second

func main() {
	dir := flag.String("dir", ".demo", "directory for the control plane's files (cluster/) and the admin kubeconfig")
	story := flag.Bool("story", true, "create the demo objects once the control plane is ready")
	node := flag.Bool("node", true, "also start a real node (containerd and a kubelet) when this machine can run one")
	flag.Parse()

	logger := log.New(os.Stderr, "devcluster: ", log.Ltime)
	// Whatever ends the demo (Ctrl-C, kill, a closed terminal), stop the
	// control plane and remove the node. A reader of our output that went
	// first (`make demo | tee`) must not kill us with SIGPIPE meanwhile.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, logger, *dir, *story, *node); err != nil {
		logger.Print(err)
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *log.Logger, dir string, story, node bool) (err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolve -dir: %w", err)
	}
	// The kubeconfig's appearance says "ready" to scripts: never leave an old one.
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if rmErr := os.Remove(kubeconfig); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		return fmt.Errorf("remove old kubeconfig: %w", rmErr)
	}

	opts := kubetest.Options{
		Dir:                    filepath.Join(dir, "cluster"),
		Controllers:            true,
		NodeMonitorGracePeriod: nodeMonitorGracePeriod,
	}
	if node {
		bin, why := kubetest.FindBinDir()
		if why == nil {
			why = kubetest.CheckNode(bin)
		}
		if why != nil {
			logger.Printf("no node, so no container Events (%v); playing the story without one", why)
			node = false
		}
	}
	if opts.Node = node; node {
		opts.NodeMonitorGracePeriod = 0 // the kubelet keeps its Node Ready
	}
	if node {
		logger.Printf("starting control plane and node in %s", opts.Dir)
	} else {
		logger.Printf("starting control plane in %s", opts.Dir)
	}
	begin := time.Now()
	cp, err := kubetest.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		logger.Print("stopping control plane")
		err = errors.Join(err, cp.Stop())
		if rmErr := os.Remove(kubeconfig); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("remove kubeconfig: %w", rmErr))
		}
	}()

	if err := copyFile(cp.Kubeconfig(), kubeconfig); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	what := "control plane"
	if node {
		what = "control plane and node"
	}
	logger.Printf("%s ready in %s; KUBECONFIG=%s", what, time.Since(begin).Round(100*time.Millisecond), kubeconfig)

	if story {
		steps := storySteps
		if node {
			steps = nodeStorySteps
		}
		if err := playStory(ctx, cp.Client(), logger, steps, node); err != nil && !errors.Is(err, context.Canceled) {
			// The cluster is still useful without the story: report and keep running.
			logger.Printf("story: %v", err)
		}
	}
	<-ctx.Done()
	return nil
}

// copyFile writes src to dst through a temporary file, so that a reader
// waiting for dst never sees it half written.
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
