package testbin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a program (the collector, Loki, Prometheus, ...) running as a
// child process, in a process group of its own that dies with this program.
// It does not need package testing, so programs such as
// internal/cmd/benchpeer run collectors with it too; collectortest and
// StartServer wrap it for tests. Its methods are safe for concurrent use.
type Process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
	once    sync.Once
}

// Run starts bin with args in directory dir (this process's when empty),
// with env added to this process's environment, its output appended to the
// file logPath.
func Run(bin, dir string, args []string, logPath string, env ...string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	p := &Process{logPath: logPath, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := start(p.cmd); err != nil {
		return nil, errors.Join(fmt.Errorf("start %s: %w", bin, err), logFile.Close())
	}
	go func() {
		// A failed close of the log is reported with the exit: the log may
		// lack the process's last words.
		p.waitErr = errors.Join(p.cmd.Wait(), logFile.Close())
		close(p.done)
	}()
	return p, nil
}

// LogPath is the file the process writes to.
func (p *Process) LogPath() string { return p.logPath }

// Output is everything in the process's log so far.
func (p *Process) Output() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", p.logPath, err)
	}
	return string(b)
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and its exit error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Stop sends SIGTERM and waits for a graceful exit, killing after timeout.
// It returns the exit error (nil for a clean exit).
func (p *Process) Stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(timeout):
		p.Kill()
		return errors.New(p.cmd.Path + " did not stop within " + timeout.String() + "; killed")
	}
}

// Kill sends SIGKILL to the process group (as `kill -9` would) and waits for
// the process to exit.
func (p *Process) Kill() {
	p.once.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	})
	<-p.done
}

// DumpGoroutines makes a Go program print the stacks of its goroutines
// (SIGQUIT, which also ends it) and returns those whose stack holds one of
// the substrings in only (all of them when only is empty). It waits for the
// exit up to timeout. For a test that failed while the program seemed to
// hang: the dump says where.
func (p *Process) DumpGoroutines(timeout time.Duration, only ...string) string {
	if exited, _ := p.Exited(); exited {
		return ""
	}
	before := len(p.Output())
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(timeout):
	}
	out := p.Output()
	if len(out) < before {
		return ""
	}
	var kept []string
	for block := range strings.SplitSeq(out[before:], "\n\n") {
		if !strings.HasPrefix(block, "goroutine ") {
			continue
		}
		for _, s := range only {
			if strings.Contains(block, s) {
				kept = append(kept, block)
				break
			}
		}
		if len(only) == 0 {
			kept = append(kept, block)
		}
	}
	return strings.Join(kept, "\n\n")
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// LastLines is the last n lines of s, for error messages.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
