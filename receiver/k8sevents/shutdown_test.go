package k8sevents

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
)

// gatedConsumer holds each ConsumeLogs until released, as a slow exporter
// does, and fails it when its context is cancelled first, as an exporter's
// cancelled request does.
type gatedConsumer struct {
	next    consumer.Logs
	entered chan context.Context
	release chan struct{}
}

func newGatedConsumer(next consumer.Logs) *gatedConsumer {
	return &gatedConsumer{next: next, entered: make(chan context.Context, 1), release: make(chan struct{})}
}

func (g *gatedConsumer) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func (g *gatedConsumer) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	select {
	case g.entered <- ctx:
	default:
	}
	select {
	case <-g.release:
		return g.next.ConsumeLogs(ctx, ld)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startGated starts a receiver with a storage resume point whose next
// consumer holds the first page, and returns the context of that delivery.
func startGated(t *testing.T) (*harness, *gatedConsumer, *memStorage, context.Context) {
	t.Helper()
	return startGatedWith(t, func(*eventsReceiver) {})
}

func startGatedWith(t *testing.T, mutate func(*eventsReceiver)) (*harness, *gatedConsumer, *memStorage, context.Context) {
	t.Helper()
	api := newFakeAPI()
	api.addN("default", "ev", 5) // revisions 101..105: one page
	st := &memStorage{}
	h := newHarness(t, api, withStorage)
	gate := newGatedConsumer(h.sink)
	h.rcv.next = gate
	mutate(h.rcv)
	h.startWithStorage(t, st)
	select {
	case ctx := <-gate.entered:
		return h, gate, st, ctx
	case <-time.After(time.Minute):
		t.Fatal("the receiver never delivered")
		return nil, nil, nil, nil
	}
}

// A graceful shutdown lets the page being delivered finish, then writes the
// resume point after it: a restart repeats nothing of it.
func TestShutdownFinishesThePageBeingDelivered(t *testing.T) {
	h, gate, st, delivering := startGated(t)
	done := make(chan error, 1)
	go func() { done <- h.rcv.Shutdown(context.Background()) }()
	require.Eventually(t, func() bool { return h.rcv.shutdownCtx.Load() != nil }, time.Minute, time.Millisecond)
	require.Never(t, func() bool { return delivering.Err() != nil }, 200*time.Millisecond, 10*time.Millisecond,
		"shutdown cancelled the page being delivered")

	close(gate.release)
	require.NoError(t, <-done)
	assert.Equal(t, 5, h.sink.count())
	assert.Equal(t, uint64(105), decodeSaved(t, st.get(storageKey)).Scopes["*"].Mark, "the flush covers the finished page")
}

// The wait for a page being delivered ends with Shutdown's context: the page
// is then not counted as delivered, so a restart delivers it again.
func TestShutdownContextBoundsTheWait(t *testing.T) {
	// A grace longer than the test: only ctx can end the wait.
	h, gate, st, _ := startGatedWith(t, func(r *eventsReceiver) { r.deliveryGrace = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.rcv.Shutdown(ctx) }()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		close(gate.release) // let the cleanup's Shutdown end
		t.Fatal("Shutdown kept waiting for the held page after its context ended")
	}
	if data := st.get(storageKey); data != nil {
		assert.Less(t, decodeSaved(t, data).Scopes["*"].Mark, uint64(101), "the cancelled page is not in the resume point")
	}
}

// An exporter that holds the page (retrying a backend that is down) does not
// hold the shutdown beyond the grace: the page is cut short and not counted.
func TestShutdownGraceBoundsTheWait(t *testing.T) {
	h, gate, st, _ := startGatedWith(t, func(r *eventsReceiver) { r.deliveryGrace = 50 * time.Millisecond })
	done := make(chan error, 1)
	go func() { done <- h.rcv.Shutdown(context.Background()) }() // a context that never ends
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		close(gate.release) // let the cleanup's Shutdown end
		t.Fatal("Shutdown waited for the held page beyond the grace")
	}
	if data := st.get(storageKey); data != nil {
		assert.Less(t, decodeSaved(t, data).Scopes["*"].Mark, uint64(101), "the cancelled page is not in the resume point")
	}
}
