package k8sevents

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents/internal/metadata"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// harness runs a receiver against a fakeAPI.
type harness struct {
	api  *fakeAPI
	cs   *fake.Clientset
	sink *recordSink
	logs *observer.ObservedLogs
	tel  *componenttest.Telemetry
	rcv  *eventsReceiver
}

func newHarness(t *testing.T, api *fakeAPI, mutate func(*Config)) *harness {
	t.Helper()
	return newHarnessOn(t, api, api.clientset(), mutate)
}

// newHarnessOn runs the receiver on a given clientset, which several
// receivers may share.
func newHarnessOn(t *testing.T, api *fakeAPI, cs *fake.Clientset, mutate func(*Config)) *harness {
	t.Helper()
	cfg := createDefaultConfig()
	cfg.Interval = 5 * time.Millisecond
	cfg.PageSize = 5
	cfg.StartAt = StartAtBeginning
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	core, logs := observer.New(zapcore.DebugLevel)
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { assert.NoError(t, tel.Shutdown(context.Background())) })
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	set.Logger = zap.New(core)
	sink := &recordSink{}
	rcv, err := newReceiver(set, cfg, sink)
	require.NoError(t, err)
	rcv.newClients = func() (clients, error) { return clients{requests: cs, watches: cs}, nil }
	return &harness{api: api, cs: cs, sink: sink, logs: logs, tel: tel, rcv: rcv}
}

func (h *harness) start(t *testing.T) {
	t.Helper()
	require.NoError(t, h.rcv.Start(t.Context(), componenttest.NewNopHost()))
	t.Cleanup(func() { assert.NoError(t, h.rcv.Shutdown(context.Background())) })
}

// settle waits until the receiver has run a few more polls, so that a
// repeat, if there were one, would have arrived.
func (h *harness) settle(t *testing.T) {
	t.Helper()
	target := h.api.listCalls() + 6
	require.Eventually(t, func() bool { return h.api.listCalls() >= target }, time.Minute, time.Millisecond)
}

// recordSink keeps the records it accepts, keyed by event name and
// resourceVersion, and can be told to refuse.
type recordSink struct {
	mu      sync.Mutex
	seen    map[string]int // "name@resourceVersion" -> deliveries
	order   []string
	batches []int // records per ConsumeLogs
	refuse  atomic.Pointer[error]
	refused atomic.Int64
}

func (s *recordSink) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func (s *recordSink) ConsumeLogs(_ context.Context, ld plog.Logs) error {
	if errp := s.refuse.Load(); errp != nil {
		s.refused.Add(1)
		return *errp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = make(map[string]int)
	}
	s.batches = append(s.batches, ld.LogRecordCount())
	for _, lr := range allRecords(ld) {
		name, _ := lr.Attributes().Get(attrEventName)
		rv, _ := lr.Attributes().Get(attrEventResourceVersion)
		id := name.Str() + "@" + rv.Str()
		s.seen[id]++
		s.order = append(s.order, id)
	}
	return nil
}

func (s *recordSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

// repeats lists the records delivered more than once.
func (s *recordSink) repeats() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, n := range s.seen {
		if n > 1 {
			out = append(out, id)
		}
	}
	return out
}

func (s *recordSink) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[id] > 0
}

func allRecords(ld plog.Logs) []plog.LogRecord {
	var out []plog.LogRecord
	for _, rl := range ld.ResourceLogs().All() {
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				out = append(out, lr)
			}
		}
	}
	return out
}

// waitRecords waits for n records and then checks that no more arrive and
// none was delivered twice.
func (h *harness) waitRecords(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return h.sink.count() >= n }, time.Minute, time.Millisecond,
		"want %d records", n)
	h.settle(t)
	assert.Equal(t, n, h.sink.count(), "records delivered")
	assert.Empty(t, h.sink.repeats(), "records delivered twice")
}

func TestPagingDeliversEveryEventOnce(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 23)
	var limits sync.Map
	api.beforeList = func(_ int, opts metav1.ListOptions) error {
		limits.Store(opts.Limit, true)
		return nil
	}
	h := newHarness(t, api, nil)
	h.start(t)
	h.waitRecords(t, 23)

	// New Events and new occurrences of old ones arrive once each; the
	// rest are not emitted again.
	api.addN("other", "new", 2)
	api.bump("default", "ev-000")
	api.bump("default", "ev-022")
	h.waitRecords(t, 27)
	assert.True(t, h.sink.has("ev-000@126"))
	assert.True(t, h.sink.has("ev-022@127"))

	_, paged := limits.Load(int64(5))
	assert.True(t, paged, "lists are paged with page_size")
	_, unpaged := limits.Load(int64(0))
	assert.False(t, unpaged, "no list without a limit")
}

