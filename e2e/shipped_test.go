package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/lokitest"
)

// shippedConfig is otelcol-config.yaml as it ships, with the collector's
// own metrics endpoint (:8888) turned off so that tests running side by
// side do not compete for it.
func shippedConfig(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "otelcol-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err = yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("parse otelcol-config.yaml: %v", err)
	}
	service := cfg["service"].(map[string]any)
	service["telemetry"] = map[string]any{"metrics": map[string]any{"level": "none"}}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// createWarnings creates Warning Events number first to first+n-1 with the
// reason, about objects of kind named <prefix>-<number> in namespace ns (or
// about the Node named prefix, in default). The message is messageFmt with
// the number: Loki keeps one of two lines of a stream with the same time
// and text.
func createWarnings(t *testing.T, c kubernetes.Interface, ns, kind, prefix, reason, messageFmt string, first, n int) []*corev1.Event {
	t.Helper()
	var out []*corev1.Event
	for i := first; i < first+n; i++ {
		ev := newEvent(eventSpec{namespace: ns, name: fmt.Sprintf("%s-%d", prefix, i), reason: reason, message: fmt.Sprintf(messageFmt, i), kind: kind})
		ev.Type = corev1.EventTypeWarning
		if kind == "Node" {
			ev.InvolvedObject.Namespace, ev.InvolvedObject.Name = "", prefix
			ev.InvolvedObject.UID = ""
		}
		created, err := c.CoreV1().Events(ns).Create(context.Background(), ev, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s event: %v", reason, err)
		}
		out = append(out, created)
	}
	return out
}

