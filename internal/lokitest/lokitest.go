// Package lokitest runs a single-process Grafana Loki, built by `make loki`,
// as a child process of a test, and queries it with LogQL.
//
// What Loki v3.7.8 makes of OTLP logs with its default OTLP configuration
// (read in its source and observed in e2e.TestLoki):
//
//   - Index labels (Entry.Labels) are the resource attributes on Loki's
//     default list (distributor.otlp.default_resource_attributes_as_index_labels),
//     which includes k8s.cluster.name, k8s.namespace.name, k8s.pod.name,
//     k8s.container.name and the k8s.<workload>.name attributes, with dots
//     replaced by underscores: k8s_namespace_name. Loki adds service_name,
//     taken from service.name or, failing that, from the first index label on
//     its discover_service_name list (such as k8s_container_name), else
//     "unknown_service".
//   - Structured metadata (Entry.StructuredMetadata) holds every other
//     resource attribute (k8s.object.kind -> k8s_object_kind), every log
//     record attribute (k8s.event.reason -> k8s_event_reason, integers as
//     decimal strings), scope_name, severity_text and severity_number as sent,
//     observed_timestamp in Unix nanoseconds, and detected_level. Loki derives
//     detected_level at ingestion from severity_text when it is set, lower-cased
//     when it names a level and kept as-is otherwise ("Warning" -> "warn",
//     "Normal" -> "Normal"), and from severity_number only when there is no
//     severity_text.
//   - The line is the record's body; the entry's time is the record's
//     timestamp, or its observed timestamp when that is unset.
//
// QueryRange asks for the "categorize-labels" response encoding, so that
// Entry.Labels holds only the index labels. Without it, Loki returns the
// structured metadata merged into each stream's labels.
package lokitest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/k8sevents/otelcol-k8sevents/internal/promtest"
	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// EnvBinary names the environment variable that points at the Loki binary.
// `make test` sets it to .bin/loki.
const EnvBinary = "K8SEVENTS_LOKI"

// readyTimeout bounds the wait for /ready. Loki answers after about 30 s;
// this only stops a broken start from hanging the test.
const readyTimeout = 3 * time.Minute

// Loki is one running Loki process.
type Loki struct {
	srv *testbin.Running
}

// Options say what Loki runs besides its store.
type Options struct {
	// RuleFiles are ruler rule files: Prometheus' rule format with LogQL
	// expressions. They are copied into the ruler's local storage for the
	// tenant "fake", the one tenant of a Loki with auth_enabled: false.
	// Default: none, and the ruler evaluates nothing.
	RuleFiles []string
	// AlertmanagerURL is where the ruler sends alerts, such as
	// http://127.0.0.1:9093. Default: empty, alerts stay in Loki.
	AlertmanagerURL string
	// EvaluationInterval is how often the ruler evaluates the rules (and
	// reads the rule files again). Default: 1s. Loki's own default is 1m.
	EvaluationInterval time.Duration
}

// Entry is one log line returned by a LogQL query.
type Entry struct {
	// Labels are the stream's index labels.
	Labels map[string]string
	// Time is the entry's timestamp.
	Time time.Time
	// Line is the log line: an OTLP record's body.
	Line string
	// StructuredMetadata is what Loki stored next to the line.
	StructuredMetadata map[string]string
	// Parsed holds the labels that parsers in the query (| json, | logfmt)
	// extracted.
	Parsed map[string]string
}

// Binary returns the Loki binary to run: $K8SEVENTS_LOKI, else .bin/loki at
// the module root (see testbin.Find).
func Binary(t testing.TB) string {
	t.Helper()
	return testbin.Find(t, EnvBinary, ".bin/loki", "run `make test`, which builds it with `make loki`")
}

// Start starts Loki with its data in a temporary directory and waits until
// it is ready. Loki is killed in t.Cleanup; when the test failed, the end of
// its log is logged.
func Start(t testing.TB, opts Options) *Loki {
	t.Helper()
	bin := Binary(t)
	if opts.EvaluationInterval == 0 {
		opts.EvaluationInterval = time.Second
	}
	began := time.Now()
	r := testbin.StartServer(t, testbin.Server{
		Name:         "loki",
		Binary:       bin,
		Ports:        2,
		ReadyPath:    "/ready",
		ReadyTimeout: readyTimeout,
		Args: func(dir string, ports []int) ([]string, error) {
			if err := copyRules(filepath.Join(dir, "rules", tenant), opts.RuleFiles); err != nil {
				return nil, err
			}
			path := filepath.Join(dir, "loki.yaml")
			if err := os.WriteFile(path, []byte(config(dir, ports[0], ports[1], opts)), 0o600); err != nil {
				return nil, fmt.Errorf("write config: %w", err)
			}
			return []string{"-config.file=" + path}, nil
		},
	})
	t.Logf("lokitest: Loki at %s ready after %v", r.URL, time.Since(began).Round(time.Second))
	return &Loki{srv: r}
}

