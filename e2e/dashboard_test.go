package e2e

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/lokitest"
	"github.com/k8sevents/otelcol-k8sevents/internal/promtest"
)

// The clusters of TestDashboardQueries: two collectors read one control
// plane, the shipped configuration as it is (watch mode) and the same in
// poll mode, under different cluster names.
const (
	dashCluster     = "my-cluster"
	dashPollCluster = "my-cluster-poll"
)

// dashEvent is an Event that TestDashboardQueries creates, as a kubelet or
// node-problem-detector would send it.
type dashEvent struct {
	namespace string // where it is stored; "default" for a Node's
	kind      string
	object    string // the involved object's name
	name      string // the Event's name
	reason    string
	message   string
	rule      string // the shipped rule that marks it as an alert
}

// TestDashboardQueries runs every target and template variable of
// dashboards/kubernetes-events.json, with the variables substituted as
// Grafana substitutes them, against a real Prometheus and a real Loki, and
// the README's PromQL and the receiver README's LogQL too (see
// queryRunners). Both are fed by collectors running otelcol-config.yaml as
// shipped (the cluster my-cluster, in watch mode), and the same in poll mode
// (the cluster my-cluster-poll) for a poll's errors, reading one control plane whose
// controllers make real Events; the test creates the Events a kubelet or
// node-problem-detector would send, and stops the API server once for the
// collectors' errors and restarts. Each answer is compared with the records
// in Loki and the Events created, for several choices of cluster and
// namespace; a target that returns nothing fails, unless its check says
// that nothing is the right answer for that choice and it returns something
// for another.
func TestDashboardQueries(t *testing.T) {
	t.Parallel()
	began := time.Now()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	queries := printedQueriesOf(t, root, "TestDashboardQueries")
	dash := readDashboard(t, root)

	opts := kubeOptions()
	opts.Controllers = true
	opts.NodeMonitorGracePeriod = 10 * time.Second
	cp := startControlPlane(t, opts)
	c := fastClient(t, cp)
	createNamespaces(t, c, "shop", "payments")
	kubeconfig := clusterReaderKubeconfig(t, cp, modeWatch, ownersRules...)
	loki := lokitest.Start(t, lokitest.Options{})

	// Prometheus first: it starts to scrape some seconds after its start,
	// and must see every series of the collectors from its first Event.
	// The zero at a series' start lets increase() count the Event that
	// makes a series, as the dashboard's "Top reasons" says.
	poll, watch := newDashCollector(t), newDashCollector(t)
	targets := []string{poll.events, poll.metrics, watch.events, watch.metrics}
	prom := promtest.Start(t, promtest.Options{Targets: targets, Flags: []string{"--enable-feature=created-timestamp-zero-ingestion"}})
	watch.start(t, root, dashCluster, kubeconfig, loki)
	poll.start(t, root, dashPollCluster, kubeconfig, loki, "--config", "yaml:receivers::k8sevents::mode: poll")
	waitForProm(t, prom, fmt.Sprintf(`count(up == 1) == %d`, len(targets)))
	from := time.Now().Add(-time.Minute)
	ctx := context.Background()
	t.Logf("servers and collectors ready after %v", time.Since(began).Round(time.Second))

	// Real Events: ScalingReplicaSet, SuccessfulCreate, Scheduled for the
	// Pod that fits on the Node and FailedScheduling for the one that does
	// not; RegisteredNode, and NodeNotReady after the grace period (the
	// Node has no kubelet).
	if _, err := c.CoreV1().Nodes().Create(ctx, kubetest.ReadyNode("node-1", "4", "4Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node: %v", err)
	}
	if _, err := c.AppsV1().Deployments("shop").Create(ctx, kubetest.Deployment("shop", "web", 2, "100m", "3Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}

	var created []dashEvent
	round := func(events ...dashEvent) {
		t.Helper()
		for _, e := range events {
			createDashEvent(t, c, e)
		}
		created = append(created, events...)
		for _, cluster := range []string{dashCluster, dashPollCluster} {
			waitForLoki(t, loki, fmt.Sprintf(`{k8s_cluster_name=%q} | k8s_event_source_component=%q`, cluster, testSource), from, len(created))
		}
	}
	oom := func(n int) dashEvent {
		return dashEvent{namespace: "default", kind: "Node", object: "node-1", name: fmt.Sprintf("node-1.oom-%d", n), reason: "OOMKilling",
			message: fmt.Sprintf("Out of memory: Killed process 42%d (java) total-vm:2097152kB, anon-rss:1048576kB", n), rule: "oom-killed"}
	}
	backOff := func(pod string, n int) dashEvent {
		return dashEvent{namespace: "shop", kind: "Pod", object: pod, name: fmt.Sprintf("%s.backoff-%d", pod, n), reason: "BackOff",
			message: fmt.Sprintf("Back-off restarting failed container app in pod %s_shop(%d)", pod, n), rule: "warning-is-error"}
	}
	round(oom(1), backOff("crashy-0", 1), backOff("crashy-1", 1),
		dashEvent{namespace: "payments", kind: "Pod", object: "noimage-0", name: "noimage-0.failed", reason: "Failed",
			message: `Failed to pull image "registry.example/app:1.0": not found`, rule: "pod-failed"},
		dashEvent{namespace: "payments", kind: "Pod", object: "api-0", name: "api-0.unhealthy", reason: "Unhealthy",
			message: "Liveness probe failed: HTTP probe failed with statuscode: 500", rule: "warning"})

	// The API server goes away: the poll fails (an error of kind list),
	// the watch ends (a restart, cause error).
	if err := cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	waitForProm(t, prom, fmt.Sprintf(`otelcol_receiver_k8sevents_errors{k8s_cluster_name=%q, kind="list"} > 0`, dashPollCluster))
	if err := cp.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	waitForProm(t, prom, fmt.Sprintf(`otelcol_receiver_k8sevents_watch_restarts{k8s_cluster_name=%q, cause="error"} > 0`, dashCluster))
	round(oom(2), backOff("crashy-0", 2))
	for _, cluster := range []string{dashCluster, dashPollCluster} {
		for _, reason := range []string{"ScalingReplicaSet", "SuccessfulCreate", "RegisteredNode", "Scheduled", "FailedScheduling", "NodeNotReady"} {
			waitForLoki(t, loki, fmt.Sprintf(`{k8s_cluster_name=%q} | k8s_event_reason=%q`, cluster, reason), from, 1)
		}
	}
	t.Logf("Events made after %v", time.Since(began).Round(time.Second))

	selections := []dashSelection{
		{name: "my-cluster, all namespaces", vars: map[string][]string{"cluster": {dashCluster}, "namespace": {allValue}}},
		{name: "my-cluster, shop", vars: map[string][]string{"cluster": {dashCluster}, "namespace": {"shop"}}},
		{name: "my-cluster-poll, shop and payments", vars: map[string][]string{"cluster": {dashPollCluster}, "namespace": {"shop", "payments"}}},
		{name: "all clusters, all namespaces", vars: map[string][]string{"cluster": {allValue}, "namespace": {allValue}}},
	}
	checks := dashboardChecks(created, from)

	// Controllers may still report: run every query between two readings
	// of Loki and Prometheus that agree with each other and are equal.
	// increase() extrapolates a series' samples to the end of its range,
	// by up to a scrape interval (1s): wait until the newest series is old
	// enough for that to stay below half an Event (5 Events of a series in
	// 15s add 5 x 1s / 15s = 0.33), as on a dashboard looked at a little
	// later.
	const settled = 15 * time.Second
	deadline := time.Now().Add(waitLong)
	for {
		before, err := readDashTruth(ctx, loki, prom, from)
		if err == nil && before.consistent() && time.Since(before.newestSeries()) >= settled {
			runs := runPrinted(ctx, t, dash, queries, selections, prom, loki, from)
			var after dashTruth
			after, err = readDashTruth(ctx, loki, prom, from)
			if err == nil && slices.Equal(before.records, after.records) {
				t.Logf("%d records in Loki; queries run %v after the start", len(before.records), time.Since(began).Round(time.Second))
				checkPrinted(t, queries, selections, checks, runs, before)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Loki and Prometheus do not settle on the same Events within %v (last error %v):\n%s", waitLong, err, before.diff())
		}
		time.Sleep(2 * time.Second)
	}
}

// dashCollector is a collector of TestDashboardQueries: where Prometheus
// scrapes its Event count and its own metrics.
type dashCollector struct{ events, metrics string }

// newDashCollector picks the ports of a collector.
func newDashCollector(t *testing.T) dashCollector {
	t.Helper()
	return dashCollector{
		events:  fmt.Sprintf("127.0.0.1:%d", collectortest.FreePort(t)),
		metrics: fmt.Sprintf("127.0.0.1:%d", collectortest.FreePort(t)),
	}
}

// start runs otelcol-config.yaml as shipped, from the repository's root,
// for cluster, with free ports for its listeners and more arguments when
// given.
func (dc dashCollector) start(t *testing.T, root, cluster, kubeconfig string, loki *lokitest.Loki, args ...string) {
	t.Helper()
	_, port, _ := strings.Cut(dc.metrics, ":")
	col := collectortest.StartArgs(t, root, append([]string{"--config", "otelcol-config.yaml"}, args...),
		"KUBECONFIG="+kubeconfig, "K8SEVENTS_AUTH_TYPE=kubeConfig", "CLUSTER_NAME="+cluster,
		"LOKI_OTLP_ENDPOINT="+loki.OTLPEndpoint(), "STORAGE_DIR="+t.TempDir(),
		fmt.Sprintf("HEALTH_CHECK_ENDPOINT=127.0.0.1:%d", collectortest.FreePort(t)),
		"PROMETHEUS_ENDPOINT="+dc.events, "METRICS_PORT="+port)
	col.WaitOutput("Everything is ready", time.Minute)
	col.WaitOutput("start_at end: skipped the Events already stored", waitLong)
}

func createDashEvent(t *testing.T, c kubernetes.Interface, e dashEvent) {
	t.Helper()
	ev := newEvent(eventSpec{namespace: e.namespace, name: e.name, reason: e.reason, message: e.message, kind: e.kind})
	ev.Type = corev1.EventTypeWarning
	ev.InvolvedObject.Name = e.object
	if e.kind == "Node" {
		ev.InvolvedObject.Namespace, ev.InvolvedObject.UID = "", ""
	}
	if _, err := c.CoreV1().Events(e.namespace).Create(context.Background(), ev, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create %s Event: %v", e.reason, err)
	}
}

// waitForProm waits until the PromQL query returns a series.
func waitForProm(t *testing.T, p *promtest.Prometheus, promql string) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		got, err := p.Query(ctx, promql, time.Time{})
		cancel()
		if err == nil && len(got) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: nothing within %v (last error %v)", promql, waitLong, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func readDashboard(t *testing.T, root string) *dashboard {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "dashboards", "kubernetes-events.json"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDashboard(data)
	if err != nil {
		t.Fatal(err)
	}
	// Imported as it is, through the UI or provisioning: the datasources
	// are variables of the dashboard, never the UID of someone's.
	if d.SchemaVersion != 42 || d.UID == "" || d.Title == "" {
		t.Errorf("dashboard: schemaVersion %d, uid %q, title %q; want Grafana's classic model 42, a uid and a title", d.SchemaVersion, d.UID, d.Title)
	}
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			ds := tg.datasource(p)
			name, ok := strings.CutPrefix(ds.UID, "${")
			name, ok2 := strings.CutSuffix(name, "}")
			v, found := d.variable(name)
			if !ok || !ok2 || !found || v.Type != "datasource" || string(v.Query) != fmt.Sprintf("%q", ds.Type) {
				t.Errorf("panel %q target %s: datasource %+v, want ${<a datasource variable of type %s>}", p.Title, tg.RefID, ds, ds.Type)
			}
		}
	}
	return d
}

