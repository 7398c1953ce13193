package e2e

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/k8sevents/otelcol-k8sevents/internal/migratedoc"
)

// Every PromQL and LogQL query the project prints for its users (in the
// documents, the alert rules and the dashboard) is run by a test against a
// real Prometheus or Loki, which asserts on what comes back. The tests that
// do so are listed in queryRunners; TestEveryPrintedQueryRuns fails for a
// query that none of them runs, so that a query added later without a test
// fails CI.

// The languages of printed queries.
const (
	langPromQL = "promql"
	langLogQL  = "logql"
)

// printedQuery is one query as a file prints it.
type printedQuery struct {
	// file is the file's path from the repository's root, such as
	// docs/loki.md.
	file string
	// where says where in the file: a line, a rule or a dashboard panel.
	where string
	lang  string
	text  string
	// key names the query for the test that checks its result: the panel
	// and target, or the variable, of a dashboard; else the query.
	key string
	// inline is a query of a code span in a document's text.
	inline bool
}

// Where queries are printed, as globs from the repository's root.
var (
	queryDocuments = []string{"README.md", "docs/*.md", "receiver/*/README.md", "processor/*/README.md"}
	queryRuleFiles = []string{"alerts/*.yaml", "alerts/*.yml"}
	queryDashboard = []string{"dashboards/*.json"}
)

// printedQueries returns every query of the files that print them.
func printedQueries(root string) ([]printedQuery, error) {
	var out []printedQuery
	read := func(globs []string, parse func(file string, data []byte) ([]printedQuery, error)) error {
		for _, g := range globs {
			files, err := filepath.Glob(filepath.Join(root, g))
			if err != nil {
				return err
			}
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				rel, err := filepath.Rel(root, f)
				if err != nil {
					return err
				}
				qs, err := parse(filepath.ToSlash(rel), data)
				if err != nil {
					return err
				}
				out = append(out, qs...)
			}
		}
		return nil
	}
	markdown := func(file string, data []byte) ([]printedQuery, error) {
		return markdownQueries(file, string(data)), nil
	}
	if err := read(queryDocuments, markdown); err != nil {
		return nil, err
	}
	if err := read(queryRuleFiles, ruleQueries); err != nil {
		return nil, err
	}
	if err := read(queryDashboard, dashboardQueries); err != nil {
		return nil, err
	}
	return out, nil
}

var (
	// A LogQL stream selector: a brace that no metric name precedes, then
	// a label matcher.
	logSelector = regexp.MustCompile(`(^|[^a-zA-Z0-9_:])\{\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=~|!~|!=|=)\s*"`)
	// A PromQL selector with a label matcher, or a function call with
	// arguments.
	promSelector = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*\{\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=~|!~|!=|=)\s*"`)
	promCall     = regexp.MustCompile(`^[a-z_]+(\s+(by|without)\s*\([^)]*\))?\s*\(.*[a-zA-Z_:][a-zA-Z0-9_:]*(\{|\[)`)
	codeSpan     = regexp.MustCompile("`([^`]+)`")
)

// queryLanguage says whether s, a code span or a rule's expression, is a
// LogQL or PromQL query, or neither ("").
func queryLanguage(s string) string {
	s = strings.TrimSpace(s)
	switch {
	case logSelector.MatchString(s):
		return langLogQL
	case promSelector.MatchString(s), promCall.MatchString(s):
		return langPromQL
	}
	return ""
}

