// Package testbin finds the programs that `make test` builds (the collector,
// Loki, Prometheus, Alertmanager) and runs them for the tests: a child
// process with its log in a file (Run), and a server on free ports that a
// test waits for (StartServer), which the harnesses lokitest, promtest and
// amtest build on.
package testbin

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const modulePath = "github.com/k8sevents/otelcol-k8sevents"

// Find returns the program named by the environment variable env, else rel
// below the module root. It skips t in -short mode, and when the variable is
// unset and the program missing (hint says how to build it); it fails t when
// the variable names a missing file.
func Find(t testing.TB, env, rel, hint string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s; skipped in -short mode", filepath.Base(rel))
	}
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("$%s: %v", env, err)
		}
		return p
	}
	root, err := ModuleRoot()
	if err == nil {
		p := filepath.Join(root, rel)
		if _, err = os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("no %s (%v); %s, or set $%s", filepath.Base(rel), err, hint, env)
	return ""
}

// ModuleRoot walks up from the working directory to the directory whose
// go.mod declares this module.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module "+modulePath+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of " + modulePath + " above the working directory")
		}
		dir = parent
	}
}
