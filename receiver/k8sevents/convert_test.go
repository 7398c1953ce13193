package k8sevents

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents/internal/metadata"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the conversion's output")

const goldenClusterName = "capture-cluster"

var goldenObserved = time.Date(2027, 1, 2, 3, 4, 5, 600_000_007, time.UTC)

// capturedCases name the files that internal/cmd/captureevents writes to
// testdata/events (without .json).
var capturedCases = []string{
	"deployment-scalingreplicaset",
	"firsttimestamp-only",
	"kubelet-node-cgroupv1",
	"kubelet-node-nodeready",
	"kubelet-node-starting",
	"kubelet-pod-backoff",
	"kubelet-pod-liveness",
	"kubelet-pod-oomkilled",
	"kubelet-pod-started",
	"node-nodenotready",
	"node-registerednode",
	"pod-failedscheduling-series",
	"pod-scheduled",
	"replicaset-successfulcreate",
}

// readCaptured returns the bytes of a captured EventList.
func readCaptured(tb testing.TB, name string) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "events", name+".json"))
	require.NoError(tb, err)
	return data
}

// loadCaptured returns the Events of a captured EventList.
func loadCaptured(tb testing.TB, name string) []corev1.Event {
	tb.Helper()
	var list corev1.EventList
	require.NoError(tb, json.Unmarshal(readCaptured(tb, name), &list), name)
	require.NotEmpty(tb, list.Items, name)
	return list.Items
}

func TestCapturedCasesAreComplete(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	require.NoError(t, err)
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	assert.ElementsMatch(t, capturedCases, names, "testdata/events and capturedCases disagree")
}

func TestConvertGolden(t *testing.T) {
	for _, name := range capturedCases {
		t.Run(name, func(t *testing.T) {
			events := loadCaptured(t, name)
			got, err := json.MarshalIndent(goldenOf(convertEvents(events, goldenClusterName, goldenObserved)), "", "  ")
			require.NoError(t, err)
			got = append(got, '\n')

			path := filepath.Join("testdata", "golden", name+".json")
			if *update {
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, got, 0o644))
				return
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run `go test ./receiver/k8sevents -run TestConvertGolden -update` to create it")
			assert.Equal(t, string(want), string(got))
		})
	}
}

// golden* are plog.Logs in a stable, readable form: attributes are JSON
// objects, whose keys encoding/json sorts, and timestamps are RFC 3339 in UTC.
type goldenLogs struct {
	ResourceLogs []goldenResourceLogs `json:"resourceLogs"`
}

type goldenResourceLogs struct {
	Resource  map[string]any    `json:"resource"`
	ScopeLogs []goldenScopeLogs `json:"scopeLogs"`
}

type goldenScopeLogs struct {
	Scope      string            `json:"scope"`
	LogRecords []goldenLogRecord `json:"logRecords"`
}

type goldenLogRecord struct {
	Timestamp         string         `json:"timestamp,omitempty"`
	ObservedTimestamp string         `json:"observedTimestamp,omitempty"`
	SeverityNumber    int32          `json:"severityNumber"`
	SeverityText      string         `json:"severityText"`
	Body              any            `json:"body"`
	Attributes        map[string]any `json:"attributes"`
}

func goldenOf(ld plog.Logs) goldenLogs {
	out := goldenLogs{ResourceLogs: []goldenResourceLogs{}}
	for _, rl := range ld.ResourceLogs().All() {
		grl := goldenResourceLogs{Resource: rl.Resource().Attributes().AsRaw(), ScopeLogs: []goldenScopeLogs{}}
		for _, sl := range rl.ScopeLogs().All() {
			gsl := goldenScopeLogs{Scope: sl.Scope().Name(), LogRecords: []goldenLogRecord{}}
			for _, lr := range sl.LogRecords().All() {
				gsl.LogRecords = append(gsl.LogRecords, goldenLogRecord{
					Timestamp:         goldenTime(lr.Timestamp()),
					ObservedTimestamp: goldenTime(lr.ObservedTimestamp()),
					SeverityNumber:    int32(lr.SeverityNumber()),
					SeverityText:      lr.SeverityText(),
					Body:              lr.Body().AsRaw(),
					Attributes:        lr.Attributes().AsRaw(),
				})
			}
			grl.ScopeLogs = append(grl.ScopeLogs, gsl)
		}
		out.ResourceLogs = append(out.ResourceLogs, grl)
	}
	return out
}

