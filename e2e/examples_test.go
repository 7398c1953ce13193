package e2e

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
)

// validateEnv is what the shipped configurations read from the environment
// and have no default for.
var validateEnv = []string{"LOKI_OTLP_ENDPOINT=http://127.0.0.1:3100/otlp"}

// runValidate runs `otelcol-k8sevents validate` with the config files given
// (later ones merged over earlier ones, as the collector does).
func runValidate(t *testing.T, configs ...string) (string, error) {
	t.Helper()
	args := []string{"validate"}
	for _, c := range configs {
		args = append(args, "--config", c)
	}
	cmd := exec.Command(collectortest.Binary(t), args...)
	cmd.Env = append(os.Environ(), validateEnv...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestExampleConfigsValidate: every collector configuration in the
// repository passes `validate`: otelcol-config.yaml, each file of examples/
// added to it, testdata/*.yaml, and the YAML examples of the READMEs and
// docs (completed with a debug exporter and a pipeline when they show only
// part of a configuration).
func TestExampleConfigsValidate(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	shipped := filepath.Join(root, "otelcol-config.yaml")
	t.Run("otelcol-config.yaml", func(t *testing.T) {
		if out, err := runValidate(t, shipped); err != nil {
			t.Errorf("validate: %v\n%s", err, out)
		}
	})
	examples, _ := filepath.Glob(filepath.Join(root, "examples", "*.yaml"))
	if len(examples) == 0 {
		t.Error("no examples/*.yaml")
	}
	for _, ex := range examples {
		t.Run("otelcol-config.yaml+examples/"+filepath.Base(ex), func(t *testing.T) {
			if out, err := runValidate(t, shipped, ex); err != nil {
				t.Errorf("validate: %v\n%s", err, out)
			}
		})
	}
	testdata, _ := filepath.Glob(filepath.Join(root, "testdata", "*.yaml"))
	for _, f := range testdata {
		t.Run("testdata/"+filepath.Base(f), func(t *testing.T) {
			if out, err := runValidate(t, f); err != nil {
				t.Errorf("validate: %v\n%s", err, out)
			}
		})
	}

	validated := 0
	docs := []string{"README.md", "receiver/k8sevents/README.md", "processor/k8seventsaggregate/README.md"}
	guides, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	for _, g := range guides {
		docs = append(docs, filepath.Join("docs", filepath.Base(g)))
	}
	for _, doc := range docs {
		data, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range yamlSnippets(string(data)) {
			cfg, ok, err := collectorConfigOf(s.text)
			if err != nil {
				t.Errorf("%s:%d: %v", doc, s.line, err)
				continue
			}
			if !ok {
				continue // a Kubernetes manifest or a Loki setting
			}
			if contribReceiver(s.text) != "" {
				continue // contrib's k8s_events or k8sobjects, for TestMigrationQueries to run with the peer
			}
			validated++
			t.Run(fmt.Sprintf("%s:%d", doc, s.line), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "config.yaml")
				if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
					t.Fatal(err)
				}
				if out, err := runValidate(t, path); err != nil {
					t.Errorf("validate: %v\n%s\nconfiguration:\n%s", err, out, cfg)
				}
			})
		}
	}
	t.Logf("validated %d YAML examples of the READMEs and docs", validated)
	if validated < 5 {
		t.Errorf("only %d collector configurations found in the READMEs and docs; the extraction is broken", validated)
	}
}

// TestAggregationExampleJoinsTheLogsPipeline: examples/aggregation.yaml,
// added after otelcol-config.yaml, puts the processor into the Loki
// pipeline (a list replaces the list of the first file), before
// transform/loki, and leaves the count pipeline alone.
func TestAggregationExampleJoinsTheLogsPipeline(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(collectortest.Binary(t), "print-config", "--mode=unredacted",
		"--config", filepath.Join("..", "otelcol-config.yaml"), "--config", filepath.Join("..", "examples", "aggregation.yaml"))
	cmd.Env = append(os.Environ(), validateEnv...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("print-config: %v\n%s", err, out)
	}
	var cfg struct {
		Service struct {
			Pipelines map[string]struct {
				Processors []string `json:"processors"`
			} `json:"pipelines"`
		} `json:"service"`
	}
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("parse print-config output: %v\n%s", err, out)
	}
	if got, want := cfg.Service.Pipelines["logs"].Processors, []string{"memory_limiter", "k8sevents_aggregate", "transform/loki"}; !slices.Equal(got, want) {
		t.Errorf("logs processors %v, want %v", got, want)
	}
	if got := cfg.Service.Pipelines["logs/count"].Processors; slices.Contains(got, "k8sevents_aggregate") {
		t.Errorf("logs/count processors %v: the count must see every record", got)
	}
}