// dashRecord is a record in Loki, as the checks compare it.
type dashRecord struct {
	cluster, namespace, kind, object, reason, eventType, level string
	rule, title, message                                       string
	line                                                       string
	time                                                       time.Time
	// observed is when the collector read the Event.
	observed time.Time
}

func (r dashRecord) series() eventSeries {
	return eventSeries{cluster: r.cluster, namespace: r.namespace, kind: r.kind, reason: r.reason, eventType: r.eventType}
}

// eventSeries is a series of k8s_events_total.
type eventSeries struct{ cluster, namespace, kind, reason, eventType string }

// dashTruth is what Loki holds and what Prometheus counts.
type dashTruth struct {
	records []dashRecord
	counts  map[eventSeries]int // k8s_events_total
}

func readDashTruth(ctx context.Context, loki *lokitest.Loki, prom *promtest.Prometheus, from time.Time) (dashTruth, error) {
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	entries, err := loki.QueryRange(qctx, `{service_name="k8s-events"}`, from, time.Now().Add(time.Minute), 5000)
	if err != nil {
		return dashTruth{}, err
	}
	samples, err := prom.Query(qctx, "k8s_events_total", time.Time{})
	if err != nil {
		return dashTruth{}, err
	}
	var tr dashTruth
	for _, e := range entries {
		md := e.StructuredMetadata
		tr.records = append(tr.records, dashRecord{
			cluster: e.Labels["k8s_cluster_name"], namespace: e.Labels["k8s_namespace_name"],
			kind: md["k8s_object_kind"], object: md["k8s_object_name"], reason: md["k8s_event_reason"], eventType: md["k8s_event_type"],
			level: md["detected_level"], rule: md["k8s_event_alert_rule"], title: md["k8s_event_alert_title"], message: md["k8s_event_alert_message"],
			line: e.Line, time: e.Time, observed: unixNano(md["observed_timestamp"]),
		})
	}
	slices.SortFunc(tr.records, func(a, b dashRecord) int { return strings.Compare(a.String(), b.String()) })
	tr.counts = map[eventSeries]int{}
	for _, s := range samples {
		l := s.Labels
		tr.counts[eventSeries{cluster: l["k8s_cluster_name"], namespace: l["k8s_namespace_name"], kind: l["k8s_object_kind"], reason: l["k8s_event_reason"], eventType: l["k8s_event_type"]}] += int(s.Value)
	}
	return tr, nil
}

