package kubetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EnvBinDir names the environment variable that points at the directory
// holding the control-plane binaries. `make test` sets it to the repo's .bin.
const EnvBinDir = "K8SEVENTS_KUBE_BIN"

// modulePath is the module whose root holds the .bin directory that
// `make kube` fills.
const modulePath = "github.com/k8sevents/otelcol-k8sevents"

// Binaries are the programs a control plane runs, all looked up in BinDir.
var Binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// ErrNoBinaries is wrapped by the errors of FindBinDir and Start when the
// control-plane binaries are not where they were looked for.
var ErrNoBinaries = errors.New("control-plane binaries not found")

// FindBinDir returns the directory that holds the control-plane binaries:
// $K8SEVENTS_KUBE_BIN when set, else the .bin directory at the root of this
// module, found by walking up from the working directory. It fails, wrapping
// ErrNoBinaries, when any of Binaries is missing there.
func FindBinDir() (string, error) {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		return checkBinDir(dir, "$"+EnvBinDir)
	}
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("%w: $%s is not set and %w", ErrNoBinaries, EnvBinDir, err)
	}
	return checkBinDir(filepath.Join(root, ".bin"), "the module's .bin")
}

func checkBinDir(dir, what string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	var missing []string
	for _, b := range Binaries {
		st, err := os.Stat(filepath.Join(abs, b))
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return abs, fmt.Errorf("%w: %s in %s (%s)", ErrNoBinaries, strings.Join(missing, ", "), abs, what)
	}
	return abs, nil
}

// moduleRoot walks up from the working directory to the directory whose
// go.mod declares modulePath.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if declaresModule(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod for %s above the working directory", modulePath)
		}
		dir = parent
	}
}

func declaresModule(gomod string) bool {
	data, err := os.ReadFile(gomod)
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == modulePath
		}
	}
	return false
}
