package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
)

// command is an invocation of the collector written in the documentation,
// such as `LOKI_OTLP_ENDPOINT=... ./_build/otelcol-k8sevents --config a.yaml`.
type command struct {
	where string   // file:line
	env   []string // the NAME=value words before the program
	args  []string // the words after the program
}

// configs are the files the command names with --config, relative to the
// repository's root.
func (c command) configs() []string {
	var out []string
	for i, a := range c.args {
		if a == "--config" && i+1 < len(c.args) {
			out = append(out, c.args[i+1])
		} else if v, ok := strings.CutPrefix(a, "--config="); ok {
			out = append(out, v)
		}
	}
	return out
}

// getenv is the value the command sets for name, and whether it sets it.
func (c command) getenv(name string) (string, bool) {
	for _, kv := range c.env {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}

// withEnv is the command's environment with name set to value instead of
// what the documentation wrote. It fails t when the command does not set
// name: the test replaces only what a user must replace.
func (c command) withEnv(t *testing.T, name, value string) []string {
	t.Helper()
	if _, ok := c.getenv(name); !ok {
		t.Fatalf("%s: the command sets no %s", c.where, name)
	}
	out := make([]string, 0, len(c.env))
	for _, kv := range c.env {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			kv = name + "=" + value
		}
		out = append(out, kv)
	}
	return out
}

var envAssignment = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`)

// parseCommand reads one shell line. ok is false when the line runs no
// collector; quotes are refused, since no documented command needs them
// and the split on white space would get them wrong.
func parseCommand(line string) (c command, ok bool, err error) {
	words := strings.Fields(line)
	i := 0
	for i < len(words) && envAssignment.MatchString(words[i]) {
		i++
	}
	if i == len(words) || filepath.Base(words[i]) != "otelcol-k8sevents" {
		return command{}, false, nil
	}
	if strings.ContainsAny(line, `"'`) {
		return command{}, false, fmt.Errorf("quotes in %q: the test splits commands on white space only", line)
	}
	return command{env: words[:i], args: words[i+1:]}, true, nil
}

// documentedCommands returns every collector invocation in the
// documentation: the lines of ```sh blocks in the Markdown files, and the
// comment lines of the shipped YAML files (otelcol-config.yaml,
// examples/). A line ending in a backslash continues on the next.
func documentedCommands(t *testing.T, root string) []command {
	t.Helper()
	markdown := []string{"README.md", "CONTRIBUTING.md", "receiver/k8sevents/README.md", "processor/k8seventsaggregate/README.md"}
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	for _, d := range docs {
		markdown = append(markdown, filepath.Join("docs", filepath.Base(d)))
	}
	yamls := []string{"otelcol-config.yaml"}
	examples, _ := filepath.Glob(filepath.Join(root, "examples", "*.yaml"))
	for _, e := range examples {
		yamls = append(yamls, filepath.Join("examples", filepath.Base(e)))
	}

	var out []command
	scan := func(file string, lineOf func(string) (string, bool)) {
		data, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		s := bufio.NewScanner(strings.NewReader(string(data)))
		var (
			logical strings.Builder
			start   int
		)
		for n := 1; s.Scan(); n++ {
			text, ok := lineOf(s.Text())
			if !ok {
				logical.Reset()
				continue
			}
			if logical.Len() == 0 {
				start = n
			}
			if cont, found := strings.CutSuffix(strings.TrimRight(text, " "), `\`); found {
				logical.WriteString(cont + " ")
				continue
			}
			logical.WriteString(text)
			c, ok, err := parseCommand(logical.String())
			logical.Reset()
			if err != nil {
				t.Errorf("%s:%d: %v", file, start, err)
			}
			if ok {
				c.where = fmt.Sprintf("%s:%d", file, start)
				out = append(out, c)
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, md := range markdown {
		inShell := false
		scan(md, func(line string) (string, bool) {
			trimmed := strings.TrimSpace(line)
			switch {
			case !inShell && slices.Contains([]string{"```sh", "```bash", "```shell"}, trimmed):
				inShell = true
				return "", false
			case inShell && trimmed == "```":
				inShell = false
				return "", false
			}
			return line, inShell
		})
	}
	for _, y := range yamls {
		scan(y, func(line string) (string, bool) {
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), "#")
			return rest, ok
		})
	}
	return out
}

var envReference = regexp.MustCompile(`\$\{env:([A-Za-z_][A-Za-z0-9_]*)`)

// documentedEnv is the environment a documented command runs in: this
// process's, less every variable the configuration files read (so that only
// what the command sets counts), plus what the command sets. HOME stays: a
// user always has it.
func documentedEnv(t *testing.T, root string, c command) []string {
	t.Helper()
	read := map[string]bool{}
	for _, cfg := range c.configs() {
		data, err := os.ReadFile(filepath.Join(root, cfg))
		if err != nil {
			t.Fatalf("%s: %v", c.where, err)
		}
		for _, m := range envReference.FindAllStringSubmatch(string(data), -1) {
			read[m[1]] = m[1] != "HOME"
		}
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return read[k]
	})
	return append(env, c.env...)
}

// TestDocumentedCommandsValidate: every collector command of the
// documentation passes `validate` as written: the same --config files, run
// from the repository's root, with only the environment variables the
// command sets. (validate checks the configuration, not the cluster:
// TestWorkstationCommand starts the workstation command.)
func TestDocumentedCommandsValidate(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := collectortest.Binary(t)
	cmds := documentedCommands(t, root)
	for _, c := range cmds {
		t.Run(c.where, func(t *testing.T) {
			if len(c.configs()) == 0 {
				t.Fatalf("%s: no --config in %q", c.where, c.args)
			}
			args := c.args
			if !strings.HasPrefix(args[0], "-") {
				args = args[1:] // a subcommand: validate replaces it
			}
			cmd := exec.Command(bin, append([]string{"validate"}, args...)...)
			cmd.Dir = root
			cmd.Env = documentedEnv(t, root, c)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s %s %s: validate: %v\n%s", strings.Join(c.env, " "), "otelcol-k8sevents", strings.Join(c.args, " "), err, out)
			}
		})
	}
	t.Logf("validated %d documented commands", len(cmds))
	// The README's, the two of otelcol-config.yaml and one per example.
	if len(cmds) < 4 {
		t.Errorf("only %d collector commands found in the documentation: %v; the extraction is broken", len(cmds), cmds)
	}
}