func (r dashRecord) String() string {
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s|%s|%s", r.time.Format(time.RFC3339Nano), r.cluster, r.namespace, r.kind, r.object, r.reason, r.eventType, r.rule, r.line)
}

// inLoki counts the records by series.
func (tr dashTruth) inLoki() map[eventSeries]int {
	out := map[eventSeries]int{}
	for _, r := range tr.records {
		out[r.series()]++
	}
	return out
}

// newestSeries is when the collector read the first Event of the series
// that began last.
func (tr dashTruth) newestSeries() time.Time {
	first := map[eventSeries]time.Time{}
	for _, r := range tr.records {
		if f, ok := first[r.series()]; !ok || r.observed.Before(f) {
			first[r.series()] = r.observed
		}
	}
	var newest time.Time
	for _, f := range first {
		if f.After(newest) {
			newest = f
		}
	}
	return newest
}

func unixNano(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func (tr dashTruth) consistent() bool {
	return len(tr.records) > 0 && maps.Equal(tr.inLoki(), tr.counts)
}

func (tr dashTruth) diff() string {
	return fmt.Sprintf("k8s_events_total %v\nLoki             %v", tr.counts, tr.inLoki())
}

// dashSelection is a choice of the dashboard's variables.
type dashSelection struct {
	name string
	vars map[string][]string
}

func (s dashSelection) picks(variable, value string) bool {
	vs := s.vars[variable]
	return slices.Equal(vs, []string{allValue}) || (value != "" && slices.Contains(vs, value))
}

// has says whether the dashboard shows the record with this selection.
func (s dashSelection) has(r dashRecord) bool {
	return s.picks("cluster", r.cluster) && s.picks("namespace", r.namespace)
}

// records returns the records of tr that the selection shows and keep
// accepts.
func (s dashSelection) records(tr dashTruth, keep func(dashRecord) bool) []dashRecord {
	var out []dashRecord
	for _, r := range tr.records {
		if s.has(r) && keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// clusters returns the clusters the selection shows.
func (s dashSelection) clusters() []string {
	var out []string
	for _, c := range []string{dashCluster, dashPollCluster} {
		if s.picks("cluster", c) {
			out = append(out, c)
		}
	}
	return out
}

// printedRun is the answer to one printed query, for one selection of the
// dashboard (none for the documents' queries).
type printedRun struct {
	res targetResult
	err error
}

// runPrinted runs the printed queries: each target and variable of the
// dashboard once per selection, and the documents' queries once.
func runPrinted(ctx context.Context, t *testing.T, d *dashboard, queries []printedQuery, sels []dashSelection, prom *promtest.Prometheus, loki *lokitest.Loki, from time.Time) map[string]map[string]printedRun {
	t.Helper()
	// The Prometheus datasource's scrape interval is the one of promtest.
	r := newGrafanaRange(from, time.Now(), time.Second)
	targets := map[string]struct {
		p  dashboardPanel
		tg dashboardTarget
	}{}
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			targets[fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)] = struct {
				p  dashboardPanel
				tg dashboardTarget
			}{p, tg}
		}
	}
	out := map[string]map[string]printedRun{}
	run := func(sel, key string, f func(context.Context) (targetResult, error)) {
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		res, err := f(qctx)
		if out[sel] == nil {
			out[sel] = map[string]printedRun{}
		}
		out[sel][key] = printedRun{res: res, err: err}
	}
	for _, q := range queries {
		if !strings.HasPrefix(q.file, "dashboards/") {
			// As a Grafana alert rule or the query page runs them: an
			// instant query, now.
			run("", q.key, func(ctx context.Context) (targetResult, error) {
				at := time.Now()
				if q.lang == langPromQL {
					samples, err := prom.Query(ctx, q.text, at)
					return targetResult{query: q.text, at: at, samples: samples}, err
				}
				samples, err := loki.QueryInstant(ctx, q.text, at)
				res := targetResult{query: q.text, at: at}
				for _, s := range samples {
					res.samples = append(res.samples, promtest.Sample{Labels: s.Labels, Value: s.Value})
				}
				return res, err
			})
			continue
		}
		for _, sel := range sels {
			run(sel.name, q.key, func(ctx context.Context) (targetResult, error) {
				expr, err := interpolate(d, q.text, sel.vars, r)
				if err != nil {
					return targetResult{}, err
				}
				if strings.HasPrefix(q.key, "variable ") {
					return runLabelValues(ctx, prom, expr, r)
				}
				tg, ok := targets[q.key]
				if !ok {
					return targetResult{}, fmt.Errorf("no target %s", q.key)
				}
				switch q.lang {
				case langPromQL:
					return runPrometheus(ctx, prom, expr, tg.tg.Instant, r)
				case langLogQL:
					if tg.tg.QueryType != "range" || queryLanguage(expr) != langLogQL || !strings.HasPrefix(strings.TrimSpace(expr), "{") {
						return targetResult{}, fmt.Errorf("%s: only log queries of type range are run here", expr)
					}
					return runLoki(ctx, loki, expr, tg.tg.MaxLines, r)
				}
				return targetResult{}, fmt.Errorf("%s: datasource of language %q", q.key, q.lang)
			})
		}
	}
	return out
}