// markdownQueries returns the queries of a Markdown document: those of the
// ```promql and ```logql blocks, and the code spans of the text that are
// queries. In a block, a line that starts without indentation starts a
// query; indented lines continue it.
func markdownQueries(file, text string) []printedQuery {
	var (
		out       []printedQuery
		fence     string // the fence's info string while in a block
		inFence   bool
		cur       *printedQuery
		paragraph []string
		paraLine  int
	)
	flushQuery := func() {
		if cur != nil {
			cur.text = strings.TrimSpace(cur.text)
			cur.key = normalQuery(cur.text)
			out = append(out, *cur)
			cur = nil
		}
	}
	// Code spans may wrap: read them per paragraph.
	flushParagraph := func() {
		joined := strings.Join(paragraph, "\n")
		for _, m := range codeSpan.FindAllStringSubmatchIndex(joined, -1) {
			span := strings.Join(strings.Fields(joined[m[2]:m[3]]), " ")
			if lang := queryLanguage(span); lang != "" {
				line := paraLine + strings.Count(joined[:m[0]], "\n")
				out = append(out, printedQuery{file: file, where: fmt.Sprintf("%s:%d", file, line), lang: lang, text: span, key: normalQuery(span), inline: true})
			}
		}
		paragraph = nil
	}
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			if !inFence {
				flushParagraph()
				inFence, fence = true, strings.TrimPrefix(trimmed, "```")
			} else if trimmed == "```" {
				flushQuery()
				inFence = false
			}
			continue
		}
		if inFence {
			if fence != langPromQL && fence != langLogQL {
				continue
			}
			switch {
			case trimmed == "":
				flushQuery()
			case cur != nil && line != strings.TrimLeft(line, " \t"):
				cur.text += "\n" + line
			default:
				flushQuery()
				cur = &printedQuery{file: file, where: fmt.Sprintf("%s:%d", file, n), lang: fence, text: line}
			}
			continue
		}
		if trimmed == "" {
			flushParagraph()
			continue
		}
		if len(paragraph) == 0 {
			paraLine = n
		}
		paragraph = append(paragraph, line)
	}
	flushParagraph()
	return out
}

