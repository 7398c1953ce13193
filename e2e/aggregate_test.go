package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// aggregateConfig is a collector that reads the Events of namespace with
// the k8sevents receiver and sends them through k8sevents_aggregate, with
// the window given, to sink.
func aggregateConfig(sink *otlpsink.Sink, namespace, startAt string, window time.Duration) string {
	return fmt.Sprintf(`receivers:
  k8sevents:
    auth_type: kubeConfig
    namespaces: [%s]
    interval: 1s
    start_at: %s
processors:
  k8sevents_aggregate:
    window: %s
exporters:
  otlp_http:
    endpoint: %s
    compression: none
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [k8sevents]
      processors: [k8sevents_aggregate]
      exporters: [otlp_http]
`, namespace, startAt, window, sink.Endpoint())
}

// tallyOf is, for one reason, the records that passed and the sum of the
// counts of its summaries.
type tallyOf struct{ passed, summaries, aggregated int }

func tallies(recs []otlpsink.Record) map[string]tallyOf {
	out := map[string]tallyOf{}
	for _, r := range recs {
		reason := r.Str("k8s.event.reason")
		t := out[reason]
		if n := r.Int("k8s.event.aggregate.count"); n > 0 {
			t.summaries++
			t.aggregated += int(n)
		} else {
			t.passed++
		}
		out[reason] = t
	}
	return out
}

// TestAggregateRepeatedEvents: Events of one namespace, kind and reason
// within a window come out as the first record and a summary that counts
// the rest, whether the window closes on time or at shutdown.
func TestAggregateRepeatedEvents(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	kubeconfig := clusterReaderKubeconfig(t, cp, modePoll)

	t.Run("window closes", func(t *testing.T) {
		const ns = "agg-window"
		createNamespaces(t, c, ns)
		sink := otlpsink.Start(t)
		col := collectortest.Start(t, aggregateConfig(sink, ns, "end", 3*time.Second), "KUBECONFIG="+kubeconfig)
		col.WaitOutput("start_at end: skipped the Events already stored", waitLong)

		created := map[string]int{"BackOff": 10, "Unhealthy": 3}
		createWarnings(t, c, ns, "Pod", "crashy", "BackOff", "Back-off restarting failed container app in pod crashy-%d", 0, created["BackOff"])
		createWarnings(t, c, ns, "Pod", "probe", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 50%d", 0, created["Unhealthy"])

		// However the Events fall into windows, each one is either a record
		// that passed or counted in a summary; the summaries come when the
		// windows close, with the collector running.
		recs := sink.Wait(t, waitLong, "every Event passed or counted in a summary", func(recs []otlpsink.Record) bool {
			got := tallies(recs)
			for reason, n := range created {
				if got[reason].passed+got[reason].aggregated != n || got[reason].summaries == 0 {
					return false
				}
			}
			return true
		})
		got := tallies(recs)
		t.Logf("created %v; passed, summaries and records counted in them: %+v", created, got)
		for _, r := range recs {
			n := r.Int("k8s.event.aggregate.count")
			if n == 0 {
				continue
			}
			reason := r.Str("k8s.event.reason")
			if want := fmt.Sprintf("Aggregated %d similar events for Pod with reason %s", n, reason); r.Body != want {
				t.Errorf("summary body %q, want %q", r.Body, want)
			}
			if r.Str("k8s.namespace.name") != ns || r.Str("k8s.object.kind") != "Pod" {
				t.Errorf("summary of %s: namespace %q, kind %q; want %s, Pod", reason, r.Str("k8s.namespace.name"), r.Str("k8s.object.kind"), ns)
			}
			first, err1 := time.Parse(time.RFC3339Nano, r.Str("k8s.event.aggregate.first_time"))
			last, err2 := time.Parse(time.RFC3339Nano, r.Str("k8s.event.aggregate.last_time"))
			if err1 != nil || err2 != nil || last.Before(first) || !r.Timestamp.Equal(last) {
				t.Errorf("summary of %s: first_time %q, last_time %q, timestamp %v", reason, r.Str("k8s.event.aggregate.first_time"), r.Str("k8s.event.aggregate.last_time"), r.Timestamp)
			}
			if r.Severity != 13 {
				t.Errorf("summary of %s: severity %v, want WARN as the Events", reason, r.Severity)
			}
		}
	})

	t.Run("shutdown sends open windows", func(t *testing.T) {
		const ns = "agg-shutdown"
		createNamespaces(t, c, ns)
		// Stored before the start, so that the first poll reads them in one
		// page: the first passes, the others are counted before it arrives.
		const n = 5
		createWarnings(t, c, ns, "Pod", "data", "FailedMount", `MountVolume.SetUp failed for volume "data-%d"`, 0, n)
		sink := otlpsink.Start(t)
		col := collectortest.Start(t, aggregateConfig(sink, ns, "beginning", time.Hour), "KUBECONFIG="+kubeconfig)
		sink.Wait(t, waitLong, "the first FailedMount", func(recs []otlpsink.Record) bool { return len(recs) == 1 })
		if err := col.Stop(time.Minute); err != nil {
			t.Fatalf("stop collector: %v", err)
		}
		recs := sink.Records()
		var bodies []string
		for _, r := range recs {
			bodies = append(bodies, r.Body)
		}
		want := []string{`MountVolume.SetUp failed for volume "data-0"`, "Aggregated 4 similar events for Pod with reason FailedMount"}
		if strings.Join(bodies, "\n") != strings.Join(want, "\n") {
			t.Errorf("records %q, want %q", bodies, want)
		}
		if len(recs) == 2 && recs[1].Int("k8s.event.aggregate.count") != n-1 {
			t.Errorf("summary count %d, want %d", recs[1].Int("k8s.event.aggregate.count"), n-1)
		}
	})
}
