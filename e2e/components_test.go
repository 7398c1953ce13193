package e2e

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
)

// The three places that say what the distribution contains.
const (
	srcManifest = "builder-config.yaml"
	srcReadme   = "README.md's component list"
	srcBinary   = "the built binary's `components`"
)

// componentKinds are the manifest's sections (ocb) and the `components`
// output's, each with the singular the README's list uses.
var componentKinds = []struct{ section, kind string }{
	{"receivers", "receiver"},
	{"processors", "processor"},
	{"exporters", "exporter"},
	{"connectors", "connector"},
	{"extensions", "extension"},
	{"providers", "provider"},
	{"converters", "converter"},
}

// componentSource is what one place says the distribution contains: per
// "kind module-path version", the component names (type, or scheme for a
// provider). A source without names (the manifest) has nil name lists.
type componentSource struct {
	name  string
	named bool
	mods  map[string][]string
}

func newComponentSource(name string, named bool) componentSource {
	return componentSource{name: name, named: named, mods: map[string][]string{}}
}

func (s componentSource) add(kind, module, name string) {
	key := kind + " " + strings.Join(strings.Fields(module), " ")
	if !s.named {
		s.mods[key] = nil
		return
	}
	s.mods[key] = append(s.mods[key], name)
	sort.Strings(s.mods[key])
}

// TestComponents: builder-config.yaml, the README's component list and the
// `components` output of the built binary name the same components, from
// the same modules at the same versions. The manifest and the README are
// compared in -short mode too; the binary when it is built.
func TestComponents(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	manifest, err := manifestComponents(filepath.Join(root, "builder-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := readmeComponents(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(manifest.mods) == 0 || len(readme.mods) == 0 {
		t.Fatalf("nothing to compare: %d components in %s, %d in %s", len(manifest.mods), manifest.name, len(readme.mods), readme.name)
	}

	t.Run("manifest and README", func(t *testing.T) {
		for _, p := range compareComponents(manifest, readme) {
			t.Error(p)
		}
	})
	t.Run("built binary", func(t *testing.T) {
		out, err := exec.Command(collectortest.Binary(t), "components").CombinedOutput()
		if err != nil {
			t.Fatalf("otelcol-k8sevents components: %v\n%s", err, out)
		}
		binary, err := binaryComponents(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range compareComponents(manifest, readme, binary) {
			t.Error(p)
		}
	})
}

// compareComponents returns one message per disagreement: a component that
// some sources have and others lack, naming both, and a module whose
// components two named sources call differently.
func compareComponents(sources ...componentSource) []string {
	keys := map[string]bool{}
	for _, s := range sources {
		for k := range s.mods {
			keys[k] = true
		}
	}
	var problems []string
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		var have, lack []string
		names := ""
		for _, s := range sources {
			ns, ok := s.mods[key]
			if !ok {
				lack = append(lack, s.name)
				continue
			}
			have = append(have, s.name)
			if s.named && names == "" {
				names = strings.Join(ns, ", ")
			}
		}
		if len(lack) > 0 {
			what := key
			if names != "" {
				what = fmt.Sprintf("%s (%s)", key, names)
			}
			problems = append(problems, fmt.Sprintf("%s: in %s; missing from %s",
				what, strings.Join(have, " and "), strings.Join(lack, " and ")))
			continue
		}
		var first *componentSource
		for i := range sources {
			s := &sources[i]
			if !s.named {
				continue
			}
			if first == nil {
				first = s
				continue
			}
			if !slices.Equal(first.mods[key], s.mods[key]) {
				problems = append(problems, fmt.Sprintf("%s: %s names it %q, %s %q",
					key, first.name, first.mods[key], s.name, s.mods[key]))
			}
		}
	}
	return problems
}

// manifestComponents reads the gomod entries of an ocb manifest.
func manifestComponents(path string) (componentSource, error) {
	src := newComponentSource(srcManifest, false)
	data, err := os.ReadFile(path)
	if err != nil {
		return src, err
	}
	var manifest map[string]any
	if err := yaml.Unmarshal(data, &manifest); err != nil {
		return src, fmt.Errorf("parse %s: %w", path, err)
	}
	for _, k := range componentKinds {
		entries, _ := manifest[k.section].([]any)
		for i, e := range entries {
			m, _ := e.(map[string]any)
			gomod, _ := m["gomod"].(string)
			if gomod == "" {
				return src, fmt.Errorf("%s: %s[%d] has no gomod", path, k.section, i)
			}
			src.add(k.kind, gomod, "")
		}
	}
	return src, nil
}

// readmeComponents reads the table under the README's "## Components"
// heading: | kind | `name` | `module version` ... |.
func readmeComponents(path string) (componentSource, error) {
	src := newComponentSource(srcReadme, true)
	data, err := os.ReadFile(path)
	if err != nil {
		return src, err
	}
	kinds := map[string]bool{}
	for _, k := range componentKinds {
		kinds[k.kind] = true
	}
	in, rows := false, 0
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "## ") {
			if in {
				break
			}
			in = line == "## Components"
			continue
		}
		if !in || !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 3 {
			return src, fmt.Errorf("%s: component row %q: want | kind | name | module |", path, line)
		}
		kind := strings.TrimSpace(cells[0])
		if kind == "Kind" || strings.HasPrefix(kind, "--") {
			continue // header and separator
		}
		if !kinds[kind] {
			return src, fmt.Errorf("%s: component row %q: kind %q is none of receiver, processor, exporter, connector, extension, provider, converter", path, line, kind)
		}
		name, module := inBackticks(cells[1]), inBackticks(cells[2])
		if name == "" || module == "" {
			return src, fmt.Errorf("%s: component row %q: want the name and the module in backticks", path, line)
		}
		src.add(kind, module, name)
		rows++
	}
	if rows == 0 {
		return src, fmt.Errorf("%s: no component table under \"## Components\"", path)
	}
	return src, nil
}

