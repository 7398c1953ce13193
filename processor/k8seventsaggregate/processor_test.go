package k8seventsaggregate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/k8sevents/otelcol-k8sevents/processor/k8seventsaggregate/internal/metadata"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var t0 = time.Date(2027, 3, 4, 5, 6, 7, 0, time.UTC)

// rec is a record as the k8sevents receiver makes it: namespace and kind on
// the resource, reason on the record.
type rec struct {
	namespace, kind, name, reason string
	severity                      plog.SeverityNumber
	at                            time.Time
}

func (r rec) body() string { return r.kind + "/" + r.name + " " + r.reason }

// eventLogs puts each record under its own resource, as the receiver does
// for records about different objects.
func eventLogs(recs ...rec) plog.Logs {
	ld := plog.NewLogs()
	for _, r := range recs {
		rl := ld.ResourceLogs().AppendEmpty()
		res := rl.Resource().Attributes()
		res.PutStr("k8s.cluster.name", "prod")
		if r.namespace != "" {
			res.PutStr("k8s.namespace.name", r.namespace)
		}
		res.PutStr("k8s.object.kind", r.kind)
		res.PutStr("k8s.object.name", r.name)
		lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.Body().SetStr(r.body())
		lr.SetTimestamp(pcommon.NewTimestampFromTime(r.at))
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(r.at.Add(time.Second)))
		sev := r.severity
		if sev == 0 {
			sev = plog.SeverityNumberWarn
		}
		lr.SetSeverityNumber(sev)
		lr.SetSeverityText(map[plog.SeverityNumber]string{plog.SeverityNumberWarn: "WARN", plog.SeverityNumberError: "ERROR", plog.SeverityNumberInfo: "INFO"}[sev])
		lr.Attributes().PutStr("k8s.event.reason", r.reason)
		lr.Attributes().PutStr("k8s.event.name", r.name+"."+r.reason)
	}
	return ld
}

func bodies(lds ...plog.Logs) []string {
	var out []string
	for _, ld := range lds {
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					out = append(out, lr.Body().Str())
				}
			}
		}
	}
	return out
}

// testProcessor is a processor on a clock the test moves, without its
// flusher: the test calls flushDue.
type testProcessor struct {
	*aggregateProcessor
	clock time.Time
}

func newTestProcessor(t *testing.T, cfg *Config, next consumer.Logs) *testProcessor {
	t.Helper()
	p, err := newProcessor(processortest.NewNopSettings(metadata.Type), cfg, next)
	require.NoError(t, err)
	tp := &testProcessor{aggregateProcessor: p, clock: t0}
	p.now = func() time.Time { return tp.clock }
	return tp
}

