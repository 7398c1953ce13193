package k8sevents

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// These tests run watch mode against the fakeAPI's watch, for the cases a
// real API server cannot be made to produce on demand (a silent watch, a
// 410 inside the stream, a watch ended at a given moment). e2e/ runs the
// same behaviors against the real kube-apiserver.

func withWatch(cfg *Config) {
	cfg.Mode = ModeWatch
	cfg.BatchTimeout = 5 * time.Millisecond
}

// barrier creates an Event after everything the test made and waits until
// it is delivered: a watch delivers in revision order, so anything that was
// going to arrive before it (a repeat from an old cursor, too) has arrived.
func (h *harness) barrier(t *testing.T, ns string) {
	t.Helper()
	name := fmt.Sprintf("barrier-%d", time.Now().UnixNano())
	h.api.add(newEvent(ns, name))
	require.Eventually(t, func() bool { return h.sink.hasName(name) }, time.Minute, time.Millisecond, "the barrier %s", name)
}

func (s *recordSink) hasName(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.seen {
		if strings.HasPrefix(id, name+"@") {
			return true
		}
	}
	return false
}

// countPrefix counts the distinct changes delivered of Events whose names
// start with prefix.
func (s *recordSink) countPrefix(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id := range s.seen {
		if strings.HasPrefix(id, prefix) {
			n++
		}
	}
	return n
}

// counterBy sums a counter's points whose attribute key is value.
func counterBy(t *testing.T, tel *componenttest.Telemetry, name, key, value string) int64 {
	t.Helper()
	m, err := tel.GetMetric(name)
	if err != nil {
		return 0 // nothing recorded yet
	}
	var n int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		if v, ok := dp.Attributes.Value(attribute.Key(key)); ok && v.AsString() == value {
			n += dp.Value
		}
	}
	return n
}

// After the first list, watch mode reads only changes: every Event once,
// every update of one Event once (a poller would coalesce them), and no
// further list.
func TestWatchListsOnceThenStreamsEveryChange(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "old", 12) // three pages of five
	h := newHarness(t, api, withWatch)
	h.start(t)
	require.Eventually(t, func() bool { return h.sink.count() >= 12 }, time.Minute, time.Millisecond)
	lists := api.listCalls()

	api.addN("default", "new", 30)
	for range 5 {
		api.bump("default", "old-003")
	}
	h.barrier(t, "default")
	assert.Equal(t, 12+30+5+1, h.sink.count())
	assert.Empty(t, h.sink.repeats())
	assert.Equal(t, 6, h.sink.countPrefix("old-003@"), "the creation and each of the five updates")
	assert.Equal(t, 3, lists, "one list of three pages")
	assert.Equal(t, lists, api.listCalls(), "no list after it")
	assert.Equal(t, 1, api.watchCalls())
}

// With a resume point the watch starts from it at once: nothing is listed.
func TestWatchResumesWithoutListing(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "old", 10) // revisions 101..110
	st := &memStorage{}
	h := newHarness(t, api, func(cfg *Config) { withWatch(cfg); withStorage(cfg); cfg.StartAt = StartAtEnd })
	seedStorage(t, st, h.rcv.scopes, map[string]cursor{"*": {Mark: 107}})
	api.addN("default", "new", 4) // created while the receiver was down
	h.startWithStorage(t, st)
	h.barrier(t, "default")

	assert.Zero(t, api.listCalls(), "no list")
	assert.Equal(t, 3+4+1, h.sink.count(), "old-007..009, the four new ones and the barrier")
	assert.False(t, h.sink.has("old-006@107"))
	assert.True(t, h.sink.has("old-007@108"))
	assert.Empty(t, h.sink.repeats())
	h.stop(t)
	assert.Equal(t, api.rev, decodeSaved(t, st.get(storageKey)).Scopes["*"].Mark)
}

// A resume point older than the watch window (410 Gone, sent in the stream
// as the watch cache does) leads to a list from the cursor, then a watch:
// nothing lost, nothing repeated.
func TestWatchGoneListsFromTheCursor(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "old", 10) // revisions 101..110
	api.expireBefore(108)
	st := &memStorage{}
	h := newHarness(t, api, func(cfg *Config) { withWatch(cfg); withStorage(cfg) })
	seedStorage(t, st, h.rcv.scopes, map[string]cursor{"*": {Mark: 105}})
	h.startWithStorage(t, st)
	require.Eventually(t, func() bool { return h.sink.count() >= 5 }, time.Minute, time.Millisecond)
	api.addN("default", "new", 3)
	h.barrier(t, "default")

	assert.Equal(t, 5+3+1, h.sink.count())
	assert.Empty(t, h.sink.repeats())
	assert.False(t, h.sink.has("old-004@105"))
	assert.Equal(t, int64(1), counterBy(t, h.tel, "otelcol_receiver_k8sevents_watch_restarts", "cause", causeGone))
	assert.Equal(t, 1, h.logs.FilterMessageSnippet("410 Gone").Len())
	assert.Equal(t, 2, api.watchCalls(), "the refused watch and the one after the list")
}

