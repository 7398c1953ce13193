package k8sevents

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// The tests of request_timeout run the receiver's real clients against
// httpAPI, a server that, when told to go silent, answers nothing more:
// each request is held unanswered until its client gives up, as behind a
// NAT or load balancer that lost the connection's flow.

// eachHTTPVersion runs f over HTTP/1.1 and over HTTP/2.
func eachHTTPVersion(t *testing.T, f func(t *testing.T, http2 bool)) {
	t.Run("http1", func(t *testing.T) { f(t, false) })
	t.Run("http2", func(t *testing.T) { f(t, true) })
}

const testRequestTimeout = 300 * time.Millisecond

// scopeState is the state whose scope_state gauge is 1 for the scope.
func scopeState(t *testing.T, tel *componenttest.Telemetry, scopeID string) string {
	t.Helper()
	m, err := tel.GetMetric("otelcol_receiver_k8sevents_scope_state")
	if err != nil {
		return ""
	}
	for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
		s, _ := dp.Attributes.Value("scope")
		state, _ := dp.Attributes.Value("state")
		if s.AsString() == scopeID && dp.Value == 1 {
			return state.AsString()
		}
	}
	return ""
}

// savedMark is the revision up to which the resume point in st says every
// change of the scope "*" was delivered; 0 before the first write.
func savedMark(t *testing.T, st *memStorage) uint64 {
	t.Helper()
	data := st.get(storageKey)
	if data == nil {
		return 0
	}
	return decodeSaved(t, data).Scopes["*"].Mark
}

// warnings are the warnings logged with msg.
func warnings(logs *observer.ObservedLogs, msg string) []observer.LoggedEntry {
	return logs.FilterMessage(msg).FilterLevelExact(zapcore.WarnLevel).All()
}

// A poll whose list gets no answer is cut after request_timeout, logged as
// such once, and retried, on a new connection, while the scope says
// retrying; the Events created meanwhile arrive once when the server
// answers again, and the cursor never moved past what was delivered.
func TestPollGetsNoAnswer(t *testing.T) {
	eachHTTPVersion(t, func(t *testing.T, http2 bool) {
		api := newFakeAPI()
		api.addN("default", "before", 3)
		srv := startHTTPAPI(t, api, http2)
		h := newHarness(t, api, func(cfg *Config) {
			withStorage(cfg)
			cfg.CheckpointInterval = time.Millisecond
			cfg.Interval = 50 * time.Millisecond
			cfg.RequestTimeout = testRequestTimeout
		})
		srv.useWith(t, h)
		st := &memStorage{}
		h.startWithStorage(t, st)
		require.Eventually(t, func() bool { return h.sink.count() == 3 }, time.Minute, time.Millisecond)
		require.Eventually(t, func() bool { return scopeState(t, h.tel, "*") == stateIdle }, time.Minute, time.Millisecond)
		require.Eventually(t, func() bool { return savedMark(t, st) == 103 }, time.Minute, time.Millisecond)

		conns := srv.conns.Load()
		srv.silent.Store(true)
		api.addN("default", "during", 4)
		// Three unanswered lists: the first and two retries.
		require.Eventually(t, func() bool { return srv.abandoned.Load() >= 3 }, time.Minute, time.Millisecond)
		assert.Equal(t, stateRetrying, scopeState(t, h.tel, "*"))
		assert.Equal(t, 3, h.sink.count(), "nothing new while the server is silent")
		assert.Equal(t, uint64(103), savedMark(t, st), "the resume point stays where the delivered Events end")

		srv.silent.Store(false)
		require.Eventually(t, func() bool { return h.sink.count() >= 7 }, time.Minute, time.Millisecond)
		require.Eventually(t, func() bool { return savedMark(t, st) == 107 }, time.Minute, time.Millisecond)
		h.settle(t)
		assert.Equal(t, 7, h.sink.count())
		assert.Empty(t, h.sink.repeats())
		for i := range 4 {
			assert.True(t, h.sink.hasName(fmt.Sprintf("during-%03d", i)))
		}

		msg := "Polling Kubernetes events: no answer from the API server in 300ms; keeping the position and retrying"
		logged := warnings(h.logs, msg)
		require.Len(t, logged, 1, "logged once for the whole episode")
		fields := logged[0].ContextMap()
		assert.Equal(t, "list", fields["verb"])
		assert.Equal(t, `list events in all namespaces: no answer from the API server in 300ms`, fields["error"])
		assert.Equal(t, 1, h.logs.FilterMessage("Polling Kubernetes events works again").Len())
		assert.GreaterOrEqual(t, counterBy(t, h.tel, "otelcol_receiver_k8sevents_errors", "kind", kindTimeout), int64(3))
		assert.Zero(t, counterBy(t, h.tel, "otelcol_receiver_k8sevents_errors", "kind", "list"), "a timeout is not counted as another failure")
		require.Eventually(t, func() bool { return scopeState(t, h.tel, "*") == stateIdle }, time.Minute, time.Millisecond)
		// The connections that carried the unanswered lists were given up
		// (an HTTP/1.1 connection closed, an HTTP/2 stream reset), and
		// the retries came on connections dialed after them.
		assert.Greater(t, srv.conns.Load(), conns, "the retry dialed a new connection")
	})
}

