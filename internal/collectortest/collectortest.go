// Package collectortest runs the otelcol-k8sevents binary that `make build`
// produces (or another collector binary) as a child process of a test.
// Programs without package testing run it with testbin.Run.
package collectortest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k8sevents/otelcol-k8sevents/internal/freeport"
	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// EnvBinary names the environment variable that points at the collector
// binary. `make test` sets it to _build/otelcol-k8sevents.
const EnvBinary = "K8SEVENTS_COLLECTOR"

// Collector is one run of the collector binary in a test.
type Collector struct {
	*testbin.Process
	t testing.TB
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
	p, err := testbin.Run(bin, dir, args, filepath.Join(t.TempDir(), "collector.log"), env...)
	if err != nil {
		t.Fatalf("collectortest: %v", err)
	}
	c := &Collector{Process: p, t: t}
	t.Cleanup(func() {
		if !t.Failed() {
			c.Kill()
			return
		}
		t.Logf("collectortest: collector output (%s):\n%s", c.LogPath(), testbin.LastLines(c.Output(), 80))
		// Where the receiver was, should it seem to hang.
		if dump := c.DumpGoroutines(5*time.Second, "/receiver/k8sevents."); dump != "" {
			t.Logf("collectortest: the receiver's goroutines (SIGQUIT):\n%s", testbin.LastLines(dump, 200))
		}
		c.Kill()
	})
	return c
}

// WaitOutput waits until the output contains s, failing t after timeout or
// when the collector exits first.
func (c *Collector) WaitOutput(s string, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(c.Output(), s) {
		select {
		case <-c.Done():
			_, err := c.Exited()
			c.t.Fatalf("collectortest: collector exited (%v) before printing %q:\n%s", err, s, testbin.LastLines(c.Output(), 40))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("collectortest: %q not printed within %v:\n%s", s, timeout, testbin.LastLines(c.Output(), 40))
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// the collector's own listeners.
func FreePort(t testing.TB) int {
	t.Helper()
	ports, err := freeport.Pick(1)
	if err != nil {
		t.Fatalf("collectortest: %v", err)
	}
	return ports[0]
}
