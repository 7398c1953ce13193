// Package collectortest runs the otelcol-k8sevents binary that `make build`
// produces, as a child process of a test.
package collectortest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// EnvBinary names the environment variable that points at the collector
// binary. `make test` sets it to _build/otelcol-k8sevents.
const EnvBinary = "K8SEVENTS_COLLECTOR"

// Collector is one run of the collector binary.
type Collector struct {
	t       testing.TB
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
	once    sync.Once
}

// Binary returns the collector binary to test: $K8SEVENTS_COLLECTOR, else
// _build/otelcol-k8sevents at the module root (see testbin.Find).
func Binary(t testing.TB) string {
	t.Helper()
	return testbin.Find(t, EnvBinary, "_build/otelcol-k8sevents", "run `make test`, which builds it")
}

// Start writes config to a file in a temporary directory and starts the
// collector with it, with env added to this process's environment. The
// collector is killed in t.Cleanup if the test has not stopped it; when the
// test failed, the collector's output is logged.
func Start(t testing.TB, config string, env ...string) *Collector {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatalf("collectortest: write config: %v", err)
	}
	return StartArgs(t, "", []string{"--config", cfgPath}, env...)
}

// StartArgs starts the collector with the command-line arguments given (a
// command of the documentation, such as --config a.yaml --config b.yaml),
// in directory dir (the test's working directory when empty), with env
// added to this process's environment. It is killed and its output logged
// as with Start.
func StartArgs(t testing.TB, dir string, args []string, env ...string) *Collector {
	t.Helper()
	return StartProgram(t, Binary(t), dir, args, env...)
}

// StartProgram is StartArgs with another collector binary, such as the
// contrib peer that tests compare with.
func StartProgram(t testing.TB, bin, dir string, args []string, env ...string) *Collector {
	t.Helper()
	c := &Collector{t: t, logPath: filepath.Join(t.TempDir(), "collector.log"), done: make(chan struct{})}
	logFile, err := os.Create(c.logPath)
	if err != nil {
		t.Fatalf("collectortest: create log: %v", err)
	}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Dir = dir
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	// Its own process group, killed with the test binary.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("collectortest: start %s: %v", bin, errors.Join(err, logFile.Close()))
	}
	go func() {
		// A failed close of the log is reported with the exit: the log may
		// lack the collector's last words.
		c.waitErr = errors.Join(c.cmd.Wait(), logFile.Close())
		close(c.done)
	}()
	t.Cleanup(func() {
		c.Kill()
		if t.Failed() {
			t.Logf("collectortest: collector output (%s):\n%s", c.logPath, lastLines(c.Output(), 80))
		}
	})
	return c
}

// Output is everything the collector has written so far.
func (c *Collector) Output() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", c.logPath, err)
	}
	return string(b)
}

// WaitOutput waits until the output contains s, failing t after timeout or
// when the collector exits first.
func (c *Collector) WaitOutput(s string, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(c.Output(), s) {
		select {
		case <-c.done:
			c.t.Fatalf("collectortest: collector exited (%v) before printing %q:\n%s", c.waitErr, s, lastLines(c.Output(), 40))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("collectortest: %q not printed within %v:\n%s", s, timeout, lastLines(c.Output(), 40))
		}
	}
}

// Stop sends SIGTERM and waits for a graceful exit, killing after timeout.
// It returns the exit error (nil for a clean exit).
func (c *Collector) Stop(timeout time.Duration) error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.waitErr
	case <-time.After(timeout):
		c.Kill()
		return errors.New("collector did not stop within " + timeout.String() + "; killed")
	}
}

// Kill sends SIGKILL to the collector's process group (as `kill -9` would)
// and waits for it to exit.
func (c *Collector) Kill() {
	c.once.Do(func() {
		select {
		case <-c.done:
			return
		default:
		}
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	})
	<-c.done
}

// PID is the collector's process id.
func (c *Collector) PID() int { return c.cmd.Process.Pid }

// Exited reports whether the collector has exited, and its exit error.
func (c *Collector) Exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.waitErr
	default:
		return false, nil
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// the collector's own listeners.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("collectortest: find free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("collectortest: free port %d: %v", port, err)
	}
	return port
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