// dashCheck checks the answer to a printed query for a selection (the zero
// selection for the documents' queries). It returns false when the right
// answer is empty, which the caller then accepts.
type dashCheck func(t *testing.T, sel dashSelection, res targetResult, tr dashTruth) (wantData bool)

// checkPrinted checks each run with its check; a query without a check, an
// error, or an empty answer where the check wants data fails the test.
func checkPrinted(t *testing.T, queries []printedQuery, sels []dashSelection, checks map[string]dashCheck, runs map[string]map[string]printedRun, tr dashTruth) {
	t.Helper()
	for _, q := range queries {
		check, ok := checks[q.key]
		if !ok {
			t.Errorf("%s: no check of its answer in TestDashboardQueries (dashboardChecks)", q.where)
			continue
		}
		s := []dashSelection{{}}
		if strings.HasPrefix(q.file, "dashboards/") {
			s = sels
		}
		answered := false
		for _, sel := range s {
			t.Run(strings.TrimSpace(q.key+" "+sel.name), func(t *testing.T) {
				run := runs[sel.name][q.key]
				if run.err != nil {
					t.Fatalf("%s: %v", q.where, run.err)
				}
				t.Logf("%s", run.res.query)
				wantData := check(t, sel, run.res, tr)
				switch {
				case !run.res.empty():
					answered = true
				case wantData:
					t.Errorf("%s: nothing returned for %q", q.where, run.res.query)
				default:
					t.Logf("nothing returned, as wanted")
				}
			})
		}
		if !answered {
			t.Errorf("%s: returns nothing for any selection", q.where)
		}
	}
}

