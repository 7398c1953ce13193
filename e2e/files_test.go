package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// moduleRoot is the directory of the module's go.mod, where the documents,
// manifests and charts the tests read live.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := testbin.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// readRoot reads a file of the module by its path from the root.
func readRoot(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
