// Package promtest runs a Prometheus server, built by `make prometheus`, as a
// child process of a test: it scrapes the targets it is given, evaluates
// rule files and sends their alerts to an Alertmanager, at short intervals,
// and answers PromQL.
//
// The types of the rules and alerts API (RuleGroup, Rule, Alert) serve for
// Loki's ruler too, which answers the same API under /prometheus (see
// lokitest).
package promtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// EnvBinary names the environment variable that points at the Prometheus
// binary. `make test` sets it to .bin/prometheus.
const EnvBinary = "K8SEVENTS_PROMETHEUS"

// Options say what Prometheus scrapes and evaluates.
type Options struct {
	// Targets are host:port addresses whose /metrics Prometheus scrapes,
	// in the job "k8sevents". Default: none.
	Targets []string
	// RuleFiles are rule files (paths or globs) Prometheus evaluates.
	// Default: none.
	RuleFiles []string
	// AlertmanagerURL is where alerts go, such as http://127.0.0.1:9093.
	// Default: empty, alerts stay in Prometheus.
	AlertmanagerURL string
	// ScrapeInterval is how often each target is scraped. Default: 1s.
	ScrapeInterval time.Duration
	// EvaluationInterval is how often the rules are evaluated. Default: 1s.
	EvaluationInterval time.Duration
	// Flags are more command-line flags, such as
	// --enable-feature=created-timestamp-zero-ingestion. Default: none.
	Flags []string
	// Config is a prometheus.yml to run instead of the one made of Targets,
	// RuleFiles and AlertmanagerURL (which must then be empty), such as one
	// a document shows. Its global scrape and evaluation intervals are set
	// to ScrapeInterval and EvaluationInterval. Default: empty.
	Config string
}

// Prometheus is one running Prometheus server.
type Prometheus struct {
	srv *testbin.Running
}

// Binary returns the Prometheus binary to run: $K8SEVENTS_PROMETHEUS, else
// .bin/prometheus at the module root (see testbin.Find).
func Binary(t testing.TB) string {
	t.Helper()
	return testbin.Find(t, EnvBinary, ".bin/prometheus", "run `make test`, which builds it with `make prometheus`")
}

// Start starts Prometheus with its data in a temporary directory and waits
// until it is ready. It is killed in t.Cleanup; when the test failed, the end
// of its log is logged.
func Start(t testing.TB, opts Options) *Prometheus {
	t.Helper()
	bin := Binary(t)
	if opts.ScrapeInterval == 0 {
		opts.ScrapeInterval = time.Second
	}
	if opts.EvaluationInterval == 0 {
		opts.EvaluationInterval = time.Second
	}
	cfg, err := config(opts)
	if opts.Config != "" {
		cfg, err = withIntervals(opts)
	}
	if err != nil {
		t.Fatalf("promtest: %v", err)
	}
	began := time.Now()
	r := testbin.StartServer(t, testbin.Server{
		Name:      "prometheus",
		Binary:    bin,
		ReadyPath: "/-/ready",
		Args: func(dir string, ports []int) ([]string, error) {
			path := filepath.Join(dir, "prometheus.yml")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				return nil, fmt.Errorf("write config: %w", err)
			}
			return append([]string{
				"--config.file=" + path,
				"--storage.tsdb.path=" + filepath.Join(dir, "data"),
				fmt.Sprintf("--web.listen-address=127.0.0.1:%d", ports[0]),
			}, opts.Flags...), nil
		},
	})
	t.Logf("promtest: Prometheus at %s ready after %v", r.URL, time.Since(began).Round(time.Millisecond))
	return &Prometheus{srv: r}
}

// config is prometheus.yml for opts. Go's %q quotes strings as YAML reads
// them.
func config(opts Options) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %v\n  evaluation_interval: %v\n", opts.ScrapeInterval, opts.EvaluationInterval)
	if len(opts.RuleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range opts.RuleFiles {
			abs, err := filepath.Abs(f)
			if err != nil {
				return "", fmt.Errorf("rule file %s: %w", f, err)
			}
			fmt.Fprintf(&b, "  - %q\n", abs)
		}
	}
	if opts.AlertmanagerURL != "" {
		u, err := url.Parse(opts.AlertmanagerURL)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("alertmanager URL %q: want http://host:port", opts.AlertmanagerURL)
		}
		fmt.Fprintf(&b, "alerting:\n  alertmanagers:\n    - scheme: %s\n      path_prefix: %q\n      static_configs:\n        - targets: [%q]\n",
			u.Scheme, u.Path, u.Host)
	}
	if len(opts.Targets) > 0 {
		b.WriteString("scrape_configs:\n  - job_name: k8sevents\n    static_configs:\n      - targets:\n")
		for _, t := range opts.Targets {
			fmt.Fprintf(&b, "          - %q\n", t)
		}
	}
	return b.String(), nil
}

