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
	go forkLoop(reqs)
	return reqs
})

// ForkLoop is the function of the forking goroutine, which lives as long as
// the process: for goleak.IgnoreTopFunction in the packages that check for
// leaked goroutines.
const ForkLoop = "github.com/k8sevents/otelcol-k8sevents/internal/testbin.forkLoop"

func forkLoop(reqs <-chan forkReq) {
	runtime.LockOSThread() // never unlocked, and the loop never returns
	for r := range reqs {
		r.resp <- r.cmd.Start()
	}
}

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