func TestStartAtEnd(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "old", 7)
	h := newHarness(t, api, func(cfg *Config) { cfg.StartAt = StartAtEnd })
	h.start(t)
	h.settle(t)
	assert.Zero(t, h.sink.count(), "stored events are not emitted with start_at end")
	marked := h.logs.FilterMessageSnippet("start_at end: skipped the Events already stored").All()
	require.Len(t, marked, 1, "the start position is logged once")
	assert.Equal(t, []any{"*@107"}, marked[0].ContextMap()["scope_revisions"])

	api.addN("default", "new", 3)
	api.bump("default", "old-004")
	h.waitRecords(t, 4)
	assert.True(t, h.sink.has("new-002@110"))
	assert.True(t, h.sink.has("old-004@111"))
}

func TestNamespaces(t *testing.T) {
	api := newFakeAPI()
	api.addN("a", "ev", 3)
	api.addN("b", "ev", 4)
	api.addN("c", "ev", 5)

	t.Run("listed", func(t *testing.T) {
		h := newHarness(t, api, func(cfg *Config) { cfg.Namespaces = []string{"a", "c"} })
		h.start(t)
		h.waitRecords(t, 8)
	})
	t.Run("excluded", func(t *testing.T) {
		h := newHarness(t, api, func(cfg *Config) { cfg.ExcludeNamespaces = []string{"c"} })
		h.start(t)
		h.waitRecords(t, 7)
	})
}

// An expired continue token (410 Gone) part way through a list restarts it;
// the pages already delivered are not delivered again.
func TestExpiredContinueToken(t *testing.T) {
	for name, expired := range map[string]error{
		"resource expired": apierrors.NewResourceExpired("the provided continue parameter is too old"),
		// What apierrors.NewGone (deprecated) builds: older servers answer so.
		"gone": &apierrors.StatusError{ErrStatus: metav1.Status{
			Status: metav1.StatusFailure, Code: http.StatusGone,
			Reason: metav1.StatusReasonGone, Message: "too old resource version",
		}},
	} {
		t.Run(name, func(t *testing.T) {
			api := newFakeAPI()
			api.addN("default", "ev", 22)
			var expiredOnce atomic.Bool
			api.beforeList = func(call int, opts metav1.ListOptions) error {
				// Expire the third page of the first list, after two pages
				// were delivered, and change events on both sides of it.
				if call == 3 && opts.Continue != "" && expiredOnce.CompareAndSwap(false, true) {
					api.bump("default", "ev-001") // delivered already: changed again
					api.bump("default", "ev-020") // not yet delivered
					return expired
				}
				return nil
			}
			h := newHarness(t, api, nil)
			h.start(t)
			h.waitRecords(t, 23) // 22 events and the second state of ev-001
			assert.True(t, h.sink.has("ev-001@123"))
			assert.True(t, h.sink.has("ev-020@124"))
			assert.False(t, h.sink.has("ev-020@121"), "only the state current at the relist")
			assert.Equal(t, 1, h.logs.FilterMessageSnippet("Continue token expired").Len())
		})
	}
}

// While the next consumer refuses, the position does not move; when it
// accepts again, everything arrives once.
func TestRefusingConsumerLosesNothing(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 12)
	h := newHarness(t, api, nil)
	refuse := errors.New("exporter queue is full")
	h.sink.refuse.Store(&refuse)
	h.start(t)
	require.Eventually(t, func() bool { return h.sink.refused.Load() >= 3 }, time.Minute, time.Millisecond)
	api.addN("default", "during", 4)
	api.bump("default", "ev-003")

	h.sink.refuse.Store(nil)
	h.waitRecords(t, 16)
	assert.True(t, h.sink.has("ev-003@117"))
	assert.False(t, h.sink.has("ev-003@104"), "the refused state is superseded by the newer one")
	assert.Equal(t, 1, h.logs.FilterMessageSnippet("Polling Kubernetes events works again").Len())
}

// A consumer that refuses part way through a paged list: the pages it took
// are not delivered again.
func TestRefusalMidListDoesNotRepeatEarlierPages(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 20) // four pages of five
	h := newHarness(t, api, nil)
	refuse := errors.New("refused")
	var calls atomic.Int64
	inner := h.sink
	h.rcv.next = consumerFunc(func(ctx context.Context, ld plog.Logs) error {
		if calls.Add(1) == 3 {
			return refuse
		}
		return inner.ConsumeLogs(ctx, ld)
	})
	h.start(t)
	h.waitRecords(t, 20)
}