// dashboardChecks are the checks of the printed queries that
// TestDashboardQueries runs, by query key (see printedQuery.key).
func dashboardChecks(created []dashEvent, from time.Time) map[string]dashCheck {
	warnings := func(r dashRecord) bool { return r.eventType == "Warning" }
	alerts := func(r dashRecord) bool { return r.rule != "" }
	return map[string]dashCheck{
		"variable cluster": func(t *testing.T, _ dashSelection, res targetResult, _ dashTruth) bool {
			if want := []string{dashCluster, dashPollCluster}; !slices.Equal(res.values, want) {
				t.Errorf("clusters %v, want %v", res.values, want)
			}
			return true
		},
		"variable namespace": func(t *testing.T, sel dashSelection, res targetResult, tr dashTruth) bool {
			want := map[string]bool{}
			for _, r := range tr.records {
				if sel.picks("cluster", r.cluster) && r.namespace != "" {
					want[r.namespace] = true
				}
			}
			if w := slices.Sorted(maps.Keys(want)); !slices.Equal(res.values, w) {
				t.Errorf("namespaces %v, want those with Events in Loki: %v", res.values, w)
			}
			return true
		},
		`panel "Events per minute by type and reason" target A`: func(t *testing.T, sel dashSelection, res targetResult, tr dashTruth) bool {
			want := map[string]bool{}
			for _, r := range sel.records(tr, func(dashRecord) bool { return true }) {
				want[r.eventType+" "+r.reason] = true
			}
			got := map[string]bool{}
			for _, s := range res.series {
				key := s.Labels["k8s_event_type"] + " " + s.Labels["k8s_event_reason"]
				got[key] = true
				if peak := maxValue(s.Points); !(peak > 0) {
					t.Errorf("%s: at most %v per minute, want an increase where its Events arrived", key, peak)
				}
			}
			if !maps.Equal(got, want) {
				t.Errorf("series %v, want one per type and reason of the records in Loki: %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
			}
			return true
		},
		`panel "Top reasons" target A`: func(t *testing.T, sel dashSelection, res targetResult, tr dashTruth) bool {
			want := map[string]int{}
			for _, r := range sel.records(tr, func(dashRecord) bool { return true }) {
				want[r.eventType+" "+r.reason]++
			}
			got := map[string]int{}
			lowest := math.MaxInt
			for _, s := range res.samples {
				key := s.Labels["k8s_event_type"] + " " + s.Labels["k8s_event_reason"]
				got[key] = int(math.Round(s.Value))
				lowest = min(lowest, got[key])
				if got[key] != want[key] {
					t.Errorf("%s: %v Events, want the %d records in Loki", key, s.Value, want[key])
				}
			}
			if len(got) != min(10, len(want)) {
				t.Errorf("%d reasons, want %d (the ten most frequent of %v)", len(got), min(10, len(want)), want)
			}
			for key, n := range want {
				if _, ok := got[key]; !ok && n > lowest {
					t.Errorf("%s (%d Events) is not among the top reasons %v", key, n, got)
				}
			}
			return true
		},
		`panel "Warnings" target A`: func(t *testing.T, sel dashSelection, res targetResult, tr dashTruth) bool {
			checkRows(t, sel, res.entries, sel.records(tr, warnings), created)
			return true
		},
		`panel "Alerts" target A`: func(t *testing.T, sel dashSelection, res targetResult, tr dashTruth) bool {
			rows := sel.records(tr, alerts)
			// The shipped rules make every Warning, and nothing else, an alert.
			if w := sel.records(tr, warnings); !slices.Equal(rows, w) {
				t.Errorf("alerts in Loki %v, want the Warnings %v", rows, w)
			}
			checkRows(t, sel, res.entries, rows, created)
			for _, e := range res.entries {
				md := e.StructuredMetadata
				kind, reason := md["k8s_object_kind"], md["k8s_event_reason"]
				if title := md["k8s_event_alert_title"]; title != kind+" "+reason {
					t.Errorf("%q: title %q, want %q", e.Line, title, kind+" "+reason)
				}
				if msg, want := md["k8s_event_alert_message"], kind+" "+md["k8s_object_name"]+": "+e.Line; msg != want {
					t.Errorf("%q: alert message %q, want %q", e.Line, msg, want)
				}
			}
			return true
		},
		`panel "Delivery lag" target A`: checkLag,
		`panel "Delivery lag" target B`: checkLag,
		`panel "Records accepted and refused per minute" target A`: func(t *testing.T, sel dashSelection, res targetResult, _ dashTruth) bool {
			for _, s := range perCluster(t, sel, res.series) {
				if peak := maxValue(s.Points); !(peak > 0) {
					t.Errorf("%v: at most %v records accepted per minute, want some", s.Labels, peak)
				}
			}
			return true
		},
		`panel "Records accepted and refused per minute" target B`: func(t *testing.T, sel dashSelection, res targetResult, _ dashTruth) bool {
			for _, s := range perCluster(t, sel, res.series) {
				if peak := maxValue(s.Points); peak != 0 {
					t.Errorf("%v: %v records refused per minute, want 0", s.Labels, peak)
				}
			}
			return true
		},
		`panel "Errors and watch restarts" target A`: func(t *testing.T, sel dashSelection, res targetResult, _ dashTruth) bool {
			// The API server was away once: a poll failed to list, the
			// watch ended. Back, the server may refuse requests until its
			// authorizer has read the RBAC rules (forbidden), and the
			// watch may list again. Loki was there: nothing refused.
			want := map[string][]string{dashPollCluster: {"consume", "forbidden", "list", "timeout"}, dashCluster: {"consume", "forbidden", "list", "timeout", "watch"}}
			checkFailures(t, sel, res.series, "kind", want,
				map[string][]string{dashPollCluster: {"list"}, dashCluster: {"watch"}},
				map[string][]string{dashPollCluster: {"forbidden", "timeout"}, dashCluster: {"forbidden", "list", "timeout"}})
			return true
		},
		`panel "Errors and watch restarts" target B`: func(t *testing.T, sel dashSelection, res targetResult, _ dashTruth) bool {
			// Only the collector in watch mode watches.
			want := map[string][]string{dashCluster: {"error", "gone", "refused", "stall", "timeout"}}
			checkFailures(t, sel, res.series, "cause", want,
				map[string][]string{dashCluster: {"error"}}, map[string][]string{dashCluster: {"gone"}})
			return sel.picks("cluster", dashCluster)
		},
		// README.md: FailedScheduling in the last 5 minutes, per namespace.
		// Prometheus counts when it scrapes, Loki files a record under the
		// Event's time: compare them while all of them are in the window.
		`sum by (k8s_namespace_name) (increase(k8s_events_total{k8s_event_reason="FailedScheduling"}[5m]))`: func(t *testing.T, _ dashSelection, res targetResult, tr dashTruth) bool {
			want := map[string]int{}
			for _, r := range tr.records {
				if r.reason == "FailedScheduling" {
					want[r.namespace]++
				}
			}
			got := map[string]int{}
			for _, s := range res.samples {
				got[s.Labels["k8s_namespace_name"]] = int(math.Round(s.Value))
			}
			if len(want) == 0 {
				t.Error("no FailedScheduling record in Loki")
			}
			if res.at.Sub(from) < 4*time.Minute+30*time.Second {
				if !maps.Equal(got, want) {
					t.Errorf("FailedScheduling per namespace %v (%v), want the records in Loki: %v", got, res.samples, want)
				}
			} else if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
				t.Errorf("FailedScheduling in namespaces %v (%v), want %v", got, res.samples, want)
			}
			return true
		},
		// receiver/k8sevents/README.md: the series it names, one per
		// collector that counts them, as Prometheus stores them.
		`otelcol_receiver_k8sevents_errors{kind="timeout"}`: func(t *testing.T, _ dashSelection, res targetResult, _ dashTruth) bool {
			checkSeriesOf(t, res.samples, dashCluster, dashPollCluster)
			return true
		},
		`otelcol_receiver_k8sevents_watch_restarts{cause="stall"}`: func(t *testing.T, _ dashSelection, res targetResult, _ dashTruth) bool {
			checkSeriesOf(t, res.samples, dashCluster)
			for _, s := range res.samples {
				if s.Value != 0 {
					t.Errorf("%v: %v stalled watches, want 0", s.Labels, s.Value)
				}
			}
			return true
		},
		// receiver/k8sevents/README.md: the Grafana alert rule's query.
		`sum by (k8s_namespace_name, k8s_event_alert_rule, k8s_event_alert_title, k8s_event_alert_message) ( count_over_time({k8s_cluster_name="my-cluster"} | k8s_event_alert_rule != "" [5m]))`: func(t *testing.T, _ dashSelection, res targetResult, tr dashTruth) bool {
			want := map[string]int{}
			for _, r := range tr.records {
				if r.cluster == dashCluster && r.rule != "" && r.time.After(res.at.Add(-5*time.Minute)) && !r.time.After(res.at) {
					want[fmt.Sprintf("%s|%s|%s|%s", r.namespace, r.rule, r.title, r.message)]++
				}
			}
			got := map[string]int{}
			for _, s := range res.samples {
				l := s.Labels
				got[fmt.Sprintf("%s|%s|%s|%s", l["k8s_namespace_name"], l["k8s_event_alert_rule"], l["k8s_event_alert_title"], l["k8s_event_alert_message"])] = int(s.Value)
			}
			if !maps.Equal(got, want) {
				t.Errorf("alerts by namespace, rule, title and message:\n got %v\nwant %v", got, want)
			}
			for _, e := range created {
				key := fmt.Sprintf("%s|%s|%s %s|%s %s: %s", strings.TrimPrefix(e.namespace, "default"), e.rule, e.kind, e.reason, e.kind, e.object, e.message)
				if got[key] != 1 {
					t.Errorf("alert %s: %d, want 1", key, got[key])
				}
			}
			return true
		},
	}
}