// In watch mode a watch that goes silent is replaced after stallAfter, the
// time it was silent is logged, and a watch request that gets no answer is
// cut after request_timeout and retried; the Events created meanwhile
// arrive once when the server answers again.
func TestWatchGetsNoAnswer(t *testing.T) {
	eachHTTPVersion(t, func(t *testing.T, http2 bool) {
		api := newFakeAPI()
		api.addN("default", "before", 3)
		srv := startHTTPAPI(t, api, http2)
		h := newHarness(t, api, func(cfg *Config) {
			withWatch(cfg)
			withStorage(cfg)
			cfg.CheckpointInterval = time.Millisecond
			cfg.Interval = 50 * time.Millisecond
			cfg.RequestTimeout = testRequestTimeout
		})
		h.rcv.watch.stallAfter = 500 * time.Millisecond
		srv.useWith(t, h)
		st := &memStorage{}
		h.startWithStorage(t, st)
		require.Eventually(t, func() bool { return h.sink.count() == 3 }, time.Minute, time.Millisecond)
		require.Eventually(t, func() bool { return savedMark(t, st) == 103 }, time.Minute, time.Millisecond)
		require.Eventually(t, func() bool { return scopeState(t, h.tel, "*") == stateStreaming }, time.Minute, time.Millisecond)

		conns := srv.conns.Load()
		srv.silent.Store(true)
		api.addN("default", "during", 4) // the open watch holds them back
		require.Eventually(t, func() bool {
			return counterBy(t, h.tel, "otelcol_receiver_k8sevents_watch_restarts", "cause", causeStall) >= 1 &&
				srv.abandoned.Load() >= 3 // the stalled watch, and two watch requests after it
		}, time.Minute, time.Millisecond)
		assert.Equal(t, stateRetrying, scopeState(t, h.tel, "*"))
		assert.Equal(t, 3, h.sink.count(), "nothing new while the server is silent")
		assert.Equal(t, uint64(103), savedMark(t, st), "the resume point stays where the delivered Events end")

		srv.silent.Store(false)
		h.barrier(t, "default")
		assert.Equal(t, 3+4+1, h.sink.count())
		assert.Empty(t, h.sink.repeats())

		stalled := warnings(h.logs, "No Event and no bookmark from the watch; it is stalled, watching again from the cursor")
		require.NotEmpty(t, stalled)
		silent, ok := stalled[0].ContextMap()["silent_for"].(time.Duration)
		require.True(t, ok, "silent_for is a duration: %v", stalled[0].ContextMap())
		assert.GreaterOrEqual(t, silent, time.Duration(0))
		assert.Equal(t, h.rcv.watch.stallAfter, stalled[0].ContextMap()["stall_after"])

		logged := warnings(h.logs, "Watching Kubernetes events: no answer from the API server in 300ms; keeping the position and retrying")
		require.Len(t, logged, 1, "logged once for the whole episode")
		assert.Equal(t, "watch", logged[0].ContextMap()["verb"])
		assert.Contains(t, logged[0].ContextMap()["error"], `watch events in all namespaces: no answer from the API server in 300ms`)
		assert.GreaterOrEqual(t, counterBy(t, h.tel, "otelcol_receiver_k8sevents_errors", "kind", kindTimeout), int64(2))
		assert.Greater(t, srv.conns.Load(), conns, "the watches after the stall dialed new connections")
	})
}

// A request that hangs does not hold Shutdown: with a request_timeout far
// longer than the test, only Shutdown can end it.
func TestShutdownIsNotHeldByAnUnansweredRequest(t *testing.T) {
	for _, mode := range []Mode{ModePoll, ModeWatch} {
		t.Run(string(mode), func(t *testing.T) {
			api := newFakeAPI()
			api.addN("default", "before", 3)
			srv := startHTTPAPI(t, api, false)
			h := newHarness(t, api, func(cfg *Config) {
				cfg.Mode = mode
				cfg.Interval = 50 * time.Millisecond
				cfg.RequestTimeout = time.Hour
			})
			srv.useWith(t, h)
			h.start(t)
			require.Eventually(t, func() bool { return h.sink.count() == 3 }, time.Minute, time.Millisecond)
			srv.silent.Store(true)
			if mode == ModeWatch {
				api.endWatches() // the next watch request gets no answer
			}
			require.Eventually(t, func() bool { return srv.held.Load() >= 1 }, time.Minute, time.Millisecond)

			done := make(chan error, 1)
			go func() { done <- h.rcv.Shutdown(context.Background()) }()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(time.Minute):
				t.Fatal("Shutdown waited for a request the server never answers")
			}
			require.Eventually(t, func() bool { return srv.abandoned.Load() >= 1 }, time.Minute, time.Millisecond,
				"the held request was cancelled")
		})
	}
}