func goldenTime(ts pcommon.Timestamp) string {
	if ts == 0 {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339Nano)
}

// converted is one log record with the resource it sits under.
type converted struct {
	resource pcommon.Map
	scope    string
	record   plog.LogRecord
}

// convertedRecords flattens ld in order.
func convertedRecords(ld plog.Logs) []converted {
	var out []converted
	for _, rl := range ld.ResourceLogs().All() {
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				out = append(out, converted{resource: rl.Resource().Attributes(), scope: sl.Scope().Name(), record: lr})
			}
		}
	}
	return out
}

// strAttr returns a string attribute, "" when it is absent.
func strAttr(m pcommon.Map, key string) string {
	v, ok := m.Get(key)
	if !ok {
		return ""
	}
	return v.Str()
}

func intAttr(t *testing.T, m pcommon.Map, key string) int64 {
	t.Helper()
	v, ok := m.Get(key)
	require.True(t, ok, "attribute %s is missing", key)
	require.Equal(t, pcommon.ValueTypeInt, v.Type(), key)
	return v.Int()
}

func assertTime(t *testing.T, want time.Time, got pcommon.Timestamp, msg string) {
	t.Helper()
	require.False(t, want.IsZero(), "%s: the fixture has no such time", msg)
	assert.Equal(t, want.UTC().Format(time.RFC3339Nano), goldenTime(got), msg)
}