func TestAggregateWindow(t *testing.T) {
	sink := new(consumertest.LogsSink)
	cfg := createDefaultConfig()
	p := newTestProcessor(t, cfg, sink)
	ctx := t.Context()

	backOff := func(name string, sec int, sev plog.SeverityNumber) rec {
		return rec{namespace: "shop", kind: "Pod", name: name, reason: "BackOff", severity: sev, at: t0.Add(time.Duration(sec) * time.Second)}
	}
	// One page: the first BackOff and the first FailedScheduling pass.
	require.NoError(t, p.ConsumeLogs(ctx, eventLogs(
		backOff("web-1", 0, 0),
		backOff("web-2", 1, 0),
		rec{namespace: "shop", kind: "Pod", name: "web-3", reason: "FailedScheduling", at: t0},
		backOff("web-3", -5, plog.SeverityNumberError),
	)))
	p.clock = t0.Add(30 * time.Second)
	// Another page in the window: all counted, nothing sent.
	require.NoError(t, p.ConsumeLogs(ctx, eventLogs(backOff("web-1", 20, 0), backOff("web-4", 25, 0))))
	// Same reason, other namespace or kind: other keys.
	require.NoError(t, p.ConsumeLogs(ctx, eventLogs(
		rec{namespace: "pay", kind: "Pod", name: "api-1", reason: "BackOff", at: t0},
		rec{kind: "Node", name: "node-1", reason: "BackOff", at: t0},
		rec{kind: "Node", name: "node-2", reason: "BackOff", at: t0},
	)))
	require.Len(t, sink.AllLogs(), 2, "the page of counted records is not sent on")
	assert.Equal(t, []string{"Pod/web-1 BackOff", "Pod/web-3 FailedScheduling", "Pod/api-1 BackOff", "Node/node-1 BackOff"}, bodies(sink.AllLogs()...))

	// Before the end of the first window nothing closes.
	p.clock = t0.Add(59 * time.Second)
	wait, pending := p.flushDue(ctx)
	assert.True(t, pending)
	assert.Equal(t, time.Second, wait)
	assert.Len(t, sink.AllLogs(), 2)

	// The windows of the first page close; those opened at +30s stay.
	p.clock = t0.Add(time.Minute)
	wait, pending = p.flushDue(ctx)
	assert.True(t, pending)
	assert.Equal(t, 30*time.Second, wait)
	require.Len(t, sink.AllLogs(), 3)
	summaries := sink.AllLogs()[2]
	assert.Equal(t, []string{"Aggregated 4 similar events for Pod with reason BackOff"}, bodies(summaries),
		"FailedScheduling counted nothing, so it has no summary")
	rl := summaries.ResourceLogs().At(0)
	assert.Equal(t, map[string]any{"k8s.cluster.name": "prod", "k8s.namespace.name": "shop", "k8s.object.kind": "Pod"}, rl.Resource().Attributes().AsRaw())
	sl := rl.ScopeLogs().At(0)
	assert.Equal(t, metadata.ScopeName, sl.Scope().Name())
	lr := sl.LogRecords().At(0)
	assert.Equal(t, map[string]any{
		"k8s.event.reason":               "BackOff",
		"k8s.event.aggregate.count":      int64(4),
		"k8s.event.aggregate.first_time": "2027-03-04T05:06:02Z",
		"k8s.event.aggregate.last_time":  "2027-03-04T05:06:32Z",
	}, lr.Attributes().AsRaw())
	assert.Equal(t, t0.Add(25*time.Second), lr.Timestamp().AsTime())
	assert.Equal(t, t0.Add(time.Minute), lr.ObservedTimestamp().AsTime())
	assert.Equal(t, plog.SeverityNumberError, lr.SeverityNumber(), "the highest severity of the counted records")
	assert.Equal(t, "ERROR", lr.SeverityText())

	// A new window for BackOff in shop: the next record passes again.
	require.NoError(t, p.ConsumeLogs(ctx, eventLogs(backOff("web-5", 61, 0))))
	assert.Equal(t, []string{"Pod/web-5 BackOff"}, bodies(sink.AllLogs()[3]))

	// The Node window (no namespace) closes with its count.
	p.clock = t0.Add(90 * time.Second)
	_, pending = p.flushDue(ctx)
	assert.True(t, pending, "web-5's window is open")
	assert.Equal(t, []string{"Aggregated 1 similar events for Node with reason BackOff"}, bodies(sink.AllLogs()[4]))
	assert.Equal(t, map[string]any{"k8s.cluster.name": "prod", "k8s.object.kind": "Node"}, sink.AllLogs()[4].ResourceLogs().At(0).Resource().Attributes().AsRaw())
}

func TestRecordsWithoutKeysPass(t *testing.T) {
	sink := new(consumertest.LogsSink)
	p := newTestProcessor(t, createDefaultConfig(), sink)
	ld := plog.NewLogs()
	for range 3 {
		ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("not an Event")
	}
	require.NoError(t, p.ConsumeLogs(t.Context(), ld))
	assert.Equal(t, []string{"not an Event", "not an Event", "not an Event"}, bodies(sink.AllLogs()...))
}

