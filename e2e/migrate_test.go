package e2e

import (
	"context"
	"encoding/json"
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
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/lokitest"
	"github.com/k8sevents/otelcol-k8sevents/internal/migratedoc"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// EnvPeer names the environment variable that points at the collector with
// contrib's k8s_events and k8sobjects receivers v0.152.0; `make test` sets
// it to .bin/otelcol-peer (`make peer`).
const EnvPeer = "K8SEVENTS_PEER"

// Where contrib's lines are in Loki. Neither receiver sets service.name;
// k8s_events' resource attributes are not on Loki's index label list (one
// stream for all its lines), k8sobjects' k8s.namespace.name is (a stream per
// namespace). Each is told apart by its instrumentation scope.
const (
	unknownStream = `{service_name="unknown_service"}`
	eventsScope   = "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/k8seventsreceiver"
	objectsScope  = "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/k8sobjectsreceiver"
	eventsLines   = unknownStream + ` | scope_name="` + eventsScope + `"`
	objectsLines  = unknownStream + ` | scope_name="` + objectsScope + `"`
	oursStream    = `{service_name="k8s-events"}`
	// objectsShop is the guide's example of k8sobjects' streams: one per
	// namespace.
	objectsShop = `{k8s_namespace_name="shop", service_name="unknown_service"}`
)

// TestMigrationQueries holds docs/migrate-from-contrib.md against contrib
// v0.152.0 and ours: the guide's k8s_events configuration and its
// k8sobjects one (the Helm chart's kubernetesEvents preset, as a
// ServiceAccount with the guide's ClusterRole for it) run in two peers, the
// README's workstation command runs ours, side by side on one API server,
// into one Loki. For the same Events:
//   - each pair of LogQL queries of the guide finds the same Events, the
//     first on contrib's lines, the second on ours;
//   - k8s_events' lines are one stream and carry the attributes of the
//     guide's contrib column and no other k8s.* attribute, its
//     k8s.event.start_time in Go's Time.String(), ours in RFC 3339;
//   - k8sobjects' records carry the attributes and body fields of the
//     guide's k8sobjects table, and no attribute or field it lacks;
//   - a deleted Event comes again from none of the three.
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
	configs := map[string]string{}
	var objectsRole *rbacv1.ClusterRole
	for _, s := range yamlSnippets(doc.Text) {
		if r := contribReceiver(s.text); r != "" && configs[r] == "" {
			configs[r] = s.text
		}
		if role, ok := clusterRoleOf(s.text); ok && grantsGroup(role, "events.k8s.io") {
			objectsRole = role
		}
	}
	for _, r := range []string{"k8s_events", "k8sobjects"} {
		if configs[r] == "" {
			t.Fatalf("%s: no YAML example with the %s receiver", migratedoc.Path, r)
		}
	}
	if objectsRole == nil {
		t.Fatalf("%s: no ClusterRole with a rule for events.k8s.io (the Helm preset's)", migratedoc.Path)
	}
	ws := workstationCommand(t, root)

	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "shop", "payments", "probe")
	// Ours (the shipped configuration, with extract: owners) and k8s_events:
	// list and watch on core/v1 events. k8sobjects: the guide's ClusterRole
	// of the Helm chart.
	kubeconfig := clusterReaderKubeconfig(t, cp, modeWatch, ownersRules...)
	objectsKubeconfig := clusterRoleKubeconfig(t, cp, objectsRole, "helm", "opentelemetry-collector")
	loki := lokitest.Start(t, lokitest.Options{})
	ours := startWorkstation(t, root, ws, loki, kubeconfig, t.TempDir())

	// What each sends, also to a sink: Loki returns identical lines once.
	eventsSink, objectsSink := otlpsink.Start(t), otlpsink.Start(t)
	events := startPeer(t, peer, configs["k8s_events"], eventsSink, loki, kubeconfig)
	objects := startPeer(t, peer, configs["k8sobjects"], objectsSink, loki, objectsKubeconfig,
		// The chart runs it in a Pod; here it reads the ServiceAccount's kubeconfig.
		"yaml:receivers::k8sobjects::auth_type: kubeConfig")
	from := time.Now().Add(-time.Hour)
	ctx := context.Background()

	// k8s_events drops Events older than its start, and both watch from the
	// revision of a list they make after they started: create probes until
	// each has sent one, so that they surely see the Events below.
	objectsName := func(r otlpsink.Record) string { return r.Str("event.name") }
	eventsName := func(r otlpsink.Record) string { return r.Str("k8s.event.name") }
	probed := func(sink *otlpsink.Sink, name func(otlpsink.Record) string) bool {
		return countWhere(sink.Records(), func(r otlpsink.Record) bool { return strings.HasPrefix(name(r), "probe-") }) > 0
	}
	for i := 0; !probed(eventsSink, eventsName) || !probed(objectsSink, objectsName); i++ {
		if i == int(waitLong/time.Second) {
			t.Fatalf("no probe from k8s_events (%v) or k8sobjects (%v) after %d probes", probed(eventsSink, eventsName), probed(objectsSink, objectsName), i)
		}
		probe := newEvent(eventSpec{namespace: "probe", name: fmt.Sprintf("probe-%d", i), reason: "Probe", message: fmt.Sprintf("probe %d", i)})
		probe.FirstTimestamp, probe.LastTimestamp = metav1.Now(), metav1.Now()
		if _, err := c.CoreV1().Events("probe").Create(ctx, probe, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create probe: %v", err)
		}
		time.Sleep(time.Second)
	}

	created := createGuideEvents(t, c)
	notProbe := ` | k8s_event_reason!="Probe"`
	objectsNotProbe := ` | event_name!~"probe-.*"`
	waitForLoki(t, loki, eventsLines+notProbe, from, len(created))
	waitForLoki(t, loki, objectsLines+objectsNotProbe, from, len(created))
	waitForLoki(t, loki, oursStream+notProbe, from, len(created))

	query := func(t *testing.T, logql string) []lokitest.Entry {
		t.Helper()
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		entries, err := loki.QueryRange(qctx, logql, from, time.Now().Add(time.Minute), 1000)
		if err != nil {
			t.Fatal(err)
		}
		return entries
	}
	// The Event a line is about: k8s_events and ours name it in
	// k8s.event.name, k8sobjects in event.name.
	eventNames := func(entries []lokitest.Entry) []string {
		var out []string
		for _, e := range entries {
			name := e.StructuredMetadata["k8s_event_name"]
			if name == "" {
				name = e.StructuredMetadata["event_name"]
			}
			out = append(out, name)
		}
		slices.Sort(out)
		return out
	}
	pairs := func(prefix string, qs []migratedoc.Query) {
		for _, q := range qs {
			t.Run(prefix+"/"+q.Title, func(t *testing.T) {
				if strings.HasPrefix(q.Before, "sum") {
					before, after := instant(t, loki, q.Before), instant(t, loki, q.After)
					t.Logf("before %s: %v\nafter %s: %v", q.Before, before, q.After, after)
					if len(before) == 0 || !maps.Equal(before, after) {
						t.Errorf("before: %v; after: %v; want the same, not empty", before, after)
					}
					return
				}
				beforeEntries, afterEntries := query(t, q.Before), query(t, q.After)
				before, after := eventNames(beforeEntries), eventNames(afterEntries)
				t.Logf("%s: %v\n%s: %v", q.Before, before, q.After, after)
				if len(before) == 0 || !slices.Equal(before, after) {
					t.Errorf("before finds %v, after %v; want the same Events, at least one", before, after)
				}
				// Both rewrite the line: the same lines.
				if strings.Contains(q.Before, "line_format") && strings.Contains(q.After, "line_format") {
					if b, a := sortedLines(beforeEntries), sortedLines(afterEntries); !slices.Equal(b, a) {
						t.Errorf("before makes the lines %q, after %q; want the same", b, a)
					}
				}
			})
		}
	}
	pairs("k8s_events", doc.Queries)
	pairs("k8sobjects", doc.ObjectsQueries)

	t.Run("k8s_events' lines", func(t *testing.T) {
		column := map[string]bool{}
		for _, a := range doc.Attributes {
			if a.Contrib != "" {
				column[strings.ReplaceAll(a.Contrib, ".", "_")] = true
			}
		}
		goTime := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC$`)
		entries := query(t, eventsLines+notProbe)
		if len(entries) != len(created) {
			t.Errorf("%d lines of k8s_events, want %d", len(entries), len(created))
		}
		for _, e := range entries {
			if want := map[string]string{"service_name": "unknown_service"}; !maps.Equal(e.Labels, want) {
				t.Errorf("k8s_events' %q is in stream %v, want %v", e.Line, e.Labels, want)
			}
			md := e.StructuredMetadata
			for k := range md {
				if strings.HasPrefix(k, "k8s_") && !column[k] {
					t.Errorf("k8s_events' %q has %s=%q, which the guide's contrib column lacks", e.Line, k, md[k])
				}
			}
			if !goTime.MatchString(md["k8s_event_start_time"]) {
				t.Errorf("k8s_events' %q: k8s_event_start_time %q, want Go's Time.String() format", e.Line, md["k8s_event_start_time"])
			}
			if md["k8s_event_name"] != "web-0.pulling" {
				continue
			}
			// Every field set: every attribute of the column.
			t.Logf("k8s_events' structured metadata: %v", md)
			for k := range column {
				if md[k] == "" {
					t.Errorf("k8s_events' %q lacks %s (the guide's contrib column has it)", e.Line, k)
				}
			}
		}
		for _, e := range query(t, oursStream+notProbe) {
			// Seconds, or microseconds from the eventTime of an events.k8s.io Event.
			if v := e.StructuredMetadata["k8s_event_start_time"]; !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`).MatchString(v) {
				t.Errorf("ours %q: k8s_event_start_time %q, want RFC 3339", e.Line, v)
			}
		}
	})

	t.Run("k8sobjects' streams", func(t *testing.T) {
		// The guide: a stream per namespace, the line the Event's JSON.
		want := 0
		for _, ev := range created {
			if ev.Namespace == "shop" {
				want++
			}
		}
		entries := query(t, objectsShop)
		if len(entries) != want {
			t.Errorf("%s: %d lines, want the %d Events of namespace shop", objectsShop, len(entries), want)
		}
		for _, e := range entries {
			if wantLabels := map[string]string{"k8s_namespace_name": "shop", "service_name": "unknown_service"}; !maps.Equal(e.Labels, wantLabels) {
				t.Errorf("%s: a line in stream %v, want %v", objectsShop, e.Labels, wantLabels)
			}
			var body struct {
				Object struct {
					Metadata struct{ Namespace, Name string }
				}
			}
			if err := json.Unmarshal([]byte(e.Line), &body); err != nil || body.Object.Metadata.Namespace != "shop" || created[body.Object.Metadata.Name] == nil {
				t.Errorf("%s: line %q is not the JSON of an Event created in shop (%v)", objectsShop, e.Line, err)
			}
		}
	})

	t.Run("k8sobjects' records", func(t *testing.T) {
		checkObjectsRecords(t, doc.ObjectsFields, objectsSink.Records(), created)
	})

	t.Run("deleted Event", func(t *testing.T) {
		ev := created["api-0.scheduled"]
		if err := c.CoreV1().Events(ev.Namespace).Delete(ctx, ev.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// Each has read past the deletion once a later Event is in.
		marker := newEvent(eventSpec{namespace: "probe", name: "after-delete", reason: "Probe", message: "after the deletion"})
		marker.FirstTimestamp, marker.LastTimestamp = metav1.Now(), metav1.Now()
		if _, err := c.CoreV1().Events("probe").Create(ctx, marker, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		named := func(name func(otlpsink.Record) string, want string) func([]otlpsink.Record) bool {
			return func(recs []otlpsink.Record) bool {
				return countWhere(recs, func(r otlpsink.Record) bool { return name(r) == want }) > 0
			}
		}
		eventsSink.Wait(t, waitLong, "k8s_events' record of the marker", named(eventsName, marker.Name))
		objectsSink.Wait(t, waitLong, "k8sobjects' record of the marker", named(objectsName, marker.Name))
		waitForLoki(t, loki, oursStream+` | k8s_event_name="after-delete"`, from, 1)
		for _, s := range []struct {
			who  string
			sink *otlpsink.Sink
			name func(otlpsink.Record) string
		}{{"k8s_events", eventsSink, eventsName}, {"k8sobjects", objectsSink, objectsName}} {
			if n := countWhere(s.sink.Records(), func(r otlpsink.Record) bool { return s.name(r) == ev.Name }); n != 1 {
				t.Errorf("%s sent %d records of the deleted Event, want 1 (its creation)", s.who, n)
			}
		}
		if n := len(query(t, oursStream+` | k8s_event_name="`+ev.Name+`"`)); n != 1 {
			t.Errorf("ours: %d lines of the deleted Event, want 1", n)
		}
	})

	for _, col := range []*collectortest.Collector{ours, events, objects} {
		if exited, err := col.Exited(); exited {
			t.Errorf("a collector exited: %v", err)
		}
	}
}

// createGuideEvents creates the Events of the guide's queries: cluster
// my-cluster (the workstation command's), namespace shop, Pod web-0, Node
// node-1. The scheduler's FailedScheduling of web-0 goes through
// events.k8s.io/v1 with a series, as the real scheduler writes it; the
// others through core/v1, as the kubelet and controllers do.
func createGuideEvents(t *testing.T, c kubernetes.Interface) map[string]*corev1.Event {
	t.Helper()
	ctx := context.Background()
	type spec struct {
		ns, name, kind, object, reason, typ, message, host string
	}
	specs := []spec{
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
			ev.ReportingController, ev.ReportingInstance = "kubelet", s.host
		}
		if s.name == "web-1.backoff" {
			ev.Related = &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: "shop", Name: "web-1-debug", UID: "uid-shop-web-1-debug", FieldPath: "spec.containers{debug}"}
		}
		got, err := c.CoreV1().Events(s.ns).Create(ctx, ev, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create event %s/%s: %v", s.ns, s.name, err)
		}
		created[s.name] = got
	}

	now := metav1.NowMicro()
	fs := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: "web-0.fs", Namespace: "shop"},
		EventTime:           now,
		Series:              &eventsv1.EventSeries{Count: 3, LastObservedTime: now},
		ReportingController: "default-scheduler", ReportingInstance: "default-scheduler-node-0",
		Action: "Scheduling", Reason: "FailedScheduling", Type: corev1.EventTypeWarning,
		Regarding: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: "shop", Name: "web-0", UID: "uid-shop-web-0", ResourceVersion: "42"},
		Note:      "0/3 nodes are available: 3 Insufficient memory.",
	}
	if _, err := c.EventsV1().Events("shop").Create(ctx, fs, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create events.k8s.io event shop/web-0.fs: %v", err)
	}
	got, err := c.CoreV1().Events("shop").Get(ctx, fs.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("read shop/web-0.fs as a core/v1 Event: %v", err)
	}
	created[fs.Name] = got
	return created
}

