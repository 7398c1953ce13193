package kubetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// spawner starts every child process of one control plane from a single OS
// thread that stays alive until the control plane is stopped.
//
// Pdeathsig is delivered when the *thread* that forked the child exits, not
// when the process does. Forking from a locked, long-lived thread makes the
// signal mean "the control plane's owner is gone", so the children never
// outlive the process that started them, and are not killed early because
// some unrelated Go thread went away.
type spawner struct {
	reqs chan spawnReq
	quit chan struct{}
	once sync.Once
}

type spawnReq struct {
	cmd  *exec.Cmd
	resp chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), quit: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		// Never unlocked: when this goroutine returns, the runtime ends the
		// thread with it, which is what Pdeathsig keys on.
		runtime.LockOSThread()
		close(ready)
		for {
			select {
			case r := <-s.reqs:
				r.resp <- r.cmd.Start()
			case <-s.quit:
				return
			}
		}
	}()
	<-ready
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	resp := make(chan error, 1)
	select {
	case s.reqs <- spawnReq{cmd: cmd, resp: resp}:
	case <-s.quit:
		return errors.New("control plane stopped")
	}
	return <-resp
}

// close ends the spawner's thread. Call it only once every child has exited.
func (s *spawner) close() { s.once.Do(func() { close(s.quit) }) }

// process is one running binary of the control plane.
type process struct {
	name    string
	logPath string
	logFrom int64 // size of the log file when this run started
	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	waitErr error
}

// startProcess starts bin with args in its own process group, with output
// appended to logPath (and copied, line-prefixed, to extra when not nil).
func startProcess(sp *spawner, name, bin string, args []string, logPath string, extra io.Writer, dir string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	if _, err := fmt.Fprintf(f, "\n==== kubetest: %s %s\n==== %s %s\n", time.Now().Format(time.RFC3339), name, bin, strings.Join(args, " ")); err != nil {
		return nil, errors.Join(fmt.Errorf("write %s: %w", logPath, err), f.Close())
	}

	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if extra != nil {
		w := io.MultiWriter(f, &prefixWriter{w: extra, prefix: "[" + name + "] "})
		cmd.Stdout, cmd.Stderr = w, w
	} else {
		cmd.Stdout, cmd.Stderr = f, f
	}
	p := &process{name: name, logPath: logPath, logFrom: st.Size(), cmd: cmd, logFile: f, done: make(chan struct{})}
	if err := sp.start(cmd); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	go func() {
		// A failed close of the log is reported with the exit: the log may
		// lack the process's last words.
		p.waitErr = errors.Join(cmd.Wait(), f.Close())
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		if p.waitErr == nil {
			return true, errors.New("exited with status 0")
		}
		return true, p.waitErr
	default:
		return false, nil
	}
}

// logSinceStart returns what this run of the process has logged so far.
func (p *process) logSinceStart() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil || int64(len(b)) < p.logFrom {
		return ""
	}
	return string(b[p.logFrom:])
}

// stop sends SIGTERM to the process group, waits up to grace, then sends
// SIGKILL and waits for the process to be reaped.
func (p *process) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
}

// prefixWriter writes whole lines to w, each starting with prefix. Writes
// from several processes may share w, so they are serialized.
type prefixWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

var sharedLogMu sync.Mutex

func (pw *prefixWriter) Write(b []byte) (int, error) {
	pw.buf = append(pw.buf, b...)
	for {
		i := bytes.IndexByte(pw.buf, '\n')
		if i < 0 {
			break
		}
		line := pw.buf[:i+1]
		sharedLogMu.Lock()
		_, err := io.WriteString(pw.w, pw.prefix+string(line))
		sharedLogMu.Unlock()
		pw.buf = pw.buf[i+1:]
		if err != nil {
			return len(b), nil // never fail the process output because of the copy
		}
	}
	return len(b), nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