func TestConfiguredKeys(t *testing.T) {
	sink := new(consumertest.LogsSink)
	cfg := createDefaultConfig()
	cfg.Keys = []string{"k8s.event.reason"}
	p := newTestProcessor(t, cfg, sink)
	require.NoError(t, p.ConsumeLogs(t.Context(), eventLogs(
		rec{namespace: "a", kind: "Pod", name: "x", reason: "BackOff", at: t0},
		rec{namespace: "b", kind: "Node", name: "y", reason: "BackOff", at: t0},
	)))
	p.clock = t0.Add(time.Hour)
	p.flushDue(t.Context())
	assert.Equal(t, []string{"Pod/x BackOff", "Aggregated 1 similar events for Pod with reason BackOff"}, bodies(sink.AllLogs()...))
	assert.Equal(t, map[string]any{"k8s.cluster.name": "prod"}, sink.AllLogs()[1].ResourceLogs().At(0).Resource().Attributes().AsRaw(),
		"only the key attributes and the cluster name go on the summary's resource")
}

// TestRefusedDataIsUndone: when the next consumer refuses what passed, the
// receiver sends the same page again; it must be treated as the first time.
func TestRefusedDataIsUndone(t *testing.T) {
	next := &switchConsumer{err: errors.New("exporter queue is full")}
	p := newTestProcessor(t, createDefaultConfig(), next)
	ctx := t.Context()
	require.NoError(t, p.ConsumeLogs(ctx, eventLogs(rec{namespace: "shop", kind: "Pod", name: "a", reason: "BackOff", at: t0})))
	p.clock = t0.Add(10 * time.Second)
	page := func() plog.Logs {
		return eventLogs(
			rec{namespace: "shop", kind: "Pod", name: "b", reason: "BackOff", at: t0.Add(10 * time.Second)},
			rec{namespace: "shop", kind: "Pod", name: "c", reason: "Unhealthy", at: t0.Add(10 * time.Second)},
		)
	}
	next.fail = true
	require.Error(t, p.ConsumeLogs(ctx, page()))
	require.Error(t, p.ConsumeLogs(ctx, page()))
	next.fail = false
	require.NoError(t, p.ConsumeLogs(ctx, page()))
	assert.Equal(t, []string{"Pod/a BackOff", "Pod/c Unhealthy"}, bodies(next.sink.AllLogs()...))
	p.clock = t0.Add(2 * time.Minute)
	p.flushDue(ctx)
	assert.Equal(t, []string{"Aggregated 1 similar events for Pod with reason BackOff"}, bodies(next.sink.AllLogs()[2]),
		"b counted once, though it was refused twice")
	assert.Empty(t, p.windows)
	assert.Empty(t, p.queue)
}

// switchConsumer refuses everything while fail is set, and else keeps it.
type switchConsumer struct {
	fail bool
	err  error
	sink consumertest.LogsSink
}

func (c *switchConsumer) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func (c *switchConsumer) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	if c.fail {
		return c.err
	}
	return c.sink.ConsumeLogs(ctx, ld)
}

func TestMaxKeys(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	sink := new(consumertest.LogsSink)
	cfg := createDefaultConfig()
	cfg.MaxKeys = 2
	set := processortest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	p, err := newProcessor(set, cfg, sink)
	require.NoError(t, err)
	now := t0
	p.now = func() time.Time { return now }
	ctx := t.Context()
	page := eventLogs(
		rec{namespace: "a", kind: "Pod", name: "1", reason: "R1", at: t0},
		rec{namespace: "a", kind: "Pod", name: "2", reason: "R2", at: t0},
		rec{namespace: "a", kind: "Pod", name: "3", reason: "R3", at: t0},
		rec{namespace: "a", kind: "Pod", name: "4", reason: "R3", at: t0},
		rec{namespace: "a", kind: "Pod", name: "5", reason: "R1", at: t0},
	)
	require.NoError(t, p.ConsumeLogs(ctx, page))
	assert.Equal(t, []string{"Pod/1 R1", "Pod/2 R2", "Pod/3 R3", "Pod/4 R3"}, bodies(sink.AllLogs()...),
		"R3 has no window: max_keys windows are open")
	assert.Equal(t, 1, logs.FilterMessageSnippet("max_keys windows are open").Len())
	now = t0.Add(time.Minute)
	p.flushDue(ctx)
	assert.Equal(t, 1, logs.FilterMessageSnippet("aggregating records of new keys again").Len())
}