// checkRows compares the rows of a table of Events with the records that
// it should show, and finds the Events created among them with their text.
func checkRows(t *testing.T, sel dashSelection, entries []lokitest.Entry, want []dashRecord, created []dashEvent) {
	t.Helper()
	var got []string
	for _, e := range entries {
		md := e.StructuredMetadata
		got = append(got, fmt.Sprintf("%s|%s|%s|%s|%s", e.Labels["k8s_cluster_name"], e.Labels["k8s_namespace_name"], md["k8s_object_kind"]+"/"+md["k8s_object_name"], md["k8s_event_reason"], e.Line))
	}
	var w []string
	for _, r := range want {
		w = append(w, fmt.Sprintf("%s|%s|%s|%s|%s", r.cluster, r.namespace, r.kind+"/"+r.object, r.reason, r.line))
	}
	slices.Sort(got)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		t.Errorf("rows:\n got %q\nwant %q", got, w)
	}
	for _, c := range sel.clusters() {
		for _, e := range created {
			ns := strings.TrimPrefix(e.namespace, "default") // a Node's Events have no namespace
			if !sel.picks("namespace", ns) {
				continue
			}
			if row := fmt.Sprintf("%s|%s|%s/%s|%s|%s", c, ns, e.kind, e.object, e.reason, e.message); !slices.Contains(got, row) {
				t.Errorf("no row %q", row)
			}
		}
	}
	t.Logf("%d rows", len(got))
}