// TestShippedConfig runs otelcol-config.yaml against a control plane whose
// controllers and scheduler make real Events, with Loki behind the
// otlp_http exporter and the Prometheus endpoint scraped. Events that need
// a kubelet (OOMKilling, BackOff, Failed) are created. It checks which
// records are alerts and at which level Loki files them, and that the
// count Prometheus reads equals the records Loki holds, reason by reason.
func TestShippedConfig(t *testing.T) {
	t.Parallel()
	opts := kubeOptions()
	opts.Controllers = true
	opts.NodeMonitorGracePeriod = 10 * time.Second
	cp := startControlPlane(t, opts)
	c := fastClient(t, cp)
	ctx := context.Background()
	const ns = "shop"
	createNamespaces(t, c, ns)
	// The shipped configuration watches, with extract: owners.
	kubeconfig := clusterReaderKubeconfig(t, cp, modeWatch, ownersRules...)
	loki := lokitest.Start(t, lokitest.Options{})

	promEndpoint := fmt.Sprintf("127.0.0.1:%d", collectortest.FreePort(t))
	col := collectortest.Start(t, shippedConfig(t),
		"KUBECONFIG="+kubeconfig, "K8SEVENTS_AUTH_TYPE=kubeConfig", "CLUSTER_NAME=e2e",
		"LOKI_OTLP_ENDPOINT="+loki.OTLPEndpoint(), "STORAGE_DIR="+t.TempDir(),
		fmt.Sprintf("HEALTH_CHECK_ENDPOINT=127.0.0.1:%d", collectortest.FreePort(t)),
		"PROMETHEUS_ENDPOINT="+promEndpoint)
	col.WaitOutput("Everything is ready", time.Minute)
	col.WaitOutput("start_at end: skipped the Events already stored", waitLong)
	from := time.Now().Add(-time.Hour)

	// Real Events: FailedScheduling (no Node yet), ScalingReplicaSet,
	// SuccessfulCreate; then a Node without a kubelet: RegisteredNode,
	// Scheduled, and NodeNotReady after the grace period.
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, kubetest.Deployment(ns, "web", 2, "100m", "3Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	const all = `{k8s_cluster_name="e2e"}`
	waitForLoki(t, loki, all+` | k8s_event_reason="FailedScheduling"`, from, 1)
	if _, err := c.CoreV1().Nodes().Create(ctx, kubetest.ReadyNode("node-1", "4", "4Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node: %v", err)
	}
	// Events a kubelet or node-problem-detector would send.
	const (
		oomMessage     = "Memory cgroup out of memory: Killed process 424%d (java)"
		backOffMessage = "Back-off restarting failed container app in pod crashy-%d"
		failedMessage  = "Failed to pull image \"registry.example/app:1.%d\": Error: ErrImagePull"
	)
	// In two rounds, read in different batches: the count of a series must
	// add up across them.
	created := map[string]int{}
	round := func(oom, backOff, failed int) {
		createWarnings(t, c, "default", "Node", "node-1", "OOMKilling", oomMessage, created["OOMKilling"], oom)
		createWarnings(t, c, ns, "Pod", "crashy", "BackOff", backOffMessage, created["BackOff"], backOff)
		createWarnings(t, c, ns, "Pod", "noimage", "Failed", failedMessage, created["Failed"], failed)
		created["OOMKilling"] += oom
		created["BackOff"] += backOff
		created["Failed"] += failed
		for reason, n := range created {
			waitForLoki(t, loki, all+` | k8s_event_reason="`+reason+`"`, from, n)
		}
	}
	round(1, 2, 1)
	round(2, 2, 1)

	for _, reason := range []string{"ScalingReplicaSet", "SuccessfulCreate", "RegisteredNode", "Scheduled", "NodeNotReady"} {
		waitForLoki(t, loki, all+` | k8s_event_reason="`+reason+`"`, from, 1)
	}

	query := func(logql string) []lokitest.Entry {
		t.Helper()
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		entries, err := loki.QueryRange(qctx, logql, from, time.Now().Add(time.Minute), 5000)
		if err != nil {
			t.Fatal(err)
		}
		return entries
	}

	t.Run("alerts and levels", func(t *testing.T) {
		type want struct{ level, text, rule string }
		wants := map[string]want{
			"FailedScheduling":  {"warn", "WARN", "failed-scheduling"},
			"OOMKilling":        {"error", "ERROR", "oom-killed"},
			"BackOff":           {"error", "ERROR", "warning-is-error"},
			"Failed":            {"error", "ERROR", "pod-failed"},
			"ScalingReplicaSet": {"info", "INFO", ""},
			"SuccessfulCreate":  {"info", "INFO", ""},
			"RegisteredNode":    {"info", "INFO", ""},
			"Scheduled":         {"info", "INFO", ""},
			"NodeNotReady":      {"info", "INFO", ""},
		}
		seen := map[string]int{}
		for _, e := range query(all) {
			md := e.StructuredMetadata
			reason := md["k8s_event_reason"]
			w, ok := wants[reason]
			if !ok {
				continue
			}
			seen[reason]++
			if md["detected_level"] != w.level || md["severity_text"] != w.text {
				t.Errorf("%s %q: detected_level %q, severity_text %q; want %q, %q", reason, e.Line, md["detected_level"], md["severity_text"], w.level, w.text)
			}
			if md["k8s_event_alert_rule"] != w.rule {
				t.Errorf("%s %q: k8s_event_alert_rule %q, want %q", reason, e.Line, md["k8s_event_alert_rule"], w.rule)
			}
			if w.rule == "" {
				for _, k := range []string{"k8s_event_alert_title", "k8s_event_alert_message"} {
					if v, ok := md[k]; ok {
						t.Errorf("%s: %s = %q on a record that is no alert", reason, k, v)
					}
				}
				continue
			}
			kind := md["k8s_object_kind"]
			if title := md["k8s_event_alert_title"]; title != kind+" "+reason {
				t.Errorf("%s: k8s_event_alert_title %q, want %q", reason, title, kind+" "+reason)
			}
			if msg, wantMsg := md["k8s_event_alert_message"], kind+" "+md["k8s_object_name"]+": "+e.Line; msg != wantMsg {
				t.Errorf("%s: k8s_event_alert_message %q, want %q", reason, msg, wantMsg)
			}
		}
		for reason := range wants {
			if seen[reason] == 0 {
				t.Errorf("no %s line in Loki", reason)
			}
		}
		t.Logf("lines checked per reason: %v", seen)

		// The levels Grafana offers find the Events; Normal is no level.
		errors := query(all + ` | detected_level="error"`)
		if got, want := len(errors), created["OOMKilling"]+created["BackOff"]+created["Failed"]; got != want {
			t.Errorf(`detected_level="error": %d lines, want the %d created OOMKilling, BackOff and Failed: %v`, got, want, lines(errors))
		}
		if n := len(query(all + ` | detected_level="info" | k8s_event_type="Normal"`)); n == 0 {
			t.Errorf(`detected_level="info" finds no Normal Event`)
		}
		if n := len(query(all + ` | detected_level="info" | k8s_event_type!="Normal"`)); n != 0 {
			t.Errorf(`detected_level="info" finds %d Events that are not Normal`, n)
		}
		if normal := query(all + ` | detected_level="Normal"`); len(normal) != 0 {
			t.Errorf(`detected_level="Normal": %d lines, want none with severity_text level: %v`, len(normal), lines(normal))
		}
		// The seed's alert query: everything a rule marked.
		alerts := query(all + ` | k8s_event_alert_rule!=""`)
		byRule := map[string]int{}
		for _, e := range alerts {
			byRule[e.StructuredMetadata["k8s_event_alert_rule"]]++
		}
		t.Logf("alerts by rule: %v", byRule)
		for rule, n := range map[string]int{"oom-killed": 3, "warning-is-error": 4, "pod-failed": 2} {
			if byRule[rule] != n {
				t.Errorf("alerts of rule %s: %d, want %d", rule, byRule[rule], n)
			}
		}

		// The Grafana alert query of the receiver's README, by title and
		// message as the seed showed them.
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		samples, err := loki.QueryInstant(qctx, `sum by (k8s_namespace_name, k8s_event_alert_rule, k8s_event_alert_title, k8s_event_alert_message) (
  count_over_time({k8s_cluster_name="e2e"} | k8s_event_alert_rule != "" [1h]))`, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		perTitle := map[string]float64{}
		for _, s := range samples {
			perTitle[s.Labels["k8s_event_alert_title"]] += s.Value
			if !strings.HasPrefix(s.Labels["k8s_event_alert_message"], strings.Fields(s.Labels["k8s_event_alert_title"])[0]+" ") {
				t.Errorf("alert series %v: the message does not start with the kind", s.Labels)
			}
		}
		t.Logf("alert query: %d series; alerts per title %v", len(samples), perTitle)
		for title, n := range map[string]float64{"Node OOMKilling": 3, "Pod BackOff": 4, "Pod Failed": 2, "Pod FailedScheduling": float64(byRule["failed-scheduling"])} {
			if perTitle[title] != n {
				t.Errorf("alert query: %v alerts titled %q, want %v", perTitle[title], title, n)
			}
		}
	})

	// extract: owners names Deployment web on its ReplicaSet's and its
	// Pods' Events, as structured metadata: the streams stay one per
	// namespace.
	t.Run("owners in structured metadata", func(t *testing.T) {
		entries := query(`{k8s_cluster_name="e2e", k8s_namespace_name="` + ns + `"} | k8s_deployment_name="web"`)
		reasons := map[string]int{}
		for _, e := range entries {
			md := e.StructuredMetadata
			reasons[md["k8s_object_kind"]+" "+md["k8s_event_reason"]]++
			if v, ok := e.Labels["k8s_deployment_name"]; ok {
				t.Errorf("%q: k8s_deployment_name=%q is an index label; want structured metadata only", e.Line, v)
			}
			if md["k8s_object_kind"] == "Pod" && (md["k8s_replicaset_name"] == "" || !strings.HasPrefix(md["k8s_pod_name"], md["k8s_replicaset_name"]+"-")) {
				t.Errorf("%q: Pod %s with k8s_replicaset_name %q, want its ReplicaSet", e.Line, md["k8s_pod_name"], md["k8s_replicaset_name"])
			}
		}
		t.Logf(`k8s_deployment_name="web": %d lines: %v`, len(entries), reasons)
		for _, want := range []string{"Deployment ScalingReplicaSet", "ReplicaSet SuccessfulCreate", "Pod FailedScheduling", "Pod Scheduled"} {
			if reasons[want] == 0 {
				t.Errorf(`k8s_deployment_name="web" finds no %s line`, want)
			}
		}
		if strings.Contains(col.Output(), "RBAC: grant") {
			t.Errorf("the collector lacks a rule the README documents:\n%s", col.Output())
		}
	})

	t.Run("prometheus count equals records", func(t *testing.T) {
		// Loki and the count see the same records; read the metric before
		// and after Loki, and compare when nothing moved in between.
		deadline := time.Now().Add(waitLong)
		for {
			before, err := scrapeEventCounts("http://" + promEndpoint + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			inLoki := map[seriesKey]int{}
			for _, e := range query(all) {
				md, labels := e.StructuredMetadata, e.Labels
				inLoki[seriesKey{namespace: labels["k8s_namespace_name"], kind: md["k8s_object_kind"], reason: md["k8s_event_reason"], eventType: md["k8s_event_type"]}]++
			}
			after, err := scrapeEventCounts("http://" + promEndpoint + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			if maps.Equal(before, after) && maps.Equal(after, inLoki) {
				for reason, n := range created {
					kind, ns2 := "Pod", ns
					if reason == "OOMKilling" {
						kind, ns2 = "Node", ""
					}
					if got := after[seriesKey{namespace: ns2, kind: kind, reason: reason, eventType: "Warning"}]; got != n {
						t.Errorf("k8s_events_total for %s: %d, want the %d Events created", reason, got, n)
					}
				}
				keys := slices.SortedFunc(maps.Keys(after), func(a, b seriesKey) int { return strings.Compare(a.String(), b.String()) })
				for _, k := range keys {
					t.Logf("k8s_events_total{%s} %d", k, after[k])
				}
				logExposition(t, "http://"+promEndpoint+"/metrics", "k8s_events")
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("k8s_events_total does not settle on the records in Loki within %v:\nprometheus %v\nloki       %v", waitLong, after, inLoki)
			}
			time.Sleep(2 * time.Second)
		}
	})
}

// seriesKey is the label set of k8s_events_total.
type seriesKey struct{ namespace, kind, reason, eventType string }

func (k seriesKey) String() string {
	return fmt.Sprintf(`k8s_event_reason=%q,k8s_event_type=%q,k8s_namespace_name=%q,k8s_object_kind=%q`, k.reason, k.eventType, k.namespace, k.kind)
}

var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// scrapeEventCounts reads k8s_events_total from a Prometheus endpoint, as a
// scrape would, by label set. A label set other than the four expected is
// an error.
func scrapeEventCounts(url string) (map[seriesKey]int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return parseEventCounts(resp.Body)
}

// parseEventCounts reads k8s_events_total from the text exposition format.
func parseEventCounts(r io.Reader) (map[seriesKey]int, error) {
	out := map[seriesKey]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "k8s_events_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			return nil, fmt.Errorf("unexpected line %q", line)
		}
		var k seriesKey
		for _, m := range labelPair.FindAllStringSubmatch(labels, -1) {
			v, err := strconv.Unquote(`"` + m[2] + `"`)
			if err != nil {
				return nil, fmt.Errorf("label in %q: %w", line, err)
			}
			switch m[1] {
			case "k8s_namespace_name":
				k.namespace = v
			case "k8s_object_kind":
				k.kind = v
			case "k8s_event_reason":
				k.reason = v
			case "k8s_event_type":
				k.eventType = v
			case "k8s_cluster_name", "otel_scope_name", "otel_scope_version", "otel_scope_schema_url":
				// One cluster per collector.
			default:
				return nil, fmt.Errorf("unexpected label %s in %q", m[1], line)
			}
		}
		f, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return nil, fmt.Errorf("value in %q: %w", line, err)
		}
		out[k] += int(f)
	}
	return out, sc.Err()
}

// logExposition logs the lines of a Prometheus endpoint that mention name,
// up to the first sample: what a scrape reads.
func logExposition(t *testing.T, url, name string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Log(err)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.Contains(line, name) {
			t.Logf("scraped: %s", line)
			if !strings.HasPrefix(line, "#") {
				return
			}
		}
	}
}
