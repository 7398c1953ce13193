package e2e

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// chartDir is the chart, relative to the module root.
const chartDir = "charts/otelcol-k8sevents"

var updateChartReadme = flag.Bool("update-chart-readme", false, "rewrite the values table of "+chartDir+"/README.md from values.yaml")

// The values table of the chart's README lies between these lines.
const (
	valuesTableBegin = "<!-- values table: generated from values.yaml by `go test ./e2e -run TestChartReadme -update-chart-readme` -->"
	valuesTableEnd   = "<!-- end of values table -->"
)

// chartValue is one row of the values table.
type chartValue struct {
	path        string // image.repository
	def         string // the default as JSON; empty for a section
	description string
}

// chartValues walks values.yaml: a key whose value is a map with commented
// keys is a section (a row without default, then its keys); any other key is
// a value, its default printed as JSON. Every key must have a comment.
func chartValues(t *testing.T, node *yaml.Node, prefix string) []chartValue {
	t.Helper()
	var out []chartValue
	for i := 0; i+1 < len(node.Content); i += 2 {
		key, val := node.Content[i], node.Content[i+1]
		path := prefix + key.Value
		desc := commentText(key.HeadComment)
		if desc == "" {
			t.Errorf("%s/values.yaml:%d: %s has no comment above it", chartDir, key.Line, path)
		}
		if val.Kind == yaml.MappingNode && len(val.Content) > 0 && val.Content[0].HeadComment != "" {
			out = append(out, chartValue{path: path, description: desc})
			out = append(out, chartValues(t, val, path+".")...)
			continue
		}
		var v any
		if err := val.Decode(&v); err != nil {
			t.Fatalf("decode %s: %v", path, err)
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatalf("encode %s: %v", path, err)
		}
		out = append(out, chartValue{path: path, def: strings.TrimSpace(b.String()), description: desc})
	}
	return out
}

// commentText is a YAML head comment as one line of prose. The first
// paragraph of the file's first key is the file's own comment.
func commentText(c string) string {
	if i := strings.LastIndex(c, "\n\n"); i >= 0 {
		c = c[i+2:]
	}
	var words []string
	for line := range strings.SplitSeq(c, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
		if line != "" {
			words = append(words, line)
		}
	}
	return strings.Join(words, " ")
}

func valuesTable(rows []chartValue) string {
	var b strings.Builder
	b.WriteString("| Value | Default | Description |\n|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, r := range rows {
		def := ""
		if r.def != "" {
			def = "`" + cell(r.def) + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", r.path, def, cell(r.description))
	}
	return b.String()
}

// TestChartReadme: every value of the chart has a comment in values.yaml,
// the values table of the chart's README is the one values.yaml makes
// (-update-chart-readme rewrites it), and its values snippets are parts of
// the example values files.
func TestChartReadme(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	data := readRoot(t, filepath.Join(chartDir, "values.yaml"))
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parse values.yaml: %v", err)
	}
	rows := chartValues(t, doc.Content[0], "")
	if len(rows) < 40 {
		t.Fatalf("values.yaml gave %d rows; the walk is broken", len(rows))
	}
	table := valuesTable(rows)

	readmePath := filepath.Join(root, chartDir, "README.md")
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok := strings.Cut(string(readme), valuesTableBegin+"\n")
	_, after, ok2 := strings.Cut(rest, valuesTableEnd)
	if !ok || !ok2 {
		t.Fatalf("%s lacks the lines %q and %q around the values table", readmePath, valuesTableBegin, valuesTableEnd)
	}
	want := before + valuesTableBegin + "\n" + table + valuesTableEnd + after
	if *updateChartReadme {
		if err = os.WriteFile(readmePath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(readme) != want {
		t.Errorf("the values table of %s is not the one values.yaml makes; run `go test ./e2e -run TestChartReadme -update-chart-readme`. It should be:\n%s", readmePath, table)
	}

	// The README's values snippets are parts of example files, which the
	// other chart tests render, validate and apply.
	examples, err := filepath.Glob(filepath.Join(root, chartDir, "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var parsed []any
	for _, e := range examples {
		var v any
		data, err := os.ReadFile(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &v); err != nil {
			t.Fatalf("parse %s: %v", e, err)
		}
		parsed = append(parsed, v)
	}
	snippets := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(snippets) == 0 {
		t.Errorf("%s has no yaml snippet", readmePath)
	}
	for _, m := range snippets {
		var v any
		if err := yaml.Unmarshal([]byte(m[1]), &v); err != nil {
			t.Errorf("a yaml snippet of %s does not parse: %v\n%s", readmePath, err, m[1])
			continue
		}
		if !slices.ContainsFunc(parsed, func(e any) bool { return yamlSubset(v, e) }) {
			t.Errorf("the yaml snippet of %s is part of no example values file:\n%s", readmePath, m[1])
		}
	}
}

// yamlSubset reports whether every key of sub is in super with the same
// value (maps compared key by key, anything else whole).
func yamlSubset(sub, super any) bool {
	sm, ok := sub.(map[string]any)
	if !ok {
		return reflect.DeepEqual(sub, super)
	}
	pm, ok := super.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range sm {
		if pv, ok := pm[k]; !ok || !yamlSubset(v, pv) {
			return false
		}
	}
	return true
}