// ruleQueries returns the expressions of a rule file (Prometheus' format,
// which Loki's ruler reads too) or of a PrometheusRule manifest.
func ruleQueries(file string, data []byte) ([]printedQuery, error) {
	type groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert  string `json:"alert"`
			Record string `json:"record"`
			Expr   string `json:"expr"`
		} `json:"rules"`
	}
	var doc struct {
		Kind   string `json:"kind"`
		Groups groups `json:"groups"`
		Spec   struct {
			Groups groups `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	gs := doc.Groups
	if doc.Kind == "PrometheusRule" {
		gs = doc.Spec.Groups
	}
	var out []printedQuery
	for _, g := range gs {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			lang := queryLanguage(r.Expr)
			if lang == "" {
				return nil, fmt.Errorf("%s: rule %s: expression %q is neither PromQL nor LogQL", file, name, r.Expr)
			}
			out = append(out, printedQuery{file: file, where: fmt.Sprintf("%s: rule %s", file, name), lang: lang, text: strings.TrimSpace(r.Expr), key: normalQuery(r.Expr)})
		}
	}
	return out, nil
}

// dashboardQueries returns the targets of a Grafana dashboard's panels and
// the queries of its template variables.
func dashboardQueries(file string, data []byte) ([]printedQuery, error) {
	d, err := parseDashboard(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out []printedQuery
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, err := v.queryText()
		if err != nil {
			return nil, fmt.Errorf("%s: variable %s: %w", file, v.Name, err)
		}
		if v.Datasource == nil || v.Datasource.Type != "prometheus" {
			return nil, fmt.Errorf("%s: variable %s: a query variable of a datasource other than prometheus", file, v.Name)
		}
		key := "variable " + v.Name
		out = append(out, printedQuery{file: file, where: file + ": " + key, lang: langPromQL, text: q, key: key})
	}
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			key := fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)
			out = append(out, printedQuery{file: file, where: file + ": " + key, lang: tg.language(p), text: tg.Expr, key: key})
		}
	}
	return out, nil
}

// queryRunner is a test that runs printed queries against a real server and
// asserts on what comes back.
type queryRunner struct {
	// test is the test function.
	test string
	// calls is what the test's body calls to get the queries it runs;
	// TestEveryPrintedQueryRuns reads the test's source for it.
	calls string
	// own, for a test that reads the queries its own way, returns them as
	// it reads them.
	own func(root string) ([]string, error)
	// takes, for a test that gets its queries from printedQueriesOf, says
	// which it takes (of those that no runner before it runs).
	takes func(q printedQuery) bool
}

// queryRunners are the tests that run printed queries; a query belongs to
// the first that runs it.
var queryRunners = []queryRunner{
	{
		// The rules of alerts/ (the PrometheusRule manifest holds those of
		// prometheus-rules.yaml, TestPrometheusRuleIsTheRuleFile) and the
		// queries of the README's section "Alerts", on the alerts that
		// real Events raise in Alertmanager.
		test:  "TestAlerts",
		calls: "readAlertsDoc(t)",
		own: func(root string) ([]string, error) {
			var out []string
			for _, f := range []string{"alerts/loki-rules.yaml", "alerts/prometheus-rules.yaml"} {
				data, err := os.ReadFile(filepath.Join(root, f))
				if err != nil {
					return nil, err
				}
				qs, err := ruleQueries(f, data)
				if err != nil {
					return nil, err
				}
				for _, q := range qs {
					out = append(out, q.text)
				}
			}
			readme, err := os.ReadFile(filepath.Join(root, "README.md"))
			if err != nil {
				return nil, err
			}
			_, section, _ := strings.Cut(string(readme), "\n## Alerts\n")
			section, _, _ = strings.Cut(section, "\n## ")
			for _, q := range markdownQueries("README.md", section) {
				if !q.inline { // readAlertsDoc reads the blocks
					out = append(out, q.text)
				}
			}
			return out, nil
		},
	},
	{
		// The LogQL of the README and docs/loki.md, on the Events of the
		// README's workstation command.
		test:  "TestWorkstationCommand",
		calls: `printedQueriesOf(t, root, "TestWorkstationCommand")`,
		takes: func(q printedQuery) bool {
			return q.lang == langLogQL && (q.file == "README.md" || q.file == "docs/loki.md")
		},
	},
	{
		// The guide's before-and-after pairs, for k8s_events and for
		// k8sobjects, against each peer's lines and ours; unknownStream is
		// the stream of both peers' lines, objectsShop one of k8sobjects'.
		test:  "TestMigrationQueries",
		calls: "migratedoc.Read()",
		own: func(string) ([]string, error) {
			doc, err := migratedoc.Read()
			if err != nil {
				return nil, err
			}
			out := []string{unknownStream, objectsShop}
			for _, q := range slices.Concat(doc.Queries, doc.ObjectsQueries) {
				out = append(out, q.Before, q.After)
			}
			return out, nil
		},
	},
	{
		// The dashboard, the README's PromQL and the receiver's LogQL, on
		// the shipped configuration.
		test:  "TestDashboardQueries",
		calls: `printedQueriesOf(t, root, "TestDashboardQueries")`,
		takes: func(q printedQuery) bool {
			return strings.HasPrefix(q.file, "dashboards/") || q.file == "README.md" || q.file == "receiver/k8sevents/README.md"
		},
	},
}

// normalQuery is q with its white space collapsed, for comparing queries
// that wrap differently.
func normalQuery(q string) string { return strings.Join(strings.Fields(q), " ") }

// assignQueries returns the printed queries by the runner that runs them,
// and those that none runs.
func assignQueries(root string) (map[string][]printedQuery, []printedQuery, error) {
	qs, err := printedQueries(root)
	if err != nil {
		return nil, nil, err
	}
	own := map[string]map[string]bool{}
	for _, r := range queryRunners {
		if r.own == nil {
			continue
		}
		texts, err := r.own(root)
		if err != nil {
			return nil, nil, fmt.Errorf("queries of %s: %w", r.test, err)
		}
		own[r.test] = map[string]bool{}
		for _, s := range texts {
			own[r.test][normalQuery(s)] = true
		}
	}
	byTest := map[string][]printedQuery{}
	var none []printedQuery
	for _, q := range qs {
		i := slices.IndexFunc(queryRunners, func(r queryRunner) bool {
			if r.own != nil {
				return own[r.test][normalQuery(q.text)]
			}
			return r.takes(q)
		})
		if i < 0 {
			none = append(none, q)
			continue
		}
		byTest[queryRunners[i].test] = append(byTest[queryRunners[i].test], q)
	}
	return byTest, none, nil
}

// printedQueriesOf returns the printed queries that test runs: those its
// runner takes and no runner before it runs. The test must assert on the
// result of each.
func printedQueriesOf(t *testing.T, root, test string) []printedQuery {
	t.Helper()
	byTest, _, err := assignQueries(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(byTest[test]) == 0 {
		t.Fatalf("no printed query for %s", test)
	}
	return byTest[test]
}

// TestEveryPrintedQueryRuns fails for a query of the documents, the alert
// rules or the dashboard that no test runs (see queryRunners), and for a
// runner whose test does not read its queries as the runner says.
func TestEveryPrintedQueryRuns(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	byTest, none, err := assignQueries(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range none {
		t.Errorf("%s: no test runs this %s query; run it against the real server in a test and add the test to queryRunners (e2e/queries_test.go)", q.where, q.lang)
	}
	bodies, err := testBodies(".")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, r := range queryRunners {
		body, ok := bodies[r.test]
		switch {
		case !ok:
			t.Errorf("queryRunners names %s, which is no test of package e2e", r.test)
		case !strings.Contains(body, r.calls):
			t.Errorf("%s does not call %s, which queryRunners says gives it its queries", r.test, r.calls)
		}
		total += len(byTest[r.test])
		t.Logf("%s runs %d printed queries", r.test, len(byTest[r.test]))
		for _, q := range byTest[r.test] {
			t.Logf("  %s", q.where)
		}
	}
	if total == 0 {
		t.Error("no printed query found")
	}
}

// testBodies returns the source of the bodies of the Test functions of the
// package in dir, by name.
func testBodies(dir string) (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		file, err := parser.ParseFile(fset, f, src, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, d := range file.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Test") && fn.Body != nil {
				out[fn.Name.Name] = string(src[fset.Position(fn.Body.Pos()).Offset:fset.Position(fn.Body.End()).Offset])
			}
		}
	}
	return out, nil
}

// TestMarkdownQueries reads queries as the documents print them.
func TestMarkdownQueries(t *testing.T) {
	t.Parallel()
	md := "Text with `{a=\"b\"} | c=\"d\"` and `increase()` and\n" +
		"`sum by (x) (rate(m_total{y=\"z\"}[5m]))`, and `{{ $labels.x }}`, a wrapped `{a=\"b\",\n" +
		"c=\"d\"}`.\n\n" +
		"```logql\n{a=\"b\"}\nsum by (x) (\n  count_over_time({a=\"b\"} [5m]))\n```\n\n" +
		"```promql\nALERTS{alertstate=\"firing\"}\n```\n\n" +
		"```yaml\nexpr: '{a=\"b\"}'\n```\n\n`k8s_events_total` and `severity=\"critical\"`\n"
	var got []string
	for _, q := range markdownQueries("x.md", md) {
		got = append(got, q.where+" "+q.lang+" "+q.text)
	}
	want := []string{
		`x.md:1 logql {a="b"} | c="d"`,
		`x.md:2 promql sum by (x) (rate(m_total{y="z"}[5m]))`,
		`x.md:2 logql {a="b", c="d"}`,
		"x.md:6 logql {a=\"b\"}",
		"x.md:7 logql sum by (x) (\n  count_over_time({a=\"b\"} [5m]))",
		`x.md:12 promql ALERTS{alertstate="firing"}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("markdownQueries:\n got %q\nwant %q", got, want)
	}
}