// A watch the server ends early (an API server going away) is started again
// from the cursor; one that reaches its timeout, too. Nothing is lost or
// repeated, and the restarts are counted by cause.
func TestWatchRestartsFromTheCursor(t *testing.T) {
	api := newFakeAPI()
	h := newHarness(t, api, withWatch)
	h.rcv.watch.timeout = time.Second // watches of one second: the fake ends them
	h.start(t)
	h.barrier(t, "default")
	for i := range 4 {
		api.addN("default", fmt.Sprintf("wave%d", i), 7)
		watches := api.watchCalls()
		api.endWatches()
		require.Eventually(t, func() bool { return api.watchCalls() > watches }, time.Minute, time.Millisecond, "a new watch")
	}
	require.Eventually(t, func() bool {
		return counterBy(t, h.tel, "otelcol_receiver_k8sevents_watch_restarts", "cause", causeTimeout) >= 1
	}, time.Minute, time.Millisecond)
	h.barrier(t, "default")

	assert.Equal(t, 28+2, h.sink.count())
	assert.Empty(t, h.sink.repeats())
	// Each wave started a new watch: the one the test ended (error), or, on
	// a machine slow enough that the watch's own second ran out first and
	// the test's end met no watch, the one its timeout started.
	restarts := counterBy(t, h.tel, "otelcol_receiver_k8sevents_watch_restarts", "cause", causeError) +
		counterBy(t, h.tel, "otelcol_receiver_k8sevents_watch_restarts", "cause", causeTimeout)
	assert.GreaterOrEqual(t, restarts, int64(4))
	assert.Equal(t, 1, api.listCalls(), "the first list (start_at beginning) and no other")
}

// A watch that brings nothing, not even a bookmark, is replaced.
func TestWatchStallIsDetected(t *testing.T) {
	api := newFakeAPI()
	api.setSilent(true)
	api.addN("default", "ev", 3)
	h := newHarness(t, api, func(cfg *Config) { withWatch(cfg); cfg.StartAt = StartAtEnd })
	h.rcv.watch.stallAfter = 20 * time.Millisecond
	h.start(t)
	require.Eventually(t, func() bool { return h.logs.FilterMessageSnippet("start_at end").Len() == 1 }, time.Minute, time.Millisecond)
	api.addN("default", "lost-in-silence", 4)
	require.Eventually(t, func() bool {
		return counterBy(t, h.tel, "otelcol_receiver_k8sevents_watch_restarts", "cause", causeStall) >= 2
	}, time.Minute, time.Millisecond)
	assert.Zero(t, h.sink.count())
	assert.Positive(t, h.logs.FilterMessageSnippet("it is stalled").Len())

	api.setSilent(false) // the next watch works
	h.barrier(t, "default")
	assert.Equal(t, 4+1, h.sink.count(), "what the silent watches did not bring, once")
	assert.Empty(t, h.sink.repeats())
}

// When the next consumer refuses a batch, the cursor stays and the watch
// starts again from it: nothing is lost or repeated.
func TestWatchRefusingConsumerLosesNothing(t *testing.T) {
	api := newFakeAPI()
	h := newHarness(t, api, withWatch)
	h.start(t)
	h.barrier(t, "default")
	refuse := errors.New("exporter queue is full")
	h.sink.refuse.Store(&refuse)
	api.addN("default", "ev", 12)
	require.Eventually(t, func() bool { return h.sink.refused.Load() >= 5 }, time.Minute, time.Millisecond)
	h.sink.refuse.Store(nil)
	h.barrier(t, "default")

	assert.Equal(t, 12+2, h.sink.count())
	assert.Empty(t, h.sink.repeats())
	assert.GreaterOrEqual(t, counterBy(t, h.tel, "otelcol_receiver_k8sevents_watch_restarts", "cause", causeRefused), int64(5))
	assert.GreaterOrEqual(t, counterBy(t, h.tel, "otelcol_receiver_k8sevents_errors", "kind", "consume"), int64(5))
	assert.Equal(t, 1, h.logs.FilterMessage("Watching Kubernetes events failed; keeping the position and retrying").Len(), "logged once")
	assert.Equal(t, 1, h.logs.FilterMessage("Watching Kubernetes events works again").Len())
}