// withIntervals is opts.Config with the global intervals of opts.
func withIntervals(opts Options) (string, error) {
	if len(opts.Targets) > 0 || len(opts.RuleFiles) > 0 || opts.AlertmanagerURL != "" {
		return "", errors.New("options: Config with Targets, RuleFiles or AlertmanagerURL; put them into Config")
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(opts.Config), &cfg); err != nil {
		return "", fmt.Errorf("options: Config: %w", err)
	}
	if cfg == nil {
		cfg = map[string]any{}
	}
	global, _ := cfg["global"].(map[string]any)
	if global == nil {
		global = map[string]any{}
	}
	global["scrape_interval"] = opts.ScrapeInterval.String()
	global["evaluation_interval"] = opts.EvaluationInterval.String()
	cfg["global"] = global
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("options: Config: %w", err)
	}
	return string(out), nil
}

// Sample is one series of an instant query's answer.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Series is one series of a range query's answer.
type Series struct {
	Labels map[string]string
	Points []Point
}

// Point is one value of a Series.
type Point struct {
	Time  time.Time
	Value float64
}

// response is the envelope of every answer of the HTTP API.
type response struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

// api GETs path (under /api/v1) with the query q and decodes the answer's
// data into out.
func api(ctx context.Context, base, path string, q url.Values, out any) error {
	u := base + "/api/v1/" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	body, err := testbin.Get(ctx, u, nil)
	if err != nil {
		return err
	}
	var r response
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("GET %s: decode response: %w", u, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("GET %s: status %q: %s: %s", u, r.Status, r.ErrorType, r.Error)
	}
	if err := json.Unmarshal(r.Data, out); err != nil {
		return fmt.Errorf("GET %s: decode data: %w", u, err)
	}
	return nil
}

// Query runs an instant PromQL query at time at (now when zero) and returns
// its series: a vector's samples, or a scalar as one sample without labels.
// A range vector (a matrix) is an error: use QueryRange.
func (p *Prometheus) Query(ctx context.Context, promql string, at time.Time) ([]Sample, error) {
	q := url.Values{"query": {promql}}
	if !at.IsZero() {
		q.Set("time", formatTime(at))
	}
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := api(ctx, p.srv.URL, "query", q, &data); err != nil {
		return nil, fmt.Errorf("query %s: %w", promql, err)
	}
	switch data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &vec); err != nil {
			return nil, fmt.Errorf("query %s: decode vector: %w", promql, err)
		}
		out := make([]Sample, 0, len(vec))
		for _, s := range vec {
			v, err := parseValue(s.Value[1])
			if err != nil {
				return nil, fmt.Errorf("query %s: %w", promql, err)
			}
			out = append(out, Sample{Labels: s.Metric, Value: v})
		}
		return out, nil
	case "scalar":
		var s [2]any
		if err := json.Unmarshal(data.Result, &s); err != nil {
			return nil, fmt.Errorf("query %s: decode scalar: %w", promql, err)
		}
		v, err := parseValue(s[1])
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", promql, err)
		}
		return []Sample{{Labels: map[string]string{}, Value: v}}, nil
	default:
		return nil, fmt.Errorf("query %s: result type %q; want vector or scalar", promql, data.ResultType)
	}
}