// TestFlusherAndShutdown runs the processor as the collector does: the
// flusher sends a window's summary when it closes, and Shutdown sends those
// of the windows still open.
func TestFlusherAndShutdown(t *testing.T) {
	sink := new(consumertest.LogsSink)
	cfg := createDefaultConfig()
	cfg.Window = 100 * time.Millisecond
	p, err := NewFactory().CreateLogs(t.Context(), processortest.NewNopSettings(metadata.Type), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, p.Start(t.Context(), componenttest.NewNopHost()))
	require.NoError(t, p.ConsumeLogs(t.Context(), eventLogs(
		rec{namespace: "shop", kind: "Pod", name: "a", reason: "BackOff", at: t0},
		rec{namespace: "shop", kind: "Pod", name: "b", reason: "BackOff", at: t0},
		rec{namespace: "shop", kind: "Pod", name: "c", reason: "BackOff", at: t0},
	)))
	// Waits only bound a hang.
	require.Eventually(t, func() bool { return sink.LogRecordCount() == 2 }, time.Minute, 10*time.Millisecond)
	assert.Equal(t, []string{"Pod/a BackOff", "Aggregated 2 similar events for Pod with reason BackOff"}, bodies(sink.AllLogs()...))

	// A window that would stay open for an hour is closed by Shutdown.
	cfg.Window = time.Hour
	require.NoError(t, p.ConsumeLogs(t.Context(), eventLogs(
		rec{namespace: "shop", kind: "Pod", name: "d", reason: "Unhealthy", at: t0},
		rec{namespace: "shop", kind: "Pod", name: "e", reason: "Unhealthy", at: t0},
	)))
	require.NoError(t, p.Shutdown(t.Context()))
	assert.Equal(t, []string{"Pod/d Unhealthy", "Aggregated 1 similar events for Pod with reason Unhealthy"}, bodies(sink.AllLogs()[2:]...))
	require.NoError(t, p.Shutdown(t.Context()), "a second Shutdown is harmless")
}

func TestShutdownBeforeStart(t *testing.T) {
	p, err := NewFactory().CreateLogs(t.Context(), processortest.NewNopSettings(metadata.Type), createDefaultConfig(), consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, p.Shutdown(t.Context()))
}

func TestRefusedSummaryIsLogged(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	next := &switchConsumer{err: errors.New("loki is down")}
	set := processortest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	p, err := newProcessor(set, createDefaultConfig(), next)
	require.NoError(t, err)
	require.NoError(t, p.ConsumeLogs(t.Context(), eventLogs(
		rec{namespace: "shop", kind: "Pod", name: "a", reason: "BackOff", at: t0},
		rec{namespace: "shop", kind: "Pod", name: "b", reason: "BackOff", at: t0},
	)))
	next.fail = true
	require.NoError(t, p.Shutdown(t.Context()))
	entries := logs.FilterMessageSnippet("refused summaries").All()
	require.Len(t, entries, 1)
	assert.Equal(t, int64(1), entries[0].ContextMap()["aggregated_records"])
}

func TestFactory(t *testing.T) {
	f := NewFactory()
	assert.Equal(t, metadata.Type, f.Type())
	assert.Equal(t, metadata.LogsStability, f.LogsStability())
	assert.Equal(t, createDefaultConfig(), f.CreateDefaultConfig())
}
