package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/k8sevents/otelcol-k8sevents/internal/lokitest"
	"github.com/k8sevents/otelcol-k8sevents/internal/promtest"
	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// What TestDashboardQueries needs of Grafana, which it does without: the
// dashboard's JSON model, its template variables substituted as Grafana
// substitutes them, and its targets run as Grafana's Prometheus and Loki
// datasources run them.

// dashboard is the part of a Grafana dashboard's JSON model that the tests
// read.
type dashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []dashboardVariable `json:"list"`
	} `json:"templating"`
	Panels []dashboardPanel `json:"panels"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboardPanel struct {
	ID         int               `json:"id"`
	Type       string            `json:"type"`
	Title      string            `json:"title"`
	Datasource *datasourceRef    `json:"datasource"`
	Targets    []dashboardTarget `json:"targets"`
	// Panels are those of a collapsed row.
	Panels []dashboardPanel `json:"panels"`
}

type dashboardTarget struct {
	RefID      string         `json:"refId"`
	Datasource *datasourceRef `json:"datasource"`
	Expr       string         `json:"expr"`
	// Prometheus: an instant query, else a range query.
	Instant bool `json:"instant"`
	// Loki: "range" or "instant".
	QueryType string `json:"queryType"`
	MaxLines  int    `json:"maxLines"`
}

type dashboardVariable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *datasourceRef  `json:"datasource"`
	Query      json.RawMessage `json:"query"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
}

func parseDashboard(data []byte) (*dashboard, error) {
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("parse dashboard: %w", err)
	}
	return &d, nil
}

// allPanels returns the panels, those of collapsed rows included, in order.
func (d *dashboard) allPanels() []dashboardPanel {
	var out []dashboardPanel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// variable returns the template variable called name.
func (d *dashboard) variable(name string) (dashboardVariable, bool) {
	i := slices.IndexFunc(d.Templating.List, func(v dashboardVariable) bool { return v.Name == name })
	if i < 0 {
		return dashboardVariable{}, false
	}
	return d.Templating.List[i], true
}

// queryText is a query variable's query: a string, or the query of
// Grafana's Prometheus variable editor ({"query": ..., "qryType": 1}).
func (v dashboardVariable) queryText() (string, error) {
	var s string
	if err := json.Unmarshal(v.Query, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &obj); err != nil || obj.Query == "" {
		return "", fmt.Errorf("query %s is neither a string nor an object with a query", v.Query)
	}
	return obj.Query, nil
}

// datasource is the datasource a target queries: its own, else its panel's.
func (tg dashboardTarget) datasource(p dashboardPanel) datasourceRef {
	if tg.Datasource != nil {
		return *tg.Datasource
	}
	if p.Datasource != nil {
		return *p.Datasource
	}
	return datasourceRef{}
}

// language is the query language of the target's datasource.
func (tg dashboardTarget) language(p dashboardPanel) string {
	switch tg.datasource(p).Type {
	case "prometheus":
		return langPromQL
	case "loki":
		return langLogQL
	}
	return ""
}

// allValue is how a test selects a variable's "All".
const allValue = "$__all"

// grafanaRange is the time range of a dashboard and the intervals that
// Grafana derives from it for a panel.
type grafanaRange struct {
	from, to time.Time
	// interval is $__interval, the step of range queries.
	interval time.Duration
	// rateInterval is $__rate_interval.
	rateInterval time.Duration
}

// newGrafanaRange derives the intervals as Grafana does for a Prometheus
// datasource whose "Scrape interval" setting is scrapeInterval (Grafana's
// default is 15s; set it to what Prometheus scrapes at), and a panel of
// about 1,000 data points: $__interval is the range divided by the data
// points, at least the scrape interval, and $__rate_interval
// max($__interval + scrape interval, 4 * scrape interval).
func newGrafanaRange(from, to time.Time, scrapeInterval time.Duration) grafanaRange {
	const maxDataPoints = 1000
	interval := max(scrapeInterval, (to.Sub(from) / maxDataPoints).Round(time.Second))
	return grafanaRange{from: from, to: to, interval: interval, rateInterval: max(interval+scrapeInterval, 4*scrapeInterval)}
}

func seconds(d time.Duration) string { return strconv.Itoa(int(math.Ceil(d.Seconds()))) + "s" }

var grafanaVariable = regexp.MustCompile(`\$\{([a-zA-Z0-9_]+)(?::[a-z]+)?\}|\$([a-zA-Z0-9_]+)`)

// interpolate substitutes the variables of a query as Grafana does before
// it sends the query: the built-in intervals, and the template variables
// with the values sel selects (allValue for "All"). A value of a variable
// that is multi-valued or has "All" is escaped for a regular expression,
// and several values become (a|b). A variable the dashboard does not define
// or sel does not set is an error.
func interpolate(d *dashboard, expr string, sel map[string][]string, r grafanaRange) (string, error) {
	var errs []error
	out := grafanaVariable.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVariable.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		switch name {
		case "__interval", "__auto":
			return seconds(r.interval)
		case "__rate_interval":
			return seconds(r.rateInterval)
		case "__range":
			return seconds(r.to.Sub(r.from))
		case "__range_s":
			return strconv.Itoa(int(math.Ceil(r.to.Sub(r.from).Seconds())))
		case "__interval_ms":
			return strconv.FormatInt(r.interval.Milliseconds(), 10)
		}
		v, ok := d.variable(name)
		if !ok {
			errs = append(errs, fmt.Errorf("variable $%s is not defined", name))
			return m
		}
		values := sel[name]
		switch {
		case len(values) == 0:
			errs = append(errs, fmt.Errorf("no value selected for $%s", name))
			return m
		case slices.Equal(values, []string{allValue}):
			if !v.IncludeAll || v.AllValue == "" {
				errs = append(errs, fmt.Errorf("$%s has no custom all value", name))
			}
			return v.AllValue
		case !v.Multi && !v.IncludeAll:
			return values[0]
		}
		escaped := make([]string, len(values))
		for i, s := range values {
			escaped[i] = regexpEscape(s)
		}
		if len(escaped) == 1 {
			return escaped[0]
		}
		return "(" + strings.Join(escaped, "|") + ")"
	})
	return out, errors.Join(errs...)
}