// checkSeriesOf checks that there is one series per cluster named.
func checkSeriesOf(t *testing.T, samples []promtest.Sample, clusters ...string) {
	t.Helper()
	var got []string
	for _, s := range samples {
		got = append(got, s.Labels["k8s_cluster_name"])
	}
	slices.Sort(got)
	if !slices.Equal(got, clusters) {
		t.Errorf("series of clusters %v (%v), want %v", got, samples, clusters)
	}
}

// checkLag checks a quantile of the delivery delay: one series per cluster,
// in seconds, within the histogram's buckets.
func checkLag(t *testing.T, sel dashSelection, res targetResult, _ dashTruth) bool {
	for _, s := range perCluster(t, sel, res.series) {
		var values []float64
		for _, p := range s.Points {
			if !math.IsNaN(p.Value) {
				values = append(values, p.Value)
			}
		}
		if len(values) == 0 {
			t.Errorf("%v: no value", s.Labels)
			continue
		}
		if lo, hi := slices.Min(values), slices.Max(values); lo < 0 || hi > 3600 {
			t.Errorf("%v: delays from %vs to %vs, want them within the buckets, 0 to 3600s", s.Labels, lo, hi)
		}
		t.Logf("%v: from %.2fs to %.2fs", s.Labels, slices.Min(values), slices.Max(values))
	}
	return true
}

