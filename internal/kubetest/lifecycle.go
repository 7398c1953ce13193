package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
)

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after the grace
// period) and leaves etcd and the controllers running. StartAPIServer brings
// it back on the same address with the same data.
func (cp *ControlPlane) StopAPIServer() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.stopped {
		return fmt.Errorf("stop %s: control plane stopped", KubeAPIServer)
	}
	p := cp.procs[KubeAPIServer]
	if p == nil {
		return fmt.Errorf("stop %s: not running", KubeAPIServer)
	}
	p.stop(cp.opts.StopGracePeriod)
	delete(cp.procs, KubeAPIServer)
	return nil
}

// StartAPIServer starts kube-apiserver again after StopAPIServer, on the same
// port with the same flags, certificates and etcd, and waits for /readyz.
func (cp *ControlPlane) StartAPIServer(ctx context.Context) error {
	cp.mu.Lock()
	running := cp.procs[KubeAPIServer] != nil
	cp.mu.Unlock()
	if running {
		return fmt.Errorf("start %s: already running", KubeAPIServer)
	}
	p, err := cp.spawn(KubeAPIServer, cp.apiArgs)
	if err != nil {
		return fmt.Errorf("start %s: %w", KubeAPIServer, err)
	}
	check, done, err := cp.readyzCheck(cp.restConfig)
	if err != nil {
		return fmt.Errorf("start %s: %w", KubeAPIServer, err)
	}
	defer done()
	if err := cp.waitReady(ctx, p, readyWhat[KubeAPIServer], check); err != nil {
		return fmt.Errorf("start %s: %w", KubeAPIServer, err)
	}
	return nil
}

// Stop stops every process (controllers first, etcd last): SIGTERM to each
// process group, then SIGKILL after the grace period. It removes Dir when
// Start created it. Calling Stop again returns the first call's result.
func (cp *ControlPlane) Stop() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.stopped {
		return cp.stopError
	}
	cp.stopped = true

	grace := cp.opts.StopGracePeriod
	var errs []error
	if cp.node != nil {
		// First: the kubelet would report the API server gone.
		if err := cp.node.stop(grace); err != nil {
			errs = append(errs, fmt.Errorf("stop node: %w", err))
		}
	}
	stopAll := func(names ...string) {
		var wg sync.WaitGroup
		for _, n := range names {
			if p := cp.procs[n]; p != nil {
				wg.Go(func() { p.stop(grace) })
			}
		}
		wg.Wait()
	}
	stopAll(KubeControllerManager, KubeScheduler)
	stopAll(KubeAPIServer)
	stopAll(Etcd)
	cp.procs = map[string]*process{}
	cp.sp.close()

	if cp.removeDir {
		if err := os.RemoveAll(cp.dir); err != nil {
			errs = append(errs, fmt.Errorf("stop control plane: remove %s: %w", cp.dir, err))
		}
	}
	cp.stopError = errors.Join(errs...)
	return cp.stopError
}

// Running reports whether a component (Etcd, KubeAPIServer, ...) has a live
// process.
func (cp *ControlPlane) Running(component string) bool {
	cp.mu.Lock()
	p := cp.procs[component]
	cp.mu.Unlock()
	if p == nil {
		return false
	}
	done, _ := p.exited()
	return !done
}

// PID is the process id of a component's live process (Etcd,
// KubeAPIServer, ...), or 0 when it is not running. Benchmarks read its
// CPU time and memory from /proc.
func (cp *ControlPlane) PID(component string) int {
	cp.mu.Lock()
	p := cp.procs[component]
	cp.mu.Unlock()
	if p == nil {
		return 0
	}
	if done, _ := p.exited(); done {
		return 0
	}
	return p.cmd.Process.Pid
}