// A permanent error can never succeed: the data is dropped with an error log
// and collection goes on.
func TestPermanentErrorDropsAndContinues(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 3)
	h := newHarness(t, api, nil)
	permanent := consumererror.NewPermanent(errors.New("bad data"))
	h.sink.refuse.Store(&permanent)
	h.start(t)
	require.Eventually(t, func() bool { return h.sink.refused.Load() >= 1 }, time.Minute, time.Millisecond)
	h.sink.refuse.Store(nil)
	api.addN("default", "later", 2)
	h.waitRecords(t, 2)
	assert.Equal(t, 1, h.logs.FilterMessageSnippet("rejected events permanently").Len())
}

// An API server that cannot be reached is retried with backoff, logged when
// the failure starts and when it ends, and nothing is lost.
func TestUnreachableServer(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 6)
	var down atomic.Bool
	down.Store(true)
	api.beforeList = func(int, metav1.ListOptions) error {
		if down.Load() {
			return errors.New(`Get "https://10.0.0.1:443/api/v1/events": dial tcp 10.0.0.1:443: connect: connection refused`)
		}
		return nil
	}
	h := newHarness(t, api, func(cfg *Config) { cfg.Interval = 20 * time.Millisecond })
	h.start(t)
	require.Eventually(t, func() bool { return api.listCalls() >= 4 }, time.Minute, time.Millisecond)
	api.addN("default", "during", 2)
	down.Store(false)
	h.waitRecords(t, 8)

	warns := h.logs.FilterMessageSnippet("Polling Kubernetes events failed")
	assert.Equal(t, 1, warns.Len(), "the same failure is logged once, not once per poll")
	assert.Contains(t, warns.All()[0].ContextMap()["error"], "connection refused")
	assert.Equal(t, 1, h.logs.FilterMessageSnippet("works again").Len())
}

func TestForbiddenNamesTheMissingRule(t *testing.T) {
	api := newFakeAPI()
	api.beforeList = func(int, metav1.ListOptions) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "",
			errors.New(`User "system:serviceaccount:obs:collector" cannot list resource "events" in API group "" in the namespace "payments"`))
	}
	h := newHarness(t, api, func(cfg *Config) { cfg.Namespaces = []string{"payments"} })
	h.start(t)
	require.Eventually(t, func() bool {
		return h.logs.FilterMessageSnippet("Polling Kubernetes events failed").Len() == 1
	}, time.Minute, time.Millisecond)
	msg := h.logs.FilterMessageSnippet("Polling Kubernetes events failed").All()[0].ContextMap()["error"]
	assert.Contains(t, msg, `RBAC: grant verb "list" on resource "events"`)
	assert.Contains(t, msg, `in namespace "payments" (Role)`)
}

// Polls run one after another, even when one takes longer than the interval.
func TestSlowPollsDoNotOverlap(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 10)
	api.beforeList = func(int, metav1.ListOptions) error {
		time.Sleep(3 * time.Millisecond)
		return nil
	}
	h := newHarness(t, api, func(cfg *Config) { cfg.Interval = time.Millisecond; cfg.Namespaces = []string{"default", "b"} })
	h.start(t)
	h.waitRecords(t, 10)
	api.mu.Lock()
	defer api.mu.Unlock()
	assert.Equal(t, 1, api.maxInFlight)
}

func TestLifecycle(t *testing.T) {
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.AuthType = AuthTypeKubeConfig
	rcv, err := f.CreateLogs(t.Context(), receivertest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	require.NoError(t, err)
	assert.NoError(t, rcv.Shutdown(t.Context()), "shutdown before start")

	api := newFakeAPI()
	h := newHarness(t, api, nil)
	require.NoError(t, h.rcv.Start(t.Context(), componenttest.NewNopHost()))
	h.settle(t)
	assert.NoError(t, h.rcv.Shutdown(t.Context()))
	assert.NoError(t, h.rcv.Shutdown(t.Context()), "shutdown twice")
}

func TestStartFailsWithoutCluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	rcv, err := NewFactory().CreateLogs(t.Context(), receivertest.NewNopSettings(metadata.Type), createDefaultConfig(), consumertest.NewNop())
	require.NoError(t, err)
	err = rcv.Start(t.Context(), componenttest.NewNopHost())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "load in-cluster config (auth_type serviceAccount)")
	assert.NoError(t, rcv.Shutdown(t.Context()))
}

type consumerFunc func(context.Context, plog.Logs) error

func (f consumerFunc) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }
func (f consumerFunc) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	return f(ctx, ld)
}
