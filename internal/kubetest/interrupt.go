package kubetest

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// The control planes with a node that this process started, so that an
// interrupt stops them: a test binary that gets SIGINT would otherwise exit
// at once, without its cleanups, and leave containers, mounts and the
// bridge behind (the next node to start removes them, but only then).
var (
	interruptOnce sync.Once
	liveMu        sync.Mutex
	liveNodes     = map[*ControlPlane]struct{}{}
)

func trackNode(cp *ControlPlane, live bool) {
	liveMu.Lock()
	defer liveMu.Unlock()
	if live {
		liveNodes[cp] = struct{}{}
	} else {
		delete(liveNodes, cp)
	}
}

// handleInterrupts makes SIGINT and SIGTERM stop every control plane with
// a node before the process exits with status 130 (143 for SIGTERM). Only
// test binaries call it (through StartForTest): commands handle their
// signals themselves and call Stop.
func handleInterrupts() {
	interruptOnce.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		go func() {
			sig := <-ch
			fmt.Fprintf(os.Stderr, "kubetest: %v: stopping the nodes before exiting\n", sig)
			liveMu.Lock()
			cps := make([]*ControlPlane, 0, len(liveNodes))
			for cp := range liveNodes {
				cps = append(cps, cp)
			}
			liveMu.Unlock()
			for _, cp := range cps {
				if err := cp.Stop(); err != nil {
					fmt.Fprintf(os.Stderr, "kubetest: %v\n", err)
				}
			}
			code := 130
			if sig == syscall.SIGTERM {
				code = 143
			}
			os.Exit(code)
		}()
	})
}