// inBackticks is the text between the first pair of backticks in s.
func inBackticks(s string) string {
	_, rest, ok := strings.Cut(s, "`")
	if !ok {
		return ""
	}
	v, _, ok := strings.Cut(rest, "`")
	if !ok {
		return ""
	}
	return strings.TrimSpace(v)
}

// binaryComponents reads the YAML that `otelcol-k8sevents components` prints.
func binaryComponents(out []byte) (componentSource, error) {
	src := newComponentSource(srcBinary, true)
	// buildinfo is a map, the rest lists: decode the lists one by one.
	var raw map[string]yaml.Node
	if err := yaml.Unmarshal(out, &raw); err != nil {
		return src, fmt.Errorf("parse components output: %w\n%s", err, out)
	}
	for _, k := range componentKinds {
		node, ok := raw[k.section]
		if !ok {
			continue
		}
		var list []struct {
			Name   string `yaml:"name"`
			Scheme string `yaml:"scheme"`
			Module string `yaml:"module"`
		}
		if err := node.Decode(&list); err != nil {
			return src, fmt.Errorf("parse components output, %s: %w", k.section, err)
		}
		for _, c := range list {
			name := c.Name
			if name == "" {
				name = c.Scheme
			}
			if name == "" {
				name = "-" // converters have neither
			}
			src.add(k.kind, c.Module, name)
		}
	}
	if _, ok := raw["receivers"]; !ok {
		return src, fmt.Errorf("components output has no receivers:\n%s", out)
	}
	return src, nil
}

// TestCompareComponents: a drift between the three sources is reported with
// the component, the sources that have it and the ones that lack it.
func TestCompareComponents(t *testing.T) {
	t.Parallel()
	source := func(name string, named bool, entries ...[3]string) componentSource {
		s := newComponentSource(name, named)
		for _, e := range entries {
			s.add(e[0], e[1], e[2])
		}
		return s
	}
	k8s := [3]string{"receiver", "github.com/k8sevents/otelcol-k8sevents v0.1.0", "k8sevents"}
	batch := [3]string{"processor", "go.opentelemetry.io/collector/processor/batchprocessor v0.165.0", "batch"}
	transform := [3]string{"processor", "github.com/open-telemetry/opentelemetry-collector-contrib/processor/transformprocessor v0.161.0", "transform"}
	for _, tc := range []struct {
		name                     string
		manifest, readme, binary componentSource
		want                     []string
	}{
		{
			name:     "agree",
			manifest: source(srcManifest, false, k8s, batch),
			readme:   source(srcReadme, true, k8s, batch),
			binary:   source(srcBinary, true, batch, k8s),
		},
		{
			name:     "added to the manifest only",
			manifest: source(srcManifest, false, k8s, batch, transform),
			readme:   source(srcReadme, true, k8s, batch),
			binary:   source(srcBinary, true, k8s, batch),
			want: []string{"processor github.com/open-telemetry/opentelemetry-collector-contrib/processor/transformprocessor v0.161.0: " +
				"in builder-config.yaml; missing from README.md's component list and the built binary's `components`"},
		},
		{
			name:     "built but not documented",
			manifest: source(srcManifest, false, k8s, batch, transform),
			readme:   source(srcReadme, true, k8s, batch),
			binary:   source(srcBinary, true, k8s, batch, transform),
			want: []string{"processor github.com/open-telemetry/opentelemetry-collector-contrib/processor/transformprocessor v0.161.0 (transform): " +
				"in builder-config.yaml and the built binary's `components`; missing from README.md's component list"},
		},
		{
			name:     "documented only",
			manifest: source(srcManifest, false, k8s),
			readme:   source(srcReadme, true, k8s, batch),
			binary:   source(srcBinary, true, k8s),
			want: []string{"processor go.opentelemetry.io/collector/processor/batchprocessor v0.165.0 (batch): " +
				"in README.md's component list; missing from builder-config.yaml and the built binary's `components`"},
		},
		{
			name:     "another version in the README",
			manifest: source(srcManifest, false, k8s, batch),
			readme:   source(srcReadme, true, k8s, [3]string{"processor", "go.opentelemetry.io/collector/processor/batchprocessor v0.161.0", "batch"}),
			binary:   source(srcBinary, true, k8s, batch),
			want: []string{
				"processor go.opentelemetry.io/collector/processor/batchprocessor v0.161.0 (batch): in README.md's component list; missing from builder-config.yaml and the built binary's `components`",
				"processor go.opentelemetry.io/collector/processor/batchprocessor v0.165.0 (batch): in builder-config.yaml and the built binary's `components`; missing from README.md's component list",
			},
		},
		{
			name:     "another name in the README",
			manifest: source(srcManifest, false, k8s, batch),
			readme:   source(srcReadme, true, k8s, [3]string{batch[0], batch[1], "batcher"}),
			binary:   source(srcBinary, true, k8s, batch),
			want: []string{"processor go.opentelemetry.io/collector/processor/batchprocessor v0.165.0: " +
				"README.md's component list names it [\"batcher\"], the built binary's `components` [\"batch\"]"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := compareComponents(tc.manifest, tc.readme, tc.binary)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}
