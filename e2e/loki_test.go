package e2e

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/lokitest"
)

// TestLoki ships Events through the otlp_http exporter to a real Loki and
// reads them back with LogQL: the message is the line, the namespace an index
// label, the Event's fields structured metadata, and a Warning is found by
// its level.
func TestLoki(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "ns1", "ns2")
	kubeconfig := clusterReaderKubeconfig(t, cp, modePoll)
	loki := lokitest.Start(t, lokitest.Options{})

	from := time.Now().Add(-time.Hour)
	want := map[string]*corev1.Event{} // by event ID
	for _, ev := range createEvents(t, c, "ns1", "ev-ns1", 3) {
		want[eventID(ev)] = ev
	}
	for _, ev := range createEvents(t, c, "ns2", "ev-ns2", 2) {
		want[eventID(ev)] = ev
	}
	warning := newEvent(eventSpec{namespace: "ns2", name: "web-1", reason: "FailedScheduling",
		message: "0/3 nodes are available: 3 Insufficient memory."})
	warning.Type = corev1.EventTypeWarning
	warning.Count = 4
	warning, err := c.CoreV1().Events("ns2").Create(t.Context(), warning, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create warning event: %v", err)
	}
	want[eventID(warning)] = warning

	// Only the test's namespaces: the control plane reports Events of its
	// own (a repaired ClusterIP in default, for one).
	p := pipeline{receiver: "interval: 1s\nstart_at: beginning\ncluster_name: e2e\nnamespaces: [ns1, ns2]"}
	col := collectortest.Start(t, p.configFor(loki.OTLPEndpoint()), "KUBECONFIG="+kubeconfig)
	col.WaitOutput("Everything is ready", time.Minute)

	query := func(logql string) []lokitest.Entry {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		entries, err := loki.QueryRange(ctx, logql, from, time.Now().Add(time.Minute), 1000)
		if err != nil {
			t.Fatal(err)
		}
		return entries
	}
	const all = `{k8s_cluster_name="e2e"}`
	waitForLoki(t, loki, all, from, len(want))
	time.Sleep(3 * time.Second) // further polls must add nothing

	t.Run("exactly once", func(t *testing.T) {
		entries := query(all)
		got := map[string]int{}
		for _, e := range entries {
			got[e.StructuredMetadata["k8s_event_uid"]+"@"+e.StructuredMetadata["k8s_event_resource_version"]]++
		}
		if len(entries) != len(want) {
			t.Errorf("%d lines in Loki, want %d (one per Event): %v", len(entries), len(want), got)
		}
		for id := range want {
			if got[id] != 1 {
				t.Errorf("event %s: %d lines, want 1", id, got[id])
			}
		}
		if len(entries) > 0 {
			e := entries[0]
			t.Logf("index labels: %v", e.Labels)
			t.Logf("structured metadata: %v", e.StructuredMetadata)
		}
	})

	t.Run("by namespace label", func(t *testing.T) {
		entries := query(`{k8s_namespace_name="ns1"}`)
		var got []string
		for _, e := range entries {
			got = append(got, e.Line)
			for k, v := range map[string]string{"k8s_namespace_name": "ns1", "k8s_cluster_name": "e2e"} {
				if e.Labels[k] != v {
					t.Errorf("%q: index label %s = %q, want %q (labels %v)", e.Line, k, e.Labels[k], v, e.Labels)
				}
			}
			for k, v := range map[string]string{
				"k8s_event_reason": "E2ECreated",
				"k8s_event_count":  "1",
				"k8s_event_type":   "Normal",
				"k8s_object_kind":  "Pod",
				"severity_text":    "Normal",
				"severity_number":  "9",
				// Loki derives detected_level from severity_text before
				// severity_number, and keeps a word it does not know.
				"detected_level": "Normal",
			} {
				if e.StructuredMetadata[k] != v {
					t.Errorf("%q: structured metadata %s = %q, want %q", e.Line, k, e.StructuredMetadata[k], v)
				}
			}
			if _, ok := e.Labels["k8s_event_reason"]; ok {
				t.Errorf("%q: k8s_event_reason is an index label, want structured metadata only", e.Line)
			}
		}
		slices.Sort(got)
		wantLines := []string{"ev-ns1 event 0", "ev-ns1 event 1", "ev-ns1 event 2"}
		if !slices.Equal(got, wantLines) {
			t.Errorf("lines in ns1: %q, want %q", got, wantLines)
		}
	})

	t.Run("warnings", func(t *testing.T) {
		for _, logql := range []string{
			`{k8s_cluster_name="e2e"} | detected_level="warn"`,
			`{k8s_cluster_name="e2e"} | severity_text="Warning"`,
			`{k8s_cluster_name="e2e"} | k8s_event_reason=~"FailedScheduling|OOMKilling|NodeNotReady"`,
		} {
			entries := query(logql)
			if len(entries) != 1 {
				t.Errorf("%s: %d lines, want the one Warning: %v", logql, len(entries), lines(entries))
				continue
			}
			e := entries[0]
			if e.Line != warning.Message {
				t.Errorf("%s: line %q, want %q", logql, e.Line, warning.Message)
			}
			if e.Labels["k8s_namespace_name"] != "ns2" {
				t.Errorf("%s: namespace label %q, want ns2", logql, e.Labels["k8s_namespace_name"])
			}
			wantMeta := map[string]string{
				"k8s_event_reason": "FailedScheduling",
				"k8s_event_count":  "4",
				"k8s_event_type":   "Warning",
				"severity_text":    "Warning",
				"severity_number":  "13", // SEVERITY_NUMBER_WARN
				"detected_level":   "warn",
			}
			for k, v := range wantMeta {
				if e.StructuredMetadata[k] != v {
					t.Errorf("%s: structured metadata %s = %q, want %q", logql, k, e.StructuredMetadata[k], v)
				}
			}
			if !e.Time.Equal(warning.LastTimestamp.Time) {
				t.Errorf("%s: time %v, want the Event's lastTimestamp %v", logql, e.Time, warning.LastTimestamp.Time)
			}
		}
	})

	// Without the shipped transform/loki, Loki indexes k8s.pod.name: one
	// stream per Pod (each Event here is about a Pod of its own).
	t.Run("streams per Pod without transform/loki", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		series, err := loki.Series(ctx, all, from, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		pods := map[string]bool{}
		for _, s := range series {
			pods[s["k8s_pod_name"]] = true
			if s["service_name"] != "unknown_service" {
				t.Errorf("stream %v: service_name %q, want unknown_service (the receiver sets no service.name)", s, s["service_name"])
			}
		}
		t.Logf("%d Events about %d Pods: %d streams", len(want), len(want), len(series))
		if len(series) != len(want) || len(pods) != len(want) {
			t.Errorf("%d streams with %d values of k8s_pod_name, want one per Pod (%d): %v", len(series), len(pods), len(want), series)
		}
	})

	t.Run("per namespace", func(t *testing.T) {
		got := map[string]int{}
		for _, e := range query(all) {
			got[e.Labels["k8s_namespace_name"]]++
		}
		if wantNS := map[string]int{"ns1": 3, "ns2": 3}; !maps.Equal(got, wantNS) {
			t.Errorf("lines per namespace label %v, want %v", got, wantNS)
		}
	})
}

// waitForLoki polls logql until it returns at least n lines. Query errors are
// retried: Loki may refuse queries for a moment after /ready.
func waitForLoki(t *testing.T, loki *lokitest.Loki, logql string, from time.Time, n int) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	var (
		got     []lokitest.Entry
		lastErr error
	)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		got, lastErr = loki.QueryRange(ctx, logql, from, time.Now().Add(time.Minute), 1000)
		cancel()
		if lastErr == nil && len(got) >= n {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: %d of %d lines within %v (last error: %v): %v", logql, len(got), n, waitLong, lastErr, lines(got))
}

func lines(entries []lokitest.Entry) []string {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Line)
	}
	return out
}