// tenant is the tenant of a Loki with auth_enabled: false (its
// -auth.no-auth-tenant), the directory the ruler reads its rules from.
const tenant = "fake"

// copyRules copies the rule files into dir, the tenant's directory of the
// ruler's local storage.
func copyRules(dir string, files []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read rule file: %w", err)
		}
		// Numbered, so that files of the same name in different
		// directories do not overwrite each other.
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%02d-%s", i, filepath.Base(f))), b, 0o600); err != nil {
			return fmt.Errorf("copy rule file: %w", err)
		}
	}
	return nil
}

// config is a single-process Loki that keeps everything under dir. The
// limits are Loki's defaults except where noted.
func config(dir string, httpPort, grpcPort int, opts Options) string {
	return fmt.Sprintf(`auth_enabled: false
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %[2]d
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: %[3]d
  log_level: info
common:
  instance_addr: 127.0.0.1
  path_prefix: %[1]s
  storage:
    filesystem:
      chunks_directory: %[1]s/chunks
      rules_directory: %[1]s/rules
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory
schema_config:
  configs:
    - from: 2020-10-24
      store: tsdb
      object_store: filesystem
      schema: v13
      index:
        prefix: index_
        period: 24h
query_range:
  # Tests poll the same query until data arrives: never answer from a cache.
  cache_results: false
limits_config:
  # OTLP record attributes become structured metadata (Loki's default, made
  # explicit), and detected_level is derived from the severity.
  allow_structured_metadata: true
  discover_log_levels: true
  # Events replayed with start_at: beginning may be older than a week.
  reject_old_samples: false
analytics:
  reporting_enabled: false
`, dir, httpPort, grpcPort) + rulerConfig(opts)
}

// rulerConfig is the ruler's part of the configuration: none without rules
// or an Alertmanager. The ruler reads the rule files from the common
// storage's rules_directory, evaluates them in this process (against the
// ingester's data), and reads them again every evaluation interval.
func rulerConfig(opts Options) string {
	if len(opts.RuleFiles) == 0 && opts.AlertmanagerURL == "" {
		return ""
	}
	return fmt.Sprintf(`ruler:
  enable_api: true
  alertmanager_url: %q
  evaluation_interval: %v
  poll_interval: %v
`, opts.AlertmanagerURL, opts.EvaluationInterval, opts.EvaluationInterval)
}

// Rules returns the rule groups the ruler has loaded, with their state
// (Loki answers Prometheus' rules API under /prometheus).
func (l *Loki) Rules(ctx context.Context) ([]promtest.RuleGroup, error) {
	return promtest.Rules(ctx, l.srv.URL+"/prometheus")
}

// Alerts returns the ruler's active (pending and firing) alerts.
func (l *Loki) Alerts(ctx context.Context) ([]promtest.Alert, error) {
	return promtest.Alerts(ctx, l.srv.URL+"/prometheus")
}

// URL is Loki's HTTP address, such as http://127.0.0.1:41234.
func (l *Loki) URL() string { return l.srv.URL }

// OTLPEndpoint is the endpoint for the otlp_http exporter, which appends
// /v1/logs to it.
func (l *Loki) OTLPEndpoint() string { return l.srv.URL + "/otlp" }

// RulesDirectory is the ruler's local storage (common.storage.filesystem.
// rules_directory): the ruler reads the rule files of <dir>/fake/ (see
// Options.RuleFiles), again every evaluation interval, so files copied there
// later are loaded too.
func (l *Loki) RulesDirectory() string { return filepath.Join(l.srv.Dir, "rules") }

// LogPath is the file Loki's output goes to.
func (l *Loki) LogPath() string { return l.srv.LogPath() }

// QueryRange runs a LogQL log query over [start, end] and returns up to
// limit entries, oldest first. A metric query is an error.
func (l *Loki) QueryRange(ctx context.Context, logql string, start, end time.Time, limit int) ([]Entry, error) {
	q := url.Values{
		"query":     {logql},
		"start":     {strconv.FormatInt(start.UnixNano(), 10)},
		"end":       {strconv.FormatInt(end.UnixNano(), 10)},
		"limit":     {strconv.Itoa(limit)},
		"direction": {"forward"},
	}
	// Index labels in "stream", structured metadata next to each line.
	body, err := l.get(ctx, "/loki/api/v1/query_range", q, "categorize-labels")
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", logql, err)
	}
	entries, err := decodeStreams(body)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", logql, err)
	}
	return entries, nil
}

