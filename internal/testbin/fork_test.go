package testbin

import (
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// A child outlives the end of the thread its caller ran on: the runtime
// ends a locked thread when its goroutine returns, and a child forked from
// it with Pdeathsig would be killed then.
func TestChildOutlivesCallersThread(t *testing.T) {
	started := make(chan *Process, 1)
	failed := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // returns locked: the runtime ends this thread
		p, err := Run("sleep", "", []string{"60"}, filepath.Join(t.TempDir(), "sleep.log"))
		if err != nil {
			failed <- err
			return
		}
		started <- p
	}()
	var p *Process
	select {
	case err := <-failed:
		t.Fatal(err)
	case p = <-started:
	}
	t.Cleanup(func() { p.Kill() })
	// Pdeathsig, had it fired, is delivered at once; wait a little for it
	// (this bounds nothing: a pass waits the full second).
	select {
	case <-p.Done():
		exited, err := p.Exited()
		t.Fatalf("the child ended with its caller's thread: exited %v, %v", exited, err)
	case <-time.After(time.Second):
	}
}
