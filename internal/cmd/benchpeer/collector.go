package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// collector is one run of a collector binary as a child process.
type collector struct {
	cmd     *exec.Cmd
	logPath string
	started time.Time
	done    chan struct{}
	waitErr error
}

// startCollector runs bin with the configuration at cfg and env added to
// this process's environment, logging to logPath (appended to).
func startCollector(bin, cfg, logPath string, env ...string) (*collector, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open collector log: %w", err)
	}
	c := &collector{logPath: logPath, done: make(chan struct{})}
	c.cmd = exec.Command(bin, "--config", cfg)
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stdout, c.cmd.Stderr = f, f
	// Its own process group, and killed with this program.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("start %s: %w", bin, err), f.Close())
	}
	c.started = time.Now()
	go func() {
		c.waitErr = errors.Join(c.cmd.Wait(), f.Close())
		close(c.done)
	}()
	return c, nil
}

func (c *collector) pid() int { return c.cmd.Process.Pid }

func (c *collector) output() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", c.logPath, err)
	}
	return string(b)
}

// waitOutput waits until the log has s in it after offset bytes.
func (c *collector) waitOutput(ctx context.Context, s string, offset int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if out := c.output(); len(out) >= offset && strings.Contains(out[offset:], s) {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("collector exited (%w) before logging %q:\n%s", c.waitErr, s, lastLines(c.output(), 30))
		case <-ctx.Done():
			return fmt.Errorf("collector did not log %q: %w:\n%s", s, ctx.Err(), lastLines(c.output(), 30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// exited returns the collector's exit error when it has ended.
func (c *collector) exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.waitErr
	default:
		return false, nil
	}
}

// stop sends SIGTERM and waits for the exit, killing the process group after
// timeout. It returns the exit error (nil for a clean exit).
func (c *collector) stop(timeout time.Duration) error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.waitErr
	case <-time.After(timeout):
		c.kill()
		return errors.New("did not stop within " + timeout.String() + "; killed")
	}
}

// kill ends the process group and waits for the exit.
func (c *collector) kill() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