// startPeer runs the contrib peer with a configuration of the guide as the
// ServiceAccount of kubeconfig: its records go to Loki (the guide's
// exporter) and to sink. extra are more --config values.
func startPeer(t *testing.T, bin, config string, sink *otlpsink.Sink, loki *lokitest.Loki, kubeconfig string, extra ...string) *collectortest.Collector {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "contrib.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfgPath,
		// Its own metrics would take :8888 from other collectors.
		"--config", "yaml:service::telemetry::metrics::level: none",
		"--config", "yaml:exporters::otlp_http/sink::endpoint: " + sink.Endpoint(),
		"--config", "yaml:exporters::otlp_http/sink::compression: none",
		"--config", "yaml:service::pipelines::logs::exporters: [otlp_http, otlp_http/sink]"}
	for _, e := range extra {
		args = append(args, "--config", e)
	}
	col := collectortest.StartProgram(t, bin, "", args, "KUBECONFIG="+kubeconfig, "LOKI_OTLP_ENDPOINT="+loki.OTLPEndpoint())
	col.WaitOutput("Everything is ready", time.Minute)
	return col
}

// checkObjectsRecords holds the guide's k8sobjects table against what
// k8sobjects sent: every attribute and body field the table names is on
// some record, and every attribute, every field of the Event (object.*)
// and of its metadata on the records is in the table.
func checkObjectsRecords(t *testing.T, fields []migratedoc.Field, recs []otlpsink.Record, created map[string]*corev1.Event) {
	t.Helper()
	documented := map[string]string{} // name -> where
	for _, f := range fields {
		for _, n := range f.Objects {
			documented[n] = f.ObjectsOn
		}
	}
	covered := func(path string) bool {
		for n, on := range documented {
			if on == migratedoc.OnBody && (n == path || strings.HasPrefix(n, path+".")) {
				return true
			}
		}
		return false
	}
	found := map[string]bool{}
	n := 0
	for _, r := range recs {
		if created[r.Str("event.name")] == nil {
			continue // a probe
		}
		n++
		for k := range r.Attrs {
			found[k] = true
			if on := documented[k]; on != migratedoc.OnRecord && on != migratedoc.OnResource {
				t.Errorf("k8sobjects' record of %s has the attribute %s=%v, which the guide's table lacks", r.Str("event.name"), k, r.Attrs[k])
			}
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
			t.Errorf("k8sobjects' body is no JSON object: %v: %s", err, r.Body)
			continue
		}
		walkBody("", body, func(path string) { found[path] = true })
		for k := range body {
			if !covered(k) {
				t.Errorf("k8sobjects' body has %s, which the guide's table lacks", k)
			}
		}
		object, _ := body["object"].(map[string]any)
		for k := range object {
			if !covered("object." + k) {
				t.Errorf("k8sobjects' Event has object.%s=%v, which the guide's table lacks", k, object[k])
			}
		}
		meta, _ := object["metadata"].(map[string]any)
		for k := range meta {
			if !covered("object.metadata." + k) {
				t.Errorf("k8sobjects' Event has object.metadata.%s, which the guide's table lacks", k)
			}
		}
	}
	if n < len(created) {
		t.Errorf("k8sobjects sent %d records of the %d Events", n, len(created))
	}
	for name := range documented {
		if !found[name] {
			t.Errorf("the guide's table names %s (%s), which no record of k8sobjects has", name, documented[name])
		}
	}
	t.Logf("k8sobjects: %d records checked against %d names of the guide", n, len(documented))
}