// A batch closes at page_size Events; the rest of a burst waits at most
// batch_timeout.
func TestWatchBatches(t *testing.T) {
	api := newFakeAPI()
	h := newHarness(t, api, func(cfg *Config) { withWatch(cfg); cfg.StartAt = StartAtEnd; cfg.BatchTimeout = 50 * time.Millisecond })
	h.start(t)
	require.Eventually(t, func() bool { return h.logs.FilterMessageSnippet("start_at end").Len() == 1 }, time.Minute, time.Millisecond)
	require.Eventually(t, func() bool { return api.watchCalls() == 1 }, time.Minute, time.Millisecond)
	api.addN("default", "burst", 23)
	require.Eventually(t, func() bool { return h.sink.count() >= 23 }, time.Minute, time.Millisecond)

	h.sink.mu.Lock()
	batches := append([]int(nil), h.sink.batches...)
	h.sink.mu.Unlock()
	total := 0
	for _, n := range batches {
		assert.LessOrEqual(t, n, 5, "batches of at most page_size: %v", batches)
		total += n
	}
	assert.Equal(t, 23, total)
	assert.Contains(t, batches, 5, "full batches, not one Event at a time: %v", batches)
}

// A deletion emits nothing; a bookmark moves the resume point even when the
// scope has no Event to deliver.
func TestWatchDeletionsAndBookmarksMoveTheCursor(t *testing.T) {
	api := newFakeAPI()
	api.addN("a", "ev", 3)
	st := &memStorage{}
	h := newHarness(t, api, func(cfg *Config) {
		withWatch(cfg)
		withStorage(cfg)
		cfg.Namespaces = []string{"a"}
		cfg.CheckpointInterval = time.Millisecond
	})
	h.startWithStorage(t, st)
	require.Eventually(t, func() bool { return h.sink.count() >= 3 }, time.Minute, time.Millisecond)
	api.remove("a", "ev-001")
	h.barrier(t, "a")
	assert.Equal(t, 4, h.sink.count(), "the deletion emitted nothing")

	api.addN("b", "elsewhere", 2) // the revision moves on outside the scope
	api.bookmark()
	require.Eventually(t, func() bool {
		data := st.get(storageKey)
		return data != nil && decodeSaved(t, data).Scopes["a"].Mark == api.rev
	}, time.Minute, time.Millisecond, "the bookmark's revision reaches the resume point")
	assert.Equal(t, 4, h.sink.count())
}

// A watch forbidden by RBAC names the verb it lacks: watch mode needs watch.
func TestWatchForbiddenNamesTheMissingRule(t *testing.T) {
	api := newFakeAPI()
	api.w.beforeWatch = func(int, metav1.ListOptions) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "",
			errors.New(`User "system:serviceaccount:observability:otelcol-k8sevents" cannot watch resource "events" in API group "" in the namespace "team-c"`))
	}
	h := newHarness(t, api, func(cfg *Config) { withWatch(cfg); cfg.Namespaces = []string{"team-c"} })
	h.start(t)
	require.Eventually(t, func() bool {
		return h.logs.FilterMessage("Watching Kubernetes events failed; keeping the position and retrying").Len() == 1
	}, time.Minute, time.Millisecond)
	msg := h.logs.FilterMessage("Watching Kubernetes events failed; keeping the position and retrying").All()[0].ContextMap()["error"]
	assert.Contains(t, msg, `RBAC: grant verb "watch" on resource "events" (apiGroups [""]) in namespace "team-c" (Role)`)
	assert.Equal(t, int64(0), counterBy(t, h.tel, "otelcol_receiver_k8sevents_errors", "kind", "watch"))
	assert.Positive(t, counterBy(t, h.tel, "otelcol_receiver_k8sevents_errors", "kind", "forbidden"))
}

// start_at end in watch mode: only what changes after the start.
func TestWatchStartAtEnd(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "stored", 8)
	h := newHarness(t, api, func(cfg *Config) { withWatch(cfg); cfg.StartAt = StartAtEnd })
	h.start(t)
	require.Eventually(t, func() bool { return h.logs.FilterMessageSnippet("start_at end").Len() == 1 }, time.Minute, time.Millisecond)
	api.bump("default", "stored-002")
	h.barrier(t, "default")
	assert.Equal(t, 2, h.sink.count(), "the update and the barrier")
	assert.Equal(t, 1, h.sink.countPrefix("stored-002@"))
	assert.Equal(t, 1, api.listCalls(), "one list of one Event, to learn the revision")
}