// TestConvertCapturedEvents checks the facts the golden files must show, so a
// golden file regenerated from a wrong conversion does not pass unnoticed.
func TestConvertCapturedEvents(t *testing.T) {
	tests := []struct {
		name string
		// fixture checks what the captured Event looks like, so the case keeps
		// testing what it says when the files are captured again.
		fixture func(t *testing.T, ev corev1.Event)
		check   func(t *testing.T, ev corev1.Event, c converted)
	}{
		{
			name: "pod-failedscheduling-series",
			fixture: func(t *testing.T, ev corev1.Event) {
				require.NotNil(t, ev.Series, "series")
				require.GreaterOrEqual(t, ev.Series.Count, int32(2))
				require.True(t, ev.LastTimestamp.IsZero(), "lastTimestamp is set")
				require.False(t, ev.EventTime.IsZero(), "eventTime is not set")
				require.True(t, ev.Series.LastObservedTime.After(ev.EventTime.Time), "series.lastObservedTime <= eventTime")
				require.Equal(t, corev1.EventTypeWarning, ev.Type)
			},
			check: func(t *testing.T, ev corev1.Event, c converted) {
				assertTime(t, ev.Series.LastObservedTime.Time, c.record.Timestamp(), "timestamp is series.lastObservedTime")
				assert.Equal(t, int64(ev.Series.Count), intAttr(t, c.record.Attributes(), attrEventCount))
				assert.Equal(t, plog.SeverityNumberWarn, c.record.SeverityNumber())
				assert.Equal(t, "Warning", c.record.SeverityText())
				assert.Equal(t, "FailedScheduling", strAttr(c.record.Attributes(), attrEventReason))
				assert.Contains(t, c.record.Body().Str(), "Insufficient memory")
				assert.Equal(t, ev.EventTime.UTC().Format(time.RFC3339Nano), strAttr(c.record.Attributes(), attrEventStartTime))
				assert.Equal(t, "default-scheduler", strAttr(c.record.Attributes(), attrReportingController))
				assert.Equal(t, "too-big", strAttr(c.resource, "k8s.pod.name"))
				assert.Equal(t, "Pod", strAttr(c.resource, attrObjectKind))
				assert.Equal(t, "default", strAttr(c.resource, attrNamespaceName))
			},
		},
		{
			name: "pod-scheduled",
			fixture: func(t *testing.T, ev corev1.Event) {
				require.Nil(t, ev.Series)
				require.True(t, ev.LastTimestamp.IsZero(), "lastTimestamp is set")
				require.False(t, ev.EventTime.IsZero(), "eventTime is not set")
			},
			check: func(t *testing.T, ev corev1.Event, c converted) {
				assertTime(t, ev.EventTime.Time, c.record.Timestamp(), "timestamp is eventTime")
				assert.Equal(t, int64(1), intAttr(t, c.record.Attributes(), attrEventCount))
				assert.Equal(t, plog.SeverityNumberInfo, c.record.SeverityNumber())
				assert.Equal(t, "Normal", c.record.SeverityText())
				assert.Equal(t, "Successfully assigned default/scheduled to node-1", c.record.Body().Str())
				assert.Equal(t, "scheduled", strAttr(c.resource, "k8s.pod.name"))
				assert.Equal(t, string(ev.InvolvedObject.UID), strAttr(c.resource, "k8s.pod.uid"))
			},
		},
		{
			name: "deployment-scalingreplicaset",
			fixture: func(t *testing.T, ev corev1.Event) {
				require.Nil(t, ev.Series)
				require.False(t, ev.LastTimestamp.IsZero(), "lastTimestamp is not set")
			},
			check: func(t *testing.T, ev corev1.Event, c converted) {
				assertTime(t, ev.LastTimestamp.Time, c.record.Timestamp(), "timestamp is lastTimestamp")
				assert.Equal(t, int64(ev.Count), intAttr(t, c.record.Attributes(), attrEventCount))
				assert.Equal(t, plog.SeverityNumberInfo, c.record.SeverityNumber())
				assert.Equal(t, "deployment-controller", strAttr(c.record.Attributes(), attrSourceComponent))
				assert.Equal(t, "web", strAttr(c.resource, "k8s.deployment.name"))
				assert.Equal(t, string(ev.InvolvedObject.UID), strAttr(c.resource, "k8s.deployment.uid"))
				assert.Equal(t, "apps/v1", strAttr(c.resource, attrObjectAPIVersion))
			},
		},
		{
			name: "replicaset-successfulcreate",
			check: func(t *testing.T, ev corev1.Event, c converted) {
				assertTime(t, ev.LastTimestamp.Time, c.record.Timestamp(), "timestamp is lastTimestamp")
				assert.Equal(t, ev.Message, c.record.Body().Str())
				assert.True(t, strings.HasPrefix(c.record.Body().Str(), "Created pod: web-"), c.record.Body().Str())
				assert.Equal(t, "replicaset-controller", strAttr(c.record.Attributes(), attrSourceComponent))
				assert.Equal(t, ev.InvolvedObject.Name, strAttr(c.resource, "k8s.replicaset.name"))
			},
		},
		{
			name: "node-registerednode",
			check: func(t *testing.T, ev corev1.Event, c converted) {
				assertTime(t, ev.LastTimestamp.Time, c.record.Timestamp(), "timestamp is lastTimestamp")
				assert.Equal(t, "node-1", strAttr(c.resource, attrNodeName))
				assert.Equal(t, string(ev.InvolvedObject.UID), strAttr(c.resource, attrNodeUID))
				_, ok := c.resource.Get(attrNamespaceName)
				assert.False(t, ok, "a Node is in no namespace")
				assert.Equal(t, "default", strAttr(c.record.Attributes(), attrEventNamespace))
				assert.Equal(t, "node-controller", strAttr(c.record.Attributes(), attrSourceComponent))
				assert.Equal(t, "Node node-1 event: Registered Node node-1 in Controller", c.record.Body().Str())
			},
		},
		{
			name: "node-nodenotready",
			check: func(t *testing.T, ev corev1.Event, c converted) {
				assertTime(t, ev.LastTimestamp.Time, c.record.Timestamp(), "timestamp is lastTimestamp")
				assert.Equal(t, "node-1", strAttr(c.resource, attrNodeName))
				assert.Equal(t, "NodeNotReady", strAttr(c.record.Attributes(), attrEventReason))
				assert.Equal(t, "Node node-1 status is now: NodeNotReady", c.record.Body().Str())
				assert.Equal(t, plog.SeverityNumberInfo, c.record.SeverityNumber())
			},
		},
		{
			name: "firsttimestamp-only",
			fixture: func(t *testing.T, ev corev1.Event) {
				require.False(t, ev.FirstTimestamp.IsZero(), "firstTimestamp is not set")
				require.True(t, ev.LastTimestamp.IsZero(), "lastTimestamp is set")
				require.True(t, ev.EventTime.IsZero(), "eventTime is set")
				require.Nil(t, ev.Series)
				require.Zero(t, ev.Count)
			},
			check: func(t *testing.T, ev corev1.Event, c converted) {
				assertTime(t, ev.FirstTimestamp.Time, c.record.Timestamp(), "timestamp is firstTimestamp")
				assert.Equal(t, ev.FirstTimestamp.UTC().Format(time.RFC3339Nano), strAttr(c.record.Attributes(), attrEventStartTime))
				assert.Equal(t, int64(1), intAttr(t, c.record.Attributes(), attrEventCount), "an Event happened at least once")
				assert.Equal(t, "captureevents", strAttr(c.record.Attributes(), attrSourceComponent))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := loadCaptured(t, tt.name)
			if tt.fixture != nil {
				for _, ev := range events {
					tt.fixture(t, ev)
				}
			}
			records := convertedRecords(convertEvents(events, goldenClusterName, goldenObserved))
			require.Len(t, records, len(events), "one record per Event")
			byUID := make(map[string]converted, len(records))
			for _, c := range records {
				byUID[strAttr(c.record.Attributes(), attrEventUID)] = c
			}
			for _, ev := range events {
				c, ok := byUID[string(ev.UID)]
				require.True(t, ok, "no record for Event %s", ev.Name)
				// What every record shows.
				assert.Equal(t, goldenObserved.UnixNano(), int64(c.record.ObservedTimestamp()), "observed timestamp")
				assert.Equal(t, metadata.ScopeName, c.scope)
				assert.Equal(t, goldenClusterName, strAttr(c.resource, attrClusterName))
				assert.Equal(t, ev.Message, c.record.Body().Str())
				assert.Equal(t, ev.Reason, strAttr(c.record.Attributes(), attrEventReason))
				assert.Equal(t, ev.Name, strAttr(c.record.Attributes(), attrEventName))
				assert.Equal(t, ev.InvolvedObject.Kind, strAttr(c.resource, attrObjectKind))
				assert.Equal(t, ev.InvolvedObject.Name, strAttr(c.resource, attrObjectName))
				assert.Equal(t, string(ev.InvolvedObject.UID), strAttr(c.resource, attrObjectUID))
				tt.check(t, ev, c)
			}
		})
	}
}