// walkBody calls f with the dotted path of every key in a JSON object,
// nested objects included.
func walkBody(prefix string, m map[string]any, f func(string)) {
	for k, v := range m {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		f(path)
		if sub, ok := v.(map[string]any); ok {
			walkBody(path, sub, f)
		}
	}
}

// clusterRoleOf reads a YAML example as a ClusterRole.
func clusterRoleOf(text string) (*rbacv1.ClusterRole, bool) {
	var role rbacv1.ClusterRole
	if yaml.Unmarshal([]byte(text), &role) != nil || role.Kind != "ClusterRole" {
		return nil, false
	}
	return &role, true
}

func grantsGroup(role *rbacv1.ClusterRole, group string) bool {
	for _, r := range role.Rules {
		if slices.Contains(r.APIGroups, group) {
			return true
		}
	}
	return false
}

// clusterRoleKubeconfig creates role, binds it to the ServiceAccount namespace/name
// and returns a kubeconfig with that ServiceAccount's token.
func clusterRoleKubeconfig(t *testing.T, cp *kubetest.ControlPlane, role *rbacv1.ClusterRole, namespace, name string) string {
	t.Helper()
	ctx := context.Background()
	c := cp.Client()
	role = role.DeepCopy()
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create clusterrole %s: %v", role.Name, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: namespace, Name: name}},
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create clusterrolebinding %s: %v", binding.Name, err)
	}
	path, err := cp.ServiceAccountKubeconfig(ctx, namespace, name)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func sortedLines(entries []lokitest.Entry) []string {
	out := lines(entries)
	slices.Sort(out)
	return out
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
