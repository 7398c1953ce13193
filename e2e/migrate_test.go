package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/lokitest"
	"github.com/k8sevents/otelcol-k8sevents/internal/migratedoc"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// EnvPeer names the environment variable that points at the collector with
// contrib's k8s_events receiver v0.148.0; `make test` sets it to
// .bin/otelcol-peer (`make peer`).
const EnvPeer = "K8SEVENTS_PEER"

// contribStream is the one stream of contrib's lines in Loki: its resource
// attributes are not on Loki's index label list, and it sets no
// service.name.
const contribStream = `{service_name="unknown_service"}`

// TestMigrationQueries holds docs/migrate-from-contrib.md against contrib's
// k8s_events v0.148.0 and ours: the guide's contrib configuration runs in
// the peer and the README's workstation command runs ours, on one API
// server, into one Loki. For the same Events:
//   - each pair of LogQL queries of the guide finds the same Events, the
//     first on contrib's lines, the second on ours;
//   - contrib's lines are one stream and carry the attributes of the
//     guide's contrib column and no other k8s.* attribute;
//   - k8s.event.start_time is Go's Time.String() with contrib, RFC 3339
//     with ours;
//   - a deleted Event comes again from contrib and not from ours.
func TestMigrationQueries(t *testing.T) {
	t.Parallel()
	peer := testbin.Find(t, EnvPeer, ".bin/otelcol-peer", "run `make test`, which builds it with `make peer`")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := migratedoc.Read()
	if err != nil {
		t.Fatal(err)
	}
	var contribCfg string
	for _, s := range yamlSnippets(doc.Text) {
		if contribConfig(s.text) {
			contribCfg = s.text
			break
		}
	}
	if contribCfg == "" {
		t.Fatalf("%s: no YAML example with the k8s_events receiver", migratedoc.Path)
	}
	ws := workstationCommand(t, root)

	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "shop", "payments", "probe")
	// contrib watches: list and watch. Ours runs the shipped configuration,
	// with extract: owners.
	kubeconfig := clusterReaderKubeconfig(t, cp, modeWatch, ownersRules...)
	loki := lokitest.Start(t, lokitest.Options{})
	ours := startWorkstation(t, root, ws, loki, kubeconfig, t.TempDir())

	cfgPath := filepath.Join(t.TempDir(), "contrib.yaml")
	if err := os.WriteFile(cfgPath, []byte(contribCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// What contrib sends, also to a sink: Loki returns identical lines once.
	sink := otlpsink.Start(t)
	contrib := collectortest.StartProgram(t, peer, "", []string{"--config", cfgPath,
		// Its own metrics would take :8888 from other collectors.
		"--config", "yaml:service::telemetry::metrics::level: none",
		"--config", "yaml:exporters::otlp_http/sink::endpoint: " + sink.Endpoint(),
		"--config", "yaml:exporters::otlp_http/sink::compression: none",
		"--config", "yaml:service::pipelines::logs::exporters: [otlp_http, otlp_http/sink]"},
		"KUBECONFIG="+kubeconfig, "LOKI_OTLP_ENDPOINT="+loki.OTLPEndpoint())
	contrib.WaitOutput("Everything is ready", time.Minute)
	from := time.Now().Add(-time.Hour)
	ctx := context.Background()

	// contrib watches from the revision of a list it makes after it
	// started, and drops Events older than its start: create probes until
	// one arrives, so that it surely sees the Events below.
	for i := 0; ; i++ {
		probe := newEvent(eventSpec{namespace: "probe", name: fmt.Sprintf("probe-%d", i), reason: "Probe", message: fmt.Sprintf("probe %d", i)})
		probe.FirstTimestamp, probe.LastTimestamp = metav1.Now(), metav1.Now()
		if _, err := c.CoreV1().Events("probe").Create(ctx, probe, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create probe: %v", err)
		}
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		got, err := loki.QueryRange(qctx, contribStream+` | k8s_namespace_name="probe"`, from, time.Now().Add(time.Minute), 10)
		cancel()
		if err == nil && len(got) > 0 {
			t.Logf("contrib's first line after %d probes", i+1)
			break
		}
		if i == int(waitLong/time.Second) {
			t.Fatalf("no probe from contrib in Loki after %d probes (last error %v)", i+1, err)
		}
		time.Sleep(time.Second)
	}

	// The Events of the guide's queries: cluster my-cluster (the
	// command's), namespace shop, Pod web-0, Node node-1.
	type spec struct {
		ns, name, kind, object, reason, typ, message, host string
	}
	specs := []spec{
		{"shop", "web-0.fs", "Pod", "web-0", "FailedScheduling", "Warning", "0/3 nodes are available: 3 Insufficient memory.", ""},
		{"shop", "web-0.pulling", "Pod", "web-0", "Pulling", "Normal", `Pulling image "nginx:1.27"`, "node-1"},
		{"shop", "web-1.backoff", "Pod", "web-1", "BackOff", "Warning", "Back-off restarting failed container app in pod web-1", "node-1"},
		{"shop", "web.scaled", "Deployment", "web", "ScalingReplicaSet", "Normal", "Scaled up replica set web-7d4 from 0 to 2", ""},
		{"payments", "api-0.fs", "Pod", "api-0", "FailedScheduling", "Warning", "0/3 nodes are available: 3 Insufficient cpu.", ""},
		{"payments", "api-0.scheduled", "Pod", "api-0", "Scheduled", "Normal", "Successfully assigned payments/api-0 to node-1", ""},
		{"default", "node-1.notready", "Node", "node-1", "NodeNotReady", "Normal", "Node node-1 status is now: NodeNotReady", ""},
	}
	created := map[string]*corev1.Event{}
	for _, s := range specs {
		ev := newEvent(eventSpec{namespace: s.ns, name: s.name, reason: s.reason, message: s.message, kind: s.kind})
		ev.Type = s.typ
		ev.FirstTimestamp, ev.LastTimestamp = metav1.Now(), metav1.Now()
		ev.InvolvedObject.Name, ev.InvolvedObject.UID = s.object, types.UID("uid-"+s.ns+"-"+s.object)
		ev.InvolvedObject.ResourceVersion = "42"
		switch s.kind {
		case "Pod":
			ev.InvolvedObject.FieldPath = "spec.containers{app}"
			ev.Action = s.reason
		case "Deployment":
			ev.InvolvedObject.APIVersion = "apps/v1"
		case "Node":
			ev.InvolvedObject.Namespace, ev.InvolvedObject.UID, ev.InvolvedObject.ResourceVersion = "", "", ""
			ev.Source.Component = "node-controller"
		}
		if s.host != "" {
			ev.Source = corev1.EventSource{Component: "kubelet", Host: s.host}
		}
		got, err := c.CoreV1().Events(s.ns).Create(ctx, ev, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create event %s/%s: %v", s.ns, s.name, err)
		}
		created[s.name] = got
	}
	const oursStream = `{service_name="k8s-events"}`
	notProbe := ` | k8s_event_reason!="Probe"`
	waitForLoki(t, loki, contribStream+notProbe, from, len(specs))
	waitForLoki(t, loki, oursStream+notProbe, from, len(specs))

	query := func(logql string) []lokitest.Entry {
		t.Helper()
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		entries, err := loki.QueryRange(qctx, logql, from, time.Now().Add(time.Minute), 1000)
		if err != nil {
			t.Fatal(err)
		}
		return entries
	}
	eventNames := func(entries []lokitest.Entry) []string {
		var out []string
		for _, e := range entries {
			out = append(out, e.StructuredMetadata["k8s_event_name"])
		}
		slices.Sort(out)
		return out
	}

	for _, q := range doc.Queries {
		t.Run(q.Title, func(t *testing.T) {
			if strings.HasPrefix(q.Before, "sum") {
				before, after := instant(t, loki, q.Before), instant(t, loki, q.After)
				t.Logf("before %s: %v\nafter %s: %v", q.Before, before, q.After, after)
				if len(before) == 0 || !maps.Equal(before, after) {
					t.Errorf("before: %v; after: %v; want the same, not empty", before, after)
				}
				return
			}
			before, after := eventNames(query(q.Before)), eventNames(query(q.After))
			t.Logf("%s: %v\n%s: %v", q.Before, before, q.After, after)
			if len(before) == 0 || !slices.Equal(before, after) {
				t.Errorf("before finds %v, after %v; want the same Events, at least one", before, after)
			}
		})
	}

	t.Run("contrib's lines", func(t *testing.T) {
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		series, err := loki.Series(qctx, contribStream, from, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("contrib's streams: %v", series)
		if len(series) != 1 || len(series[0]) != 1 {
			t.Errorf("contrib's streams %v, want the one %s", series, contribStream)
		}

		column := map[string]bool{}
		for _, a := range doc.Attributes {
			if a.Contrib != "" {
				column[strings.ReplaceAll(a.Contrib, ".", "_")] = true
			}
		}
		goTime := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC$`)
		for _, e := range query(contribStream + notProbe) {
			md := e.StructuredMetadata
			for k := range md {
				if strings.HasPrefix(k, "k8s_") && !column[k] {
					t.Errorf("contrib's %q has %s=%q, which the guide's contrib column lacks", e.Line, k, md[k])
				}
			}
			if !goTime.MatchString(md["k8s_event_start_time"]) {
				t.Errorf("contrib's %q: k8s_event_start_time %q, want Go's Time.String() format", e.Line, md["k8s_event_start_time"])
			}
			if md["k8s_event_name"] != "web-0.pulling" {
				continue
			}
			// Every field set: every attribute of the column.
			t.Logf("contrib's structured metadata: %v", md)
			for k := range column {
				if md[k] == "" {
					t.Errorf("contrib's %q lacks %s (the guide's contrib column has it)", e.Line, k)
				}
			}
		}
		for _, e := range query(oursStream + notProbe) {
			if v := e.StructuredMetadata["k8s_event_start_time"]; !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(v) {
				t.Errorf("ours %q: k8s_event_start_time %q, want RFC 3339", e.Line, v)
			}
		}
	})

	t.Run("deleted Event", func(t *testing.T) {
		ev := created["api-0.scheduled"]
		if err := c.CoreV1().Events(ev.Namespace).Delete(ctx, ev.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		byName := ` | k8s_event_name="` + ev.Name + `"`
		sink.Wait(t, waitLong, "contrib's record of the deleted Event", func(recs []otlpsink.Record) bool {
			return countWhere(recs, func(r otlpsink.Record) bool { return r.Str("k8s.event.name") == ev.Name }) == 2
		})
		// Ours has polled after the deletion once a later Event is in.
		marker := newEvent(eventSpec{namespace: "probe", name: "after-delete", reason: "Probe", message: "after the deletion"})
		if _, err := c.CoreV1().Events("probe").Create(ctx, marker, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitForLoki(t, loki, oursStream+` | k8s_event_name="after-delete"`, from, 1)
		if n := len(query(oursStream + byName)); n != 1 {
			t.Errorf("ours: %d lines of the deleted Event, want 1", n)
		}
		// The two records are the same: time, line and metadata (contrib
		// sets no observed time). Loki returns one.
		if n := len(query(contribStream + byName)); n != 1 {
			t.Errorf("contrib: %d lines of the deleted Event in Loki, want 1 (two identical records)", n)
		}
		t.Logf("deleted Event %s: contrib sent %d records, Loki returns %d lines; ours %d", ev.Name,
			countWhere(sink.Records(), func(r otlpsink.Record) bool { return r.Str("k8s.event.name") == ev.Name }),
			len(query(contribStream+byName)), len(query(oursStream+byName)))
	})

	for _, col := range []*collectortest.Collector{ours, contrib} {
		if exited, err := col.Exited(); exited {
			t.Errorf("a collector exited: %v", err)
		}
	}
}

// instant runs a metric query now and returns each series' value by its
// labels.
func instant(t *testing.T, loki *lokitest.Loki, logql string) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	samples, err := loki.QueryInstant(ctx, logql, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, s := range samples {
		out[fmt.Sprint(s.Labels)] = s.Value
	}
	return out
}