func TestCursorWatched(t *testing.T) {
	for _, tc := range []struct {
		name string
		cur  cursor
		rev  uint64
		want cursor
	}{
		{"moves the mark", cursor{Mark: 10}, 15, cursor{Mark: 15}},
		{"never back", cursor{Mark: 10}, 9, cursor{Mark: 10}},
		{"drops the steps it passes", cursor{Mark: 10, Steps: []step{{Key: "a/x", Rev: 20}, {Key: "b/y", Rev: 14}}}, 15,
			cursor{Mark: 15, Steps: []step{{Key: "a/x", Rev: 20}}}},
		{"drops every step", cursor{Mark: 10, Steps: []step{{Key: "a/x", Rev: 20}}}, 20, cursor{Mark: 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur := tc.cur
			cur.watched(tc.rev)
			assert.Equal(t, tc.want, cur)
			for _, key := range []string{"a/a", "a/x", "b/b", "c/z"} {
				assert.GreaterOrEqual(t, cur.deliveredUpTo(key), tc.cur.deliveredUpTo(key), "a key is never delivered up to less than before: %s", key)
			}
		})
	}
}

// Leader election in watch mode: only the leader watches; when it leaves,
// the other replica resumes from the shared checkpoint with a watch, without
// a list, and nothing is lost or repeated.
func TestWatchLeaderHandsOver(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 10)
	cs := electionClientset(api)
	mutate := func(cfg *Config) { withWatch(cfg); withLeaderElection(cfg) }
	a := newHarnessOn(t, api, cs, mutate)
	b := newHarnessOn(t, api, cs, mutate)
	a.start(t)
	b.start(t)
	require.Eventually(t, func() bool { return a.sink.count()+b.sink.count() >= 10 }, time.Minute, time.Millisecond)
	leader, follower := a, b
	if b.sink.count() > 0 {
		leader, follower = b, a
	}
	leader.barrier(t, "default")
	lists := api.listCalls()

	leader.stop(t)
	require.Eventually(t, func() bool {
		return follower.logs.FilterMessage("Became leader; resuming from the checkpoint").Len() == 1
	}, time.Minute, time.Millisecond)
	api.addN("default", "more", 5)
	follower.barrier(t, "default")
	assert.Equal(t, 10+1+5+1, deliveredOnce(t, a.sink, b.sink))
	assert.Equal(t, 5+1, follower.sink.count())
	assert.Equal(t, lists, api.listCalls(), "the new leader watches from the checkpoint, without a list")
}

// A graceful shutdown lets a watch batch being delivered finish, and the
// resume point written after it covers the batch.
func TestWatchShutdownFinishesTheBatchBeingDelivered(t *testing.T) {
	api := newFakeAPI()
	st := &memStorage{}
	h := newHarness(t, api, func(cfg *Config) { withWatch(cfg); withStorage(cfg); cfg.StartAt = StartAtEnd })
	gate := newGatedConsumer(h.sink)
	h.rcv.next = gate
	h.startWithStorage(t, st)
	require.Eventually(t, func() bool { return api.watchCalls() == 1 }, time.Minute, time.Millisecond)
	api.addN("default", "ev", 3) // revisions 101..103
	var delivering context.Context
	select {
	case delivering = <-gate.entered:
	case <-time.After(time.Minute):
		t.Fatal("the receiver never delivered")
	}
	done := make(chan error, 1)
	go func() { done <- h.rcv.Shutdown(context.Background()) }()
	require.Eventually(t, func() bool { return h.rcv.shutdownCtx.Load() != nil }, time.Minute, time.Millisecond)
	require.Never(t, func() bool { return delivering.Err() != nil }, 200*time.Millisecond, 10*time.Millisecond,
		"shutdown cancelled the batch being delivered")
	close(gate.release)
	require.NoError(t, <-done)
	delivered := h.sink.count()
	require.Positive(t, delivered)
	assert.Equal(t, uint64(100+delivered), decodeSaved(t, st.get(storageKey)).Scopes["*"].Mark, "the flush covers the finished batch")
}

// A consumer slower than the stall timeout does not make the watch look
// stalled: the silence is counted from the end of each delivery.
func TestWatchSlowConsumerIsNotAStall(t *testing.T) {
	api := newFakeAPI()
	h := newHarness(t, api, func(cfg *Config) { withWatch(cfg); cfg.StartAt = StartAtEnd })
	h.rcv.watch.stallAfter = 50 * time.Millisecond
	inner := h.sink
	h.rcv.next = consumerFunc(func(ctx context.Context, ld plog.Logs) error {
		time.Sleep(150 * time.Millisecond) // three stall timeouts per batch
		return inner.ConsumeLogs(ctx, ld)
	})
	h.start(t)
	require.Eventually(t, func() bool { return api.watchCalls() == 1 }, time.Minute, time.Millisecond)
	for i := range 3 {
		api.add(newEvent("default", fmt.Sprintf("ev-%d", i)))
		require.Eventually(t, func() bool { return inner.count() > i }, time.Minute, time.Millisecond)
	}
	assert.Zero(t, counterBy(t, h.tel, "otelcol_receiver_k8sevents_watch_restarts", "cause", causeStall))
	assert.Equal(t, 1, api.watchCalls())
}