func TestConvertGroupsRecordsByObject(t *testing.T) {
	rs := loadCaptured(t, "replicaset-successfulcreate")
	require.Len(t, rs, 2)
	deploy := loadCaptured(t, "deployment-scalingreplicaset")

	ld := convertEvents(append(append([]corev1.Event{}, rs...), deploy...), "", goldenObserved)

	require.Equal(t, 2, ld.ResourceLogs().Len(), "one resource per involved object")
	assert.Equal(t, 2, ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().Len())
	assert.Equal(t, "ReplicaSet", strAttr(ld.ResourceLogs().At(0).Resource().Attributes(), attrObjectKind))
	assert.Equal(t, 1, ld.ResourceLogs().At(1).ScopeLogs().At(0).LogRecords().Len())
	assert.Equal(t, "Deployment", strAttr(ld.ResourceLogs().At(1).Resource().Attributes(), attrObjectKind))
	_, ok := ld.ResourceLogs().At(0).Resource().Attributes().Get(attrClusterName)
	assert.False(t, ok, "no cluster name configured")

	assert.Equal(t, 0, convertEvents(nil, "c", goldenObserved).ResourceLogs().Len())
}

func TestConvertEdgeCases(t *testing.T) {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	at := func(t time.Time) metav1.Time { return metav1.NewTime(t) }
	huge := strings.Repeat("x", 1<<20)

	tests := []struct {
		name  string
		event corev1.Event
		// want are the record's exact attributes.
		want          map[string]any
		wantResource  map[string]any
		wantTimestamp time.Time // zero: no timestamp
		wantSeverity  plog.SeverityNumber
		wantText      string
		wantBody      string
	}{
		{
			name:         "zero Event",
			event:        corev1.Event{},
			want:         map[string]any{attrEventCount: int64(1)},
			wantResource: map[string]any{},
		},
		{
			name:         "huge message",
			event:        corev1.Event{Message: huge, Type: corev1.EventTypeNormal},
			want:         map[string]any{attrEventCount: int64(1), attrEventType: "Normal"},
			wantResource: map[string]any{},
			wantSeverity: plog.SeverityNumberInfo,
			wantText:     "Normal",
			wantBody:     huge,
		},
		{
			name:         "invalid UTF-8 in message",
			event:        corev1.Event{Message: "bad \xff\xfe bytes \xc3"},
			want:         map[string]any{attrEventCount: int64(1)},
			wantResource: map[string]any{},
			wantBody:     "bad \uFFFD bytes \uFFFD",
		},
		{
			name: "negative and far-future times are skipped",
			event: corev1.Event{
				LastTimestamp:  at(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)),
				EventTime:      metav1.NewMicroTime(time.Unix(-1, 0)),
				FirstTimestamp: at(t0),
			},
			want:          map[string]any{attrEventCount: int64(1), attrEventStartTime: "2026-03-04T05:06:07Z"},
			wantResource:  map[string]any{},
			wantTimestamp: t0,
		},
		{
			name: "only invalid times",
			event: corev1.Event{
				LastTimestamp:  at(time.Unix(-100, 0)),
				FirstTimestamp: at(time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)),
				Series:         &corev1.EventSeries{Count: 3, LastObservedTime: metav1.NewMicroTime(time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC))},
			},
			want:         map[string]any{attrEventCount: int64(3)},
			wantResource: map[string]any{},
		},
		{
			name:          "latest time OTLP can hold",
			event:         corev1.Event{LastTimestamp: at(time.Unix(0, 1<<63-1))},
			want:          map[string]any{attrEventCount: int64(1)},
			wantResource:  map[string]any{},
			wantTimestamp: time.Unix(0, 1<<63-1),
		},
		{
			name:          "creationTimestamp when no event time is set",
			event:         corev1.Event{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: at(t0)}},
			want:          map[string]any{attrEventCount: int64(1), attrEventStartTime: "2026-03-04T05:06:07Z"},
			wantResource:  map[string]any{},
			wantTimestamp: t0,
		},
		{
			name:          "eventTime only",
			event:         corev1.Event{EventTime: metav1.NewMicroTime(t0.Add(123456 * time.Microsecond))},
			want:          map[string]any{attrEventCount: int64(1), attrEventStartTime: "2026-03-04T05:06:07.123456Z"},
			wantResource:  map[string]any{},
			wantTimestamp: t0.Add(123456 * time.Microsecond),
		},
		{
			name: "lastTimestamp wins over eventTime",
			event: corev1.Event{
				EventTime:      metav1.NewMicroTime(t0),
				FirstTimestamp: at(t0.Add(time.Second)),
				LastTimestamp:  at(t0.Add(time.Hour)),
				Count:          7,
			},
			want:          map[string]any{attrEventCount: int64(7), attrEventStartTime: "2026-03-04T05:06:08Z"},
			wantResource:  map[string]any{},
			wantTimestamp: t0.Add(time.Hour),
		},
		{
			name: "series without lastObservedTime",
			event: corev1.Event{
				EventTime: metav1.NewMicroTime(t0),
				Series:    &corev1.EventSeries{Count: 4},
			},
			want:          map[string]any{attrEventCount: int64(4), attrEventStartTime: "2026-03-04T05:06:07Z"},
			wantResource:  map[string]any{},
			wantTimestamp: t0,
		},
		{
			name:         "series count 0 and count 0",
			event:        corev1.Event{Series: &corev1.EventSeries{}},
			want:         map[string]any{attrEventCount: int64(1)},
			wantResource: map[string]any{},
		},
		{
			name:         "negative count",
			event:        corev1.Event{Count: -5},
			want:         map[string]any{attrEventCount: int64(1)},
			wantResource: map[string]any{},
		},
		{
			name:         "unknown type",
			event:        corev1.Event{Type: "Info"},
			want:         map[string]any{attrEventCount: int64(1), attrEventType: "Info"},
			wantResource: map[string]any{},
			wantText:     "Info",
		},
		{
			name:         "type Error",
			event:        corev1.Event{Type: "Error"},
			want:         map[string]any{attrEventCount: int64(1), attrEventType: "Error"},
			wantResource: map[string]any{},
			wantSeverity: plog.SeverityNumberError,
			wantText:     "Error",
		},
		{
			name:         "type Warning",
			event:        corev1.Event{Type: corev1.EventTypeWarning},
			want:         map[string]any{attrEventCount: int64(1), attrEventType: "Warning"},
			wantResource: map[string]any{},
			wantSeverity: plog.SeverityNumberWarn,
			wantText:     "Warning",
		},
		{
			name: "container of a Pod from the field path",
			event: corev1.Event{
				InvolvedObject: corev1.ObjectReference{
					APIVersion: "v1", Kind: "Pod", Namespace: "ns", Name: "p", UID: "u", FieldPath: "spec.initContainers{init}",
				},
				Source: corev1.EventSource{Component: "kubelet", Host: "node-7"},
			},
			want: map[string]any{attrEventCount: int64(1), attrSourceComponent: "kubelet", attrSourceHost: "node-7"},
			wantResource: map[string]any{
				attrNamespaceName: "ns", attrNodeName: "node-7",
				attrObjectAPIVersion: "v1", attrObjectKind: "Pod", attrObjectName: "p", attrObjectUID: "u",
				attrObjectFieldPath: "spec.initContainers{init}",
				"k8s.pod.name":      "p", "k8s.pod.uid": "u", attrContainerName: "init",
			},
		},
		{
			name: "Namespace names the namespace",
			event: corev1.Event{
				InvolvedObject: corev1.ObjectReference{APIVersion: "v1", Kind: "Namespace", Name: "team-a"},
			},
			want: map[string]any{attrEventCount: int64(1)},
			wantResource: map[string]any{
				attrNamespaceName: "team-a", attrObjectAPIVersion: "v1", attrObjectKind: "Namespace", attrObjectName: "team-a",
			},
		},
		{
			name: "kind of another group is not a workload",
			event: corev1.Event{
				InvolvedObject: corev1.ObjectReference{APIVersion: "example.com/v1", Kind: "Pod", Namespace: "ns", Name: "p"},
				Related:        &corev1.ObjectReference{Kind: "Node", Name: "n"},
			},
			want: map[string]any{attrEventCount: int64(1), attrRelatedKind: "Node", attrRelatedName: "n"},
			wantResource: map[string]any{
				attrNamespaceName: "ns", attrObjectAPIVersion: "example.com/v1", attrObjectKind: "Pod", attrObjectName: "p",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ld plog.Logs
			require.NotPanics(t, func() { ld = convertEvents([]corev1.Event{tt.event}, "", goldenObserved) })
			records := convertedRecords(ld)
			require.Len(t, records, 1)
			c := records[0]

			assert.Equal(t, tt.wantBody, c.record.Body().Str())
			assert.True(t, utf8.ValidString(c.record.Body().Str()), "body is not valid UTF-8")
			if tt.wantTimestamp.IsZero() {
				assert.Zero(t, c.record.Timestamp(), "timestamp")
			} else {
				assert.Equal(t, tt.wantTimestamp.UnixNano(), int64(c.record.Timestamp()), "timestamp")
			}
			assert.Equal(t, goldenObserved.UnixNano(), int64(c.record.ObservedTimestamp()), "observed timestamp")
			assert.Equal(t, tt.wantSeverity, c.record.SeverityNumber())
			assert.Equal(t, tt.wantText, c.record.SeverityText())
			assert.Equal(t, tt.want, c.record.Attributes().AsRaw())
			assert.Equal(t, tt.wantResource, c.resource.AsRaw())
			assert.Equal(t, metadata.ScopeName, c.scope)
		})
	}
}

