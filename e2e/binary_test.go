package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
)

// TestValidate: `otelcol-k8sevents validate` accepts the shipped
// configuration and rejects bad receiver settings with messages that name
// the key and what is allowed.
func TestValidate(t *testing.T) {
	t.Parallel()
	bin := collectortest.Binary(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	validate := func(cfg string, env ...string) (string, error) {
		cmd := exec.Command(bin, "validate", "--config", cfg)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := validate(filepath.Join(root, "otelcol-config.yaml"), "LOKI_OTLP_ENDPOINT=http://127.0.0.1:3100/otlp"); err != nil {
		t.Errorf("otelcol-config.yaml does not validate: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		receiver string
		want     []string
	}{
		{"auth_type: token", []string{`auth_type: "token" is not supported; use one of serviceAccount, kubeConfig, none`}},
		{"interval: 0s", []string{"interval: must be a positive duration"}},
		{"interval: -5s", []string{"interval: must be a positive duration"}},
		{"namespaces: [Bad_NS]", []string{`namespaces[0]: "Bad_NS" is not a valid namespace name`}},
		{"namespaces: [a]\nexclude_namespaces: [b]", []string{"exclude_namespaces: only applies when reading all namespaces"}},
		{"page_size: 0", []string{"page_size: must be between 1 and 10000"}},
		{"start_at: now", []string{`start_at: "now" is not supported; use end or beginning`}},
		{"intervall: 10s", []string{"has invalid keys: intervall"}},
	} {
		cfg := filepath.Join(t.TempDir(), "config.yaml")
		body := "receivers:\n  k8sevents:\n    " + strings.ReplaceAll(tc.receiver, "\n", "\n    ") +
			"\nexporters:\n  debug:\nservice:\n  pipelines:\n    logs:\n      receivers: [k8sevents]\n      exporters: [debug]\n"
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := validate(cfg)
		if err == nil {
			t.Errorf("%q: validate accepted it", tc.receiver)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: output lacks %q:\n%s", tc.receiver, w, out)
			}
		}
		if !strings.Contains(out, "receivers::k8sevents") && !strings.Contains(out, `for "k8sevents"`) {
			t.Errorf("%q: output does not name the component:\n%s", tc.receiver, out)
		}
	}
}

// TestVersion: `otelcol-k8sevents --version` prints builder-config.yaml's
// dist.version, the release version (TestVersionIsPublished in
// receiver/k8sevents/internal/metadata holds the manifest to the version the
// receiver's user agent carries).
func TestVersion(t *testing.T) {
	t.Parallel()
	bin := collectortest.Binary(t)
	data := readRoot(t, "builder-config.yaml")
	var manifest struct {
		Dist struct {
			Name    string `yaml:"name"`
			Version string `yaml:"version"`
		} `yaml:"dist"`
	}
	if err := yaml.Unmarshal(data, &manifest); err != nil {
		t.Fatalf("parse builder-config.yaml: %v", err)
	}
	if manifest.Dist.Version == "" {
		t.Fatal("builder-config.yaml has no dist.version")
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("otelcol-k8sevents --version: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), manifest.Dist.Name+" version "+manifest.Dist.Version; got != want {
		t.Errorf("--version printed %q, want %q (builder-config.yaml's dist.name and dist.version; run make build?)", got, want)
	}
}
