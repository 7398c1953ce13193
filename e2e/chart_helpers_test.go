package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// EnvHelm names the environment variable that points at the helm binary;
// `make test` sets it to what `make helm` builds.
const EnvHelm = "K8SEVENTS_HELM"

// helmCLI runs the helm that `make helm` builds, from the module root, with
// its cache, configuration and data in the test's own directories.
type helmCLI struct {
	bin, root string
	env       []string
}

// newHelm finds helm (skipping the test without it) and sets it up to talk
// to the cluster of kubeconfig (empty: none, for lint and template).
func newHelm(t *testing.T, kubeconfig string) *helmCLI {
	t.Helper()
	bin := testbin.Find(t, EnvHelm, ".bin/helm", "run `make helm`")
	root := moduleRoot(t)
	home := t.TempDir()
	env := append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	if kubeconfig != "" {
		env = append(env, "KUBECONFIG="+kubeconfig)
	}
	return &helmCLI{bin: bin, root: root, env: env}
}

// run runs helm with args and returns its combined output.
func (h *helmCLI) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), h.bin, args...)
	cmd.Dir, cmd.Env = h.root, h.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustRun runs helm and fails t when it fails.
func (h *helmCLI) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := h.run(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// template renders the chart as release otelcol-k8sevents in namespace
// otelcol-k8sevents with the extra arguments (-f, --set) and returns the
// manifest.
func (h *helmCLI) template(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), h.bin, append([]string{"template", deployName, chartDir, "--namespace", deployNamespace}, args...)...)
	cmd.Dir, cmd.Env = h.root, h.env
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

// decodeManifest decodes the objects of a multi-document manifest, leaving
// out empty documents; kinds the client's scheme does not know (the
// ServiceMonitor) come back as their YAML in unknown.
func decodeManifest(t *testing.T, manifest string) (objs []runtime.Object, unknown []string) {
	t.Helper()
	for doc := range strings.SplitSeq(manifest, "\n---") {
		if !strings.Contains(doc, "\nkind: ") && !strings.HasPrefix(strings.TrimSpace(doc), "kind: ") {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if runtime.IsNotRegisteredError(err) {
			unknown = append(unknown, doc)
			continue
		}
		if err != nil {
			t.Fatalf("decode the rendered manifest: %v\n%s", err, doc)
		}
		objs = append(objs, obj)
	}
	return objs, unknown
}