func FuzzConvertEvents(f *testing.F) {
	for _, name := range capturedCases {
		f.Add(readCaptured(f, name))
	}
	f.Add([]byte(`{"items":[{},{"series":{"count":-1}},{"lastTimestamp":"9999-12-31T23:59:59Z"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var list corev1.EventList
		if err := json.Unmarshal(data, &list); err != nil {
			return
		}
		ld := convertEvents(list.Items, "c", goldenObserved)
		records := convertedRecords(ld)
		if len(records) != len(list.Items) {
			t.Fatalf("%d records for %d Events", len(records), len(list.Items))
		}
		for _, c := range records {
			if !utf8.ValidString(c.record.Body().Str()) {
				t.Fatalf("body %q is not valid UTF-8", c.record.Body().Str())
			}
			if ts := c.record.Timestamp(); ts > pcommon.Timestamp(1<<63-1) {
				t.Fatalf("timestamp %d is beyond what Go's time can express", ts)
			}
			if n := intAttr(t, c.record.Attributes(), attrEventCount); n < 1 {
				t.Fatalf("count %d < 1", n)
			}
		}
	})
}

// TestConvertGoldenWithLookups converts captured Events with what lookups
// (extract) found about their involved objects: a Deployment's ReplicaSet
// and a Pod of that ReplicaSet, with labels. The objects are the captured
// ones, given owners and labels in a fakeMeta; the golden file is
// testdata/golden/lookups.json.
func TestConvertGoldenWithLookups(t *testing.T) {
	rs, deploy, pod := loadCaptured(t, "replicaset-successfulcreate"), loadCaptured(t, "deployment-scalingreplicaset"), loadCaptured(t, "kubelet-pod-started")
	owner := func(o corev1.ObjectReference) objOption {
		return func(m *metav1.PartialObjectMetadata) {
			yes := true
			m.OwnerReferences = []metav1.OwnerReference{{APIVersion: o.APIVersion, Kind: o.Kind, Name: o.Name, UID: o.UID, Controller: &yes}}
		}
	}
	fm := newFakeMeta()
	fm.add("deployments", "default", "web", withUID(string(deploy[0].InvolvedObject.UID)), withLabels("app", "web", "team", "shop"))
	fm.add("replicasets", "default", rs[0].InvolvedObject.Name, withUID(string(rs[0].InvolvedObject.UID)), owner(deploy[0].InvolvedObject),
		withLabels("app", "web", "pod-template-hash", "6cd794b997"))
	fm.add("pods", "default", pod[0].InvolvedObject.Name, withUID(string(pod[0].InvolvedObject.UID)), owner(rs[0].InvolvedObject),
		withLabels("app", "web", "pod-template-hash", "6cd794b997"), withAnnotations("example.com/owner", "alice"))
	h := newLookupHarness(t, fm, func(cfg *Config) {
		cfg.Extract.Labels = []string{"app", "team"}
		cfg.Extract.Annotations = []string{"example.com/owner"}
	})
	events := slices.Concat(deploy, rs, pod)
	found := h.r.resolve(t.Context(), events)
	ld, _ := converter{clusterName: goldenClusterName}.convert(events, goldenObserved, found)

	byKind := map[string]pcommon.Map{}
	for _, c := range convertedRecords(ld) {
		byKind[strAttr(c.resource, attrObjectKind)] = c.resource
	}
	assert.Equal(t, map[string]any{
		attrClusterName: goldenClusterName, attrNamespaceName: "default",
		attrObjectKind: "Pod", attrObjectName: "started", attrObjectUID: string(pod[0].InvolvedObject.UID),
		attrObjectAPIVersion: "v1", attrObjectFieldPath: "spec.containers{main}", attrObjectResourceVersion: "248",
		attrNodeName: "node-1", "k8s.pod.name": "started", "k8s.pod.uid": string(pod[0].InvolvedObject.UID), attrContainerName: "main",
		"k8s.replicaset.name": rs[0].InvolvedObject.Name, "k8s.replicaset.uid": string(rs[0].InvolvedObject.UID),
		"k8s.deployment.name": "web", "k8s.deployment.uid": string(deploy[0].InvolvedObject.UID),
		"k8s.pod.label.app": "web", "k8s.pod.annotation.example.com/owner": "alice",
		"k8s.deployment.label.app": "web", "k8s.deployment.label.team": "shop",
	}, byKind["Pod"].AsRaw())
	assert.Equal(t, "web", strAttr(byKind["ReplicaSet"], "k8s.deployment.name"))
	assert.Equal(t, "shop", strAttr(byKind["ReplicaSet"], "k8s.deployment.label.team"))
	assert.Equal(t, "web", strAttr(byKind["ReplicaSet"], "k8s.replicaset.label.app"), "the involved object's own labels")
	assert.Equal(t, "shop", strAttr(byKind["Deployment"], "k8s.deployment.label.team"))
	assert.Equal(t, 3, ld.ResourceLogs().Len(), "still one resource per involved object")

	got, err := json.MarshalIndent(goldenOf(ld), "", "  ")
	require.NoError(t, err)
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden", "lookups.json")
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run `go test ./receiver/k8sevents -run TestConvertGoldenWithLookups -update` to create it")
	assert.Equal(t, string(want), string(got))
}