// QueryRange runs a PromQL query over [start, end] at step, as a dashboard
// panel does, and returns its series.
func (p *Prometheus) QueryRange(ctx context.Context, promql string, start, end time.Time, step time.Duration) ([]Series, error) {
	q := url.Values{
		"query": {promql},
		"start": {formatTime(start)},
		"end":   {formatTime(end)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	if err := api(ctx, p.srv.URL, "query_range", q, &data); err != nil {
		return nil, fmt.Errorf("query %s: %w", promql, err)
	}
	if data.ResultType != "matrix" {
		return nil, fmt.Errorf("query %s: result type %q; want matrix", promql, data.ResultType)
	}
	out := make([]Series, 0, len(data.Result))
	for _, r := range data.Result {
		s := Series{Labels: r.Metric}
		for _, v := range r.Values {
			ts, ok := v[0].(float64)
			if !ok {
				return nil, fmt.Errorf("query %s: timestamp %v", promql, v[0])
			}
			f, err := parseValue(v[1])
			if err != nil {
				return nil, fmt.Errorf("query %s: %w", promql, err)
			}
			s.Points = append(s.Points, Point{Time: time.UnixMilli(int64(ts * 1000)), Value: f})
		}
		out = append(out, s)
	}
	return out, nil
}

func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// parseValue reads a sample value, which the API sends as a string.
func parseValue(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("sample value %q: %w", s, err)
	}
	return f, nil
}

// Target is one scrape target as Prometheus last saw it.
type Target struct {
	ScrapeURL string            `json:"scrapeUrl"`
	Labels    map[string]string `json:"labels"`
	// Health is "up", "down" or "unknown" (not scraped yet).
	Health     string    `json:"health"`
	LastError  string    `json:"lastError"`
	LastScrape time.Time `json:"lastScrape"`
}

// Targets returns the active scrape targets.
func (p *Prometheus) Targets(ctx context.Context) ([]Target, error) {
	var data struct {
		ActiveTargets []Target `json:"activeTargets"`
	}
	if err := api(ctx, p.srv.URL, "targets", url.Values{"state": {"active"}}, &data); err != nil {
		return nil, fmt.Errorf("targets: %w", err)
	}
	return data.ActiveTargets, nil
}

// RuleGroup is a group of rules as the rules API shows it.
type RuleGroup struct {
	Name  string `json:"name"`
	File  string `json:"file"`
	Rules []Rule `json:"rules"`
	// Interval is the evaluation interval in seconds.
	Interval float64 `json:"interval"`
}

// Rule is an alerting or a recording rule as the rules API shows it.
type Rule struct {
	// Type is "alerting" or "recording".
	Type  string `json:"type"`
	Name  string `json:"name"`
	Query string `json:"query"`
	// Duration is the alerting rule's `for`, in seconds.
	Duration    float64           `json:"duration"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	// State is "inactive", "pending" or "firing" (alerting rules).
	State string `json:"state"`
	// Health is "ok", "err" or "unknown" (not evaluated yet).
	Health         string    `json:"health"`
	LastError      string    `json:"lastError"`
	LastEvaluation time.Time `json:"lastEvaluation"`
	Alerts         []Alert   `json:"alerts"`
}

// Alert is an active (pending or firing) alert of an alerting rule.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	// State is "pending" or "firing".
	State    string    `json:"state"`
	ActiveAt time.Time `json:"activeAt"`
	Value    string    `json:"value"`
}

// Rules returns the rule groups that the server at base (Prometheus, or
// Loki's ruler under <loki>/prometheus) has loaded, with their state.
func Rules(ctx context.Context, base string) ([]RuleGroup, error) {
	var data struct {
		Groups []RuleGroup `json:"groups"`
	}
	if err := api(ctx, base, "rules", nil, &data); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return data.Groups, nil
}

// Alerts returns the active alerts of the server at base (Prometheus, or
// Loki's ruler under <loki>/prometheus).
func Alerts(ctx context.Context, base string) ([]Alert, error) {
	var data struct {
		Alerts []Alert `json:"alerts"`
	}
	if err := api(ctx, base, "alerts", nil, &data); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return data.Alerts, nil
}

// Rules returns the rule groups Prometheus has loaded, with their state.
func (p *Prometheus) Rules(ctx context.Context) ([]RuleGroup, error) { return Rules(ctx, p.srv.URL) }

// Alerts returns Prometheus' active (pending and firing) alerts.
func (p *Prometheus) Alerts(ctx context.Context) ([]Alert, error) { return Alerts(ctx, p.srv.URL) }

// URL is Prometheus' HTTP address, such as http://127.0.0.1:41234.
func (p *Prometheus) URL() string { return p.srv.URL }

// LogPath is the file Prometheus' output goes to.
func (p *Prometheus) LogPath() string { return p.srv.LogPath() }