// queryResponse is the part of Loki's query_range answer that log queries
// fill.
type queryResponse struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Stream map[string]string   `json:"stream"`
			Values [][]json.RawMessage `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

// decodeStreams flattens a streams result. Each value is [ "<unix ns>",
// "<line>" ] or, with categorize-labels, [ "<unix ns>", "<line>",
// {"structuredMetadata": {...}, "parsed": {...}} ].
func decodeStreams(body []byte) ([]Entry, error) {
	var r queryResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("status %q", r.Status)
	}
	if r.Data.ResultType != "streams" {
		return nil, fmt.Errorf("result type %q, want streams (a log query)", r.Data.ResultType)
	}
	var out []Entry
	for _, s := range r.Data.Result {
		for _, v := range s.Values {
			if len(v) < 2 {
				return nil, fmt.Errorf("value with %d elements", len(v))
			}
			var ts string
			e := Entry{Labels: s.Stream}
			if err := json.Unmarshal(v[0], &ts); err != nil {
				return nil, fmt.Errorf("decode timestamp: %w", err)
			}
			ns, err := strconv.ParseInt(ts, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("decode timestamp: %w", err)
			}
			e.Time = time.Unix(0, ns)
			if err := json.Unmarshal(v[1], &e.Line); err != nil {
				return nil, fmt.Errorf("decode line: %w", err)
			}
			if len(v) > 2 {
				var cat struct {
					StructuredMetadata map[string]string `json:"structuredMetadata"`
					Parsed             map[string]string `json:"parsed"`
				}
				if err := json.Unmarshal(v[2], &cat); err != nil {
					return nil, fmt.Errorf("decode labels of line: %w", err)
				}
				e.StructuredMetadata, e.Parsed = cat.StructuredMetadata, cat.Parsed
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// get GETs an API path of Loki with the query q (and, when set, the
// response encoding flags) and returns the body of a 200 answer.
func (l *Loki) get(ctx context.Context, path string, q url.Values, encodingFlags string) ([]byte, error) {
	var h http.Header
	if encodingFlags != "" {
		h = http.Header{"X-Loki-Response-Encoding-Flags": {encodingFlags}}
	}
	return testbin.Get(ctx, l.srv.URL+path+"?"+q.Encode(), h)
}

// Series returns the label sets of the streams that match the stream
// selector match (such as {service_name="k8s-events"}) and have entries in
// [start, end]: one per stream, index labels only.
func (l *Loki) Series(ctx context.Context, match string, start, end time.Time) ([]map[string]string, error) {
	q := url.Values{
		"match[]": {match},
		"start":   {strconv.FormatInt(start.UnixNano(), 10)},
		"end":     {strconv.FormatInt(end.UnixNano(), 10)},
	}
	body, err := l.get(ctx, "/loki/api/v1/series", q, "")
	if err != nil {
		return nil, fmt.Errorf("series %s: %w", match, err)
	}
	var r struct {
		Status string              `json:"status"`
		Data   []map[string]string `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("series %s: decode response: %w", match, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("series %s: status %q", match, r.Status)
	}
	return r.Data, nil
}

// Sample is one series of a metric query's answer: its labels and value.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// QueryInstant runs a LogQL metric query (count_over_time, sum by, ...) at
// time at, as a Grafana alert rule does, and returns its series.
func (l *Loki) QueryInstant(ctx context.Context, logql string, at time.Time) ([]Sample, error) {
	q := url.Values{"query": {logql}, "time": {strconv.FormatInt(at.UnixNano(), 10)}}
	body, err := l.get(ctx, "/loki/api/v1/query", q, "")
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", logql, err)
	}
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  []json.RawMessage `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %s: decode response: %w", logql, err)
	}
	if r.Status != "success" || r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: status %q, result type %q, want a vector (a metric query)", logql, r.Status, r.Data.ResultType)
	}
	out := make([]Sample, 0, len(r.Data.Result))
	for _, s := range r.Data.Result {
		var v string
		if len(s.Value) != 2 || json.Unmarshal(s.Value[1], &v) != nil {
			return nil, fmt.Errorf("query %s: sample %v", logql, s.Value)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: sample value %q: %w", logql, v, err)
		}
		out = append(out, Sample{Labels: s.Metric, Value: f})
	}
	return out, nil
}