// regexpEscape escapes s for a regular expression inside a quoted PromQL or
// LogQL string, as Grafana's datasources do for multi-valued variables.
func regexpEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\$^*{}[]'+?.()|`, r) {
			b.WriteString(`\\`)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// targetResult is what a datasource answered to a target.
type targetResult struct {
	query   string    // the query as sent
	at      time.Time // when an instant query was evaluated
	series  []promtest.Series
	samples []promtest.Sample
	entries []lokitest.Entry
	values  []string // a variable's values
}

func (r targetResult) empty() bool {
	return len(r.series)+len(r.samples)+len(r.entries)+len(r.values) == 0
}

// runPrometheus runs a target as Grafana's Prometheus datasource does: a
// range query with the step $__interval, or an instant query at the end of
// the range.
func runPrometheus(ctx context.Context, p *promtest.Prometheus, expr string, instant bool, r grafanaRange) (targetResult, error) {
	res := targetResult{query: expr, at: r.to}
	var err error
	if instant {
		res.samples, err = p.Query(ctx, expr, r.to)
	} else {
		res.series, err = p.QueryRange(ctx, expr, r.from, r.to, r.interval)
	}
	return res, err
}

// runLoki runs a log query as Grafana's Loki datasource does, up to
// maxLines lines (Grafana's default 1000).
func runLoki(ctx context.Context, l *lokitest.Loki, expr string, maxLines int, r grafanaRange) (targetResult, error) {
	if maxLines == 0 {
		maxLines = 1000
	}
	entries, err := l.QueryRange(ctx, expr, r.from, r.to, maxLines)
	return targetResult{query: expr, entries: entries}, err
}

var labelValues = regexp.MustCompile(`^label_values\(\s*(.+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

// runLabelValues runs Grafana's label_values(<series selector>, <label>)
// as its Prometheus datasource does: the label values API, over the range.
func runLabelValues(ctx context.Context, p *promtest.Prometheus, query string, r grafanaRange) (targetResult, error) {
	m := labelValues.FindStringSubmatch(query)
	if m == nil {
		return targetResult{}, fmt.Errorf("variable query %q: want label_values(<selector>, <label>)", query)
	}
	q := url.Values{"match[]": {m[1]}, "start": {strconv.FormatInt(r.from.Unix(), 10)}, "end": {strconv.FormatInt(r.to.Unix(), 10)}}
	var resp struct {
		Status string   `json:"status"`
		Data   []string `json:"data"`
	}
	u := p.URL() + "/api/v1/label/" + m[2] + "/values?" + q.Encode()
	if err := testbin.GetJSON(ctx, u, &resp); err != nil {
		return targetResult{}, err
	}
	if resp.Status != "success" {
		return targetResult{}, fmt.Errorf("GET %s: status %q", u, resp.Status)
	}
	return targetResult{query: query, values: resp.Data}, nil
}