// The checkpoint ConfigMap's reads and writes are cut after request_timeout,
// and logged as such.
func TestCheckpointGetsNoAnswer(t *testing.T) {
	srv := startHTTPAPI(t, newFakeAPI(), false)
	srv.silent.Store(true)
	expired := 0
	store := &configMapStore{
		client: srv.clients(t, testRequestTimeout).requests, namespace: "observability", name: "k8sevents-checkpoint",
		deadline: requestDeadline{timeout: testRequestTimeout, expired: func() { expired++ }},
	}
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := createDefaultConfig()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { assert.NoError(t, tel.Shutdown(context.Background())) })
	metrics, err := newTelemetry(tel.NewTelemetrySettings(), component.MustNewID("k8sevents"))
	require.NoError(t, err)
	c := newCheckpointer(store, cfg, scopesOf(cfg), zap.New(core), metrics)

	_, err = c.load(context.Background())
	var na errNoAnswer
	require.ErrorAs(t, err, &na)
	assert.EqualError(t, err, `get ConfigMap "k8sevents-checkpoint" in namespace "observability": no answer from the API server in 300ms`)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	c.published = map[string]cursor{}
	c.publish("*", &cursor{Mark: 42})
	c.save(context.Background(), false)
	logged := warnings(logs, "Writing the checkpoint: no answer from the API server in 300ms; collection goes on and the write is retried")
	require.Len(t, logged, 1)
	assert.Equal(t, `create ConfigMap "k8sevents-checkpoint" in namespace "observability": no answer from the API server in 300ms`, logged[0].ContextMap()["error"])
	assert.Equal(t, 2, expired)
	require.Eventually(t, func() bool { return srv.abandoned.Load() == 2 }, time.Minute, time.Millisecond,
		"both requests were given up")
}

// A replica that campaigns for the Lease on a connection that went silent
// does not wait on it for good: client-go tries to acquire with a context
// without deadline, and request_timeout cuts each try, so that the follower
// can take over once the API server answers again.
func TestLeaseRequestsGetNoAnswer(t *testing.T) {
	api := newFakeAPI()
	srv := startHTTPAPI(t, api, false)
	srv.silent.Store(true)
	h := newHarness(t, api, func(cfg *Config) {
		withLeaderElection(cfg)
		cfg.RequestTimeout = testRequestTimeout
	})
	srv.useWith(t, h)
	h.start(t)
	require.Eventually(t, func() bool { return srv.abandoned.Load() >= 3 }, time.Minute, time.Millisecond,
		"the Lease is asked for again after each unanswered request")
	logged := warnings(h.logs, "Leader election: no answer from the API server about its Lease in 300ms; retrying")
	require.Len(t, logged, 1, "logged once for the whole episode")
	assert.Equal(t, `get Lease "k8sevents" in namespace "observability": no answer from the API server in 300ms`, logged[0].ContextMap()["error"])
	// The server gives a request up a moment before the client counts it.
	assert.Eventually(t, func() bool {
		return counterBy(t, h.tel, "otelcol_receiver_k8sevents_errors", "kind", kindTimeout) >= 3
	}, time.Minute, time.Millisecond)
}

// An error that is not the request's own deadline is not a timeout: a
// shutdown, a deadline of the caller, or a consumer's failure.
func TestNoAnswerIsTheRequestsOwnDeadline(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	deadline := fmt.Errorf("list: %w", context.DeadlineExceeded)
	assert.True(t, noAnswer(live, deadline))
	assert.False(t, noAnswer(ended, deadline), "the caller's own deadline")
	assert.False(t, noAnswer(live, errDeliver{err: context.DeadlineExceeded}), "the next consumer ran out of time")
	assert.False(t, noAnswer(live, errors.New("connection refused")))
	assert.False(t, noAnswer(live, nil))

	n := 0
	d := requestDeadline{timeout: time.Second, expired: func() { n++ }}
	err := d.check(live, "get thing", "get", deadline)
	assert.EqualError(t, err, "get thing: no answer from the API server in 1s")
	assert.Equal(t, err, d.check(live, "get thing", "get", err), "checked once")
	assert.Equal(t, 1, n)
}