// TestValidateRejectsBadRules: a bad alert rule fails `validate` with the
// key of the rule and what is wrong.
func TestValidateRejectsBadRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rules string
		want  string
	}{
		{`[{name: backoff, match: {message: "Back-off (restarting"}, alert: true}]`,
			"receivers::k8sevents: rules[0]::match::message: not a regular expression (Go RE2 syntax): error parsing regexp: missing closing ): `Back-off (restarting`"},
		{`[{name: a, alert: true}, {name: b, match: {type: warning}}]`,
			`rules[1]::match::type: "warning" is not an Event type; use Normal or Warning`},
		{`[{name: oom, severity: critical}]`,
			`rules[0]::severity: "critical" is not supported; use one of info, warn, error, fatal`},
		{`[{match: {reasons: [BackOff]}, drop: true}]`,
			`rules[0]::name: must be set`},
		{`[{name: x, match: {reason: BackOff}}]`,
			`has invalid keys: reason`},
	} {
		cfg := filepath.Join(t.TempDir(), "config.yaml")
		body := "receivers:\n  k8sevents:\n    rules: " + tc.rules +
			"\nexporters:\n  debug:\nservice:\n  pipelines:\n    logs:\n      receivers: [k8sevents]\n      exporters: [debug]\n"
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := runValidate(t, cfg)
		if err == nil {
			t.Errorf("%s: validate accepted it", tc.rules)
			continue
		}
		if !strings.Contains(out, tc.want) {
			t.Errorf("%s: output lacks %q:\n%s", tc.rules, tc.want, out)
		}
	}
}

// contribReceiver returns the contrib receiver a YAML example configures
// (k8s_events or k8sobjects, the migration guide's "before"), or "".
func contribReceiver(text string) string {
	var m struct {
		Receivers map[string]any `json:"receivers"`
	}
	if yaml.Unmarshal([]byte(text), &m) != nil {
		return ""
	}
	for _, r := range []string{"k8s_events", "k8sobjects", "k8s_objects"} {
		if _, ok := m.Receivers[r]; ok {
			return r
		}
	}
	return ""
}

type snippet struct {
	line int
	text string
}

// yamlSnippets returns the ```yaml blocks of a Markdown document.
func yamlSnippets(md string) []snippet {
	var out []snippet
	var cur *snippet
	var b strings.Builder
	for i, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```yaml":
			cur = &snippet{line: i + 2}
			b.Reset()
		case cur != nil && trimmed == "```":
			cur.text = b.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			b.WriteString(line + "\n")
		}
	}
	return out
}

// collectorConfigOf turns a YAML example into a configuration that
// `validate` can check. ok is false for YAML that is no collector
// configuration. A partial one gets a debug exporter, the k8sevents
// receiver when it names no receiver, and a logs pipeline of all its
// components.
func collectorConfigOf(text string) (cfg string, ok bool, err error) {
	var m map[string]any
	if err = yaml.Unmarshal([]byte(text), &m); err != nil {
		return "", false, fmt.Errorf("parse: %w", err)
	}
	sections := []string{"receivers", "processors", "exporters", "connectors", "extensions", "service"}
	for k, v := range m {
		if _, isMap := v.(map[string]any); !slices.Contains(sections, k) || (v != nil && !isMap) {
			return "", false, nil // not a collector configuration: an ocb manifest lists components
		}
	}
	if _, full := m["service"]; !full {
		section := func(name string) map[string]any {
			s, _ := m[name].(map[string]any)
			if s == nil {
				s = map[string]any{}
				m[name] = s
			}
			return s
		}
		receivers, processors, exporters := section("receivers"), section("processors"), section("exporters")
		if len(receivers) == 0 {
			receivers["k8sevents"] = map[string]any{"auth_type": "kubeConfig"}
		}
		if len(exporters) == 0 {
			exporters["debug"] = nil
		}
		m["service"] = map[string]any{"pipelines": map[string]any{"logs": map[string]any{
			"receivers":  slices.Sorted(maps.Keys(receivers)),
			"processors": slices.Sorted(maps.Keys(processors)),
			"exporters":  slices.Sorted(maps.Keys(exporters)),
		}}}
	}
	out, err := yaml.Marshal(m)
	if err != nil {
		return "", false, err
	}
	return string(out), true, nil
}