// perCluster checks that there is one series per cluster the selection
// shows, and returns them.
func perCluster(t *testing.T, sel dashSelection, series []promtest.Series) []promtest.Series {
	t.Helper()
	var got []string
	for _, s := range series {
		got = append(got, s.Labels["k8s_cluster_name"])
	}
	slices.Sort(got)
	if want := sel.clusters(); !slices.Equal(got, want) {
		t.Errorf("series of clusters %v, want %v", got, want)
	}
	return series
}

// checkFailures checks series of a counter of failures by cluster and label:
// the values want lists for each cluster the selection shows, an increase
// for those in rose, perhaps one for those in may, and none for the others.
func checkFailures(t *testing.T, sel dashSelection, series []promtest.Series, label string, want, rose, may map[string][]string) {
	t.Helper()
	got := map[string][]string{}
	for _, s := range series {
		c, v := s.Labels["k8s_cluster_name"], s.Labels[label]
		got[c] = append(got[c], v)
		peak := maxValue(s.Points)
		switch {
		case slices.Contains(rose[c], v) && !(peak > 0):
			t.Errorf("%s %s=%s: at most %v in an interval, want an increase", c, label, v, peak)
		case !slices.Contains(rose[c], v) && !slices.Contains(may[c], v) && peak != 0:
			t.Errorf("%s %s=%s: %v in an interval, want 0", c, label, v, peak)
		}
		t.Logf("%s %s=%s: at most %v in an interval", c, label, v, peak)
	}
	for c := range got {
		slices.Sort(got[c])
	}
	w := map[string][]string{}
	for _, c := range sel.clusters() {
		if want[c] != nil {
			w[c] = want[c]
		}
	}
	if !maps.EqualFunc(got, w, slices.Equal) {
		t.Errorf("series by cluster and %s %v, want %v", label, got, w)
	}
}

// maxValue is the largest value of points, or NaN without points.
func maxValue(points []promtest.Point) float64 {
	peak := math.NaN()
	for _, p := range points {
		if math.IsNaN(peak) || p.Value > peak {
			peak = p.Value
		}
	}
	return peak
}
