package testbin

import (
	"os/exec"
	"runtime"
	"sync"
)

// Pdeathsig is delivered when the *thread* that forked the child exits, not
// when this process does. The Go runtime ends a thread when a goroutine
// that locked it returns, as kubetest's spawner does each time a control
// plane stops; a thread ended that way may have forked a collector before it
// was locked, and that collector would be killed in the middle of another
// test ("signal: killed"). So every child of this package is forked from one
// thread that is locked for the life of the process and never ends.
var forker = sync.OnceValue(func() chan forkReq {
	reqs := make(chan forkReq)
	go func() {
		runtime.LockOSThread() // never unlocked, and the goroutine never returns
		for r := range reqs {
			r.resp <- r.cmd.Start()
		}
	}()
	return reqs
})

type forkReq struct {
	cmd  *exec.Cmd
	resp chan error
}

// start starts cmd from the forking thread.
func start(cmd *exec.Cmd) error {
	resp := make(chan error, 1)
	forker() <- forkReq{cmd: cmd, resp: resp}
	return <-resp
}
