package k8sevents

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clienttesting "k8s.io/client-go/testing"
)

var storageID = component.MustNewIDWithName("file_storage", "k8sevents")

// memStorage is a storage extension that keeps its data in memory, counts
// writes and can be told to fail them.
type memStorage struct {
	component.StartFunc
	component.ShutdownFunc

	mu   sync.Mutex
	data map[string][]byte
	sets int
	// failSets fails this many writes before the next one succeeds.
	failSets atomic.Int64
}

var _ storage.Extension = (*memStorage)(nil)

func (m *memStorage) GetClient(context.Context, component.Kind, component.ID, string) (storage.Client, error) {
	return memClient{m}, nil
}

func (m *memStorage) get(key string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data[key]
}

func (m *memStorage) writes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sets
}

type memClient struct{ m *memStorage }

func (c memClient) Get(_ context.Context, key string) ([]byte, error) { return c.m.get(key), nil }

func (c memClient) Set(_ context.Context, key string, value []byte) error {
	if c.m.failSets.Add(-1) >= 0 {
		return errors.New("disk full")
	}
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	if c.m.data == nil {
		c.m.data = make(map[string][]byte)
	}
	c.m.data[key] = value
	c.m.sets++
	return nil
}

func (c memClient) Delete(_ context.Context, key string) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	delete(c.m.data, key)
	return nil
}

func (c memClient) Batch(ctx context.Context, ops ...*storage.Operation) error {
	for _, op := range ops {
		var err error
		switch op.Type {
		case storage.Get:
			op.Value, err = c.Get(ctx, op.Key)
		case storage.Set:
			err = c.Set(ctx, op.Key, op.Value)
		case storage.Delete:
			err = c.Delete(ctx, op.Key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (memClient) Close(context.Context) error { return nil }

// extensionHost is a host with the given extensions.
type extensionHost map[component.ID]component.Component

func (h extensionHost) GetExtensions() map[component.ID]component.Component { return h }

func withStorage(cfg *Config) {
	id := storageID
	cfg.Storage = &id
}

func (h *harness) startWith(t *testing.T, host component.Host) {
	t.Helper()
	require.NoError(t, h.rcv.Start(t.Context(), host))
	t.Cleanup(func() { assert.NoError(t, h.rcv.Shutdown(context.Background())) })
}

func (h *harness) startWithStorage(t *testing.T, st *memStorage) {
	t.Helper()
	h.startWith(t, extensionHost{storageID: st})
}

// stop shuts the receiver down now (the cleanup's second Shutdown is a no-op).
func (h *harness) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, h.rcv.Shutdown(t.Context()))
}

// decodeSaved reads a saved document.
func decodeSaved(t *testing.T, data []byte) savedPositions {
	t.Helper()
	require.NotNil(t, data, "a checkpoint was written")
	var doc savedPositions
	require.NoError(t, json.Unmarshal(data, &doc))
	return doc
}

func seedStorage(t *testing.T, st *memStorage, scopes []scope, positions map[string]cursor) {
	t.Helper()
	data, err := encodePositions(scopes, positions)
	require.NoError(t, err)
	st.data = map[string][]byte{storageKey: data}
}

// A restart resumes where the last run stopped: what changed while the
// receiver was down arrives, and nothing arrives twice, even though the
// second run is configured with start_at end.
func TestRestartResumesFromStorage(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 12)
	st := &memStorage{}

	first := newHarness(t, api, withStorage)
	first.startWithStorage(t, st)
	first.waitRecords(t, 12)
	api.addN("other", "new", 3)
	first.waitRecords(t, 15)
	first.stop(t)
	assert.Equal(t, 1, first.logs.FilterMessage("No checkpoint yet; starting per start_at").Len())
	assert.Equal(t, uint64(115), decodeSaved(t, st.get(storageKey)).Scopes["*"].Mark, "the flush on shutdown saved the last poll")

	api.addN("default", "down", 4)
	api.bump("default", "ev-005")
	second := newHarness(t, api, func(cfg *Config) { withStorage(cfg); cfg.StartAt = StartAtEnd })
	second.rcv.next = first.sink // one sink across both runs, to see repeats
	second.sink = first.sink
	second.startWithStorage(t, st)
	second.waitRecords(t, 20)
	assert.True(t, first.sink.has("down-003@119"))
	assert.True(t, first.sink.has("ev-005@120"))

	resumed := second.logs.FilterMessage("Resumed from checkpoint").All()
	require.Len(t, resumed, 1)
	assert.Equal(t, []any{"*"}, resumed[0].ContextMap()["resumed_scopes"])
	assert.Equal(t, `storage extension "file_storage/k8sevents"`, resumed[0].ContextMap()["checkpoint"])
}

// The resume point moves only when the next consumer accepted the Events.
func TestCheckpointOnlyAfterAcceptedDelivery(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 10) // revisions 101..110
	st := &memStorage{}
	h := newHarness(t, api, withStorage)
	seedStorage(t, st, h.rcv.scopes, map[string]cursor{"*": {Mark: 104}})
	seeded := st.get(storageKey)

	refuse := errors.New("exporter queue is full")
	h.sink.refuse.Store(&refuse)
	h.startWithStorage(t, st)
	require.Eventually(t, func() bool { return h.sink.refused.Load() >= 5 }, time.Minute, time.Millisecond)
	h.settle(t)
	assert.Equal(t, seeded, st.get(storageKey), "a refused page does not move the checkpoint")
	assert.Zero(t, st.writes())

	h.sink.refuse.Store(nil)
	h.waitRecords(t, 6) // ev-004..ev-009
	assert.False(t, h.sink.has("ev-003@104"))
	h.stop(t)
	assert.Equal(t, uint64(110), decodeSaved(t, st.get(storageKey)).Scopes["*"].Mark)
}

// Writes happen at most once per checkpoint_interval, on shutdown, and only
// when the positions changed.
func TestCheckpointWritesAreBounded(t *testing.T) {
	t.Run("at most once per interval, and on shutdown", func(t *testing.T) {
		api := newFakeAPI()
		st := &memStorage{}
		h := newHarness(t, api, func(cfg *Config) { withStorage(cfg); cfg.CheckpointInterval = time.Hour })
		h.startWithStorage(t, st)
		for i := range 10 {
			api.add(newEvent("default", "ev-"+string(rune('a'+i))))
			h.waitRecords(t, i+1)
		}
		assert.Equal(t, 1, st.writes(), "only the first poll's position, then the interval holds writes back")
		h.stop(t)
		assert.Equal(t, 2, st.writes(), "the flush on shutdown")
		assert.Equal(t, uint64(110), decodeSaved(t, st.get(storageKey)).Scopes["*"].Mark)
		assert.Equal(t, int64(2), sumCounter(t, h.tel, "otelcol_receiver_k8sevents_checkpoint_writes", "success"))
	})
	t.Run("only when changed", func(t *testing.T) {
		api := newFakeAPI()
		api.addN("default", "ev", 12) // three pages
		st := &memStorage{}
		h := newHarness(t, api, func(cfg *Config) { withStorage(cfg); cfg.CheckpointInterval = time.Millisecond })
		h.startWithStorage(t, st)
		h.waitRecords(t, 12)
		require.Eventually(t, func() bool {
			data := st.get(storageKey)
			return data != nil && decodeSaved(t, data).Scopes["*"].Mark == 112
		}, time.Minute, time.Millisecond)
		written := st.writes()
		for range 5 {
			h.settle(t)
		}
		assert.Equal(t, written, st.writes(), "paged polls that change nothing write nothing")
		h.stop(t)
		assert.Equal(t, written, st.writes(), "nothing to flush")
	})
}

// A failing write is logged once, retried, and never stops collection.
func TestCheckpointWriteFailureIsRetried(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 4)
	st := &memStorage{}
	st.failSets.Store(3)
	h := newHarness(t, api, func(cfg *Config) { withStorage(cfg); cfg.CheckpointInterval = time.Millisecond })
	h.startWithStorage(t, st)
	h.waitRecords(t, 4)
	api.addN("default", "more", 2)
	h.waitRecords(t, 6)
	require.Eventually(t, func() bool { return st.writes() > 0 }, time.Minute, time.Millisecond)
	require.Eventually(t, func() bool {
		return h.logs.FilterMessage("Writing the checkpoint works again").Len() == 1
	}, time.Minute, time.Millisecond)

	failed := h.logs.FilterMessageSnippet("Writing the checkpoint failed").All()
	require.Len(t, failed, 1, "the same failure is logged once")
	assert.Contains(t, failed[0].ContextMap()["error"], "disk full")
	assert.Equal(t, int64(3), sumCounter(t, h.tel, "otelcol_receiver_k8sevents_checkpoint_writes", "failure"))
	require.Eventually(t, func() bool {
		data := st.get(storageKey)
		return data != nil && decodeSaved(t, data).Scopes["*"].Mark == 106
	}, time.Minute, time.Millisecond)
}

// A saved position below etcd's compacted revision still works: no request
// lists at an old resourceVersion, every list is fresh and filtered.
func TestResumeFromOldRevisionListsFresh(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 10) // 101..110
	var pinned atomic.Int64
	api.beforeList = func(_ int, opts metav1.ListOptions) error {
		if opts.ResourceVersion != "" || opts.ResourceVersionMatch != "" {
			pinned.Add(1)
			return apierrors.NewResourceExpired("too old resource version: 5 (100)")
		}
		return nil
	}
	st := &memStorage{}
	h := newHarness(t, api, withStorage)
	seedStorage(t, st, h.rcv.scopes, map[string]cursor{"*": {Mark: 5, Steps: []step{{Key: "default/ev-002", Rev: 7}}}})
	h.startWithStorage(t, st)
	h.waitRecords(t, 10)
	assert.Zero(t, pinned.Load(), "lists never name a resourceVersion")
}

// A saved position ahead of the API server (etcd restored from a backup)
// cannot be trusted: the scope is delivered again rather than skipped.
func TestResumeAheadOfServerRepeatsRatherThanLoses(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 5)
	st := &memStorage{}
	h := newHarness(t, api, func(cfg *Config) { withStorage(cfg); cfg.StartAt = StartAtEnd })
	seedStorage(t, st, h.rcv.scopes, map[string]cursor{"*": {Mark: 5000}})
	h.startWithStorage(t, st)
	h.waitRecords(t, 5)
	assert.Equal(t, 1, h.logs.FilterMessageSnippet("revision is behind the checkpoint").Len())
}

// A saved cursor is only used for the scope it was written for: changed
// namespaces start per start_at, the others resume.
func TestResumeWithChangedScopes(t *testing.T) {
	api := newFakeAPI()
	api.addN("a", "ev", 2) // 101, 102
	api.addN("b", "ev", 2) // 103, 104
	api.addN("c", "ev", 2) // 105, 106
	st := &memStorage{}
	seedStorage(t, st, []scope{{namespace: "a"}, {namespace: "b"}, {fieldSelector: "metadata.namespace!=x"}},
		map[string]cursor{"a": {Mark: 101}, "b": {Mark: 104}, "*": {Mark: 106}})

	t.Run("namespaces", func(t *testing.T) {
		h := newHarness(t, api, func(cfg *Config) {
			withStorage(cfg)
			cfg.StartAt = StartAtEnd
			cfg.Namespaces = []string{"a", "c"}
		})
		h.startWithStorage(t, st)
		h.waitRecords(t, 1) // a/ev-001; c starts at the end
		assert.True(t, h.sink.has("ev-001@102"))
		api.add(newEvent("c", "new"))
		h.waitRecords(t, 2)
		resumed := h.logs.FilterMessage("Resumed from checkpoint").All()
		require.Len(t, resumed, 1)
		assert.Equal(t, []any{"a"}, resumed[0].ContextMap()["resumed_scopes"])
		assert.Equal(t, []any{"c"}, resumed[0].ContextMap()["scopes_per_start_at"])
	})
	t.Run("exclusions", func(t *testing.T) {
		h := newHarness(t, api, func(cfg *Config) {
			withStorage(cfg)
			cfg.ExcludeNamespaces = []string{"y"} // the saved "*" excluded x
		})
		h.startWithStorage(t, st)
		h.waitRecords(t, 7) // start_at beginning: everything stored
	})
}

// The cluster keeps the resume point in a ConfigMap: created when absent,
// then updated conditionally; a conflicting write is read again and
// written over, keeping the other data of the ConfigMap.
func TestConfigMapCheckpoint(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 7)
	cs := api.clientset()
	withOptimisticConcurrency(cs, "configmaps")
	withCheckpoint := func(cfg *Config) {
		cfg.Checkpoint = configoptional.Some(CheckpointConfig{Namespace: "observability", Name: "k8sevents-checkpoint"})
		cfg.CheckpointInterval = time.Millisecond
	}
	saved := func() (savedPositions, map[string]string) {
		cm, err := cs.CoreV1().ConfigMaps("observability").Get(context.Background(), "k8sevents-checkpoint", metav1.GetOptions{})
		if err != nil {
			return savedPositions{}, nil
		}
		var doc savedPositions
		_ = json.Unmarshal([]byte(cm.Data[configMapKey]), &doc)
		return doc, cm.Data
	}

	first := newHarnessOn(t, api, cs, withCheckpoint)
	first.start(t)
	first.waitRecords(t, 7)
	require.Eventually(t, func() bool { doc, _ := saved(); return doc.Scopes["*"].Mark == 107 }, time.Minute, time.Millisecond)
	assert.Equal(t, 1, countActions(cs, "create", "configmaps"))

	// Someone else writes to the ConfigMap: the next write conflicts,
	// reads it again and writes over it.
	cm, err := cs.CoreV1().ConfigMaps("observability").Get(t.Context(), "k8sevents-checkpoint", metav1.GetOptions{})
	require.NoError(t, err)
	cm.Data["note"] = "kept"
	_, err = cs.CoreV1().ConfigMaps("observability").Update(t.Context(), cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	api.addN("default", "more", 2)
	first.waitRecords(t, 9)
	require.Eventually(t, func() bool { doc, _ := saved(); return doc.Scopes["*"].Mark == 109 }, time.Minute, time.Millisecond)
	doc, data := saved()
	assert.Equal(t, checkpointVersion, doc.Version)
	assert.Equal(t, "kept", data["note"])
	first.stop(t)

	api.addN("default", "down", 3)
	second := newHarnessOn(t, api, cs, withCheckpoint)
	second.rcv.next, second.sink = first.sink, first.sink
	second.start(t)
	second.waitRecords(t, 12)
	assert.Equal(t, 1, second.logs.FilterMessage("Resumed from checkpoint").Len())
	assert.Equal(t, 1, countActions(cs, "create", "configmaps"), "created once")
}

// Without RBAC for the ConfigMap, the receiver says which rule is missing
// and does not poll: polling without the resume point would write over it.
func TestConfigMapForbidden(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 3)
	cs := api.clientset()
	cs.PrependReactor("get", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "k8sevents-checkpoint",
			errors.New(`User "system:serviceaccount:obs:collector" cannot get resource "configmaps" in API group "" in the namespace "observability"`))
	})
	h := newHarnessOn(t, api, cs, func(cfg *Config) {
		cfg.Checkpoint = configoptional.Some(CheckpointConfig{Namespace: "observability", Name: "k8sevents-checkpoint"})
	})
	h.start(t)
	require.Eventually(t, func() bool {
		return h.logs.FilterMessageSnippet("Reading the checkpoint failed").Len() == 1
	}, time.Minute, time.Millisecond)
	msg := h.logs.FilterMessageSnippet("Reading the checkpoint failed").All()[0].ContextMap()["error"]
	assert.Contains(t, msg, `RBAC: grant verb "get" on resource "configmaps" (apiGroups [""]) in namespace "observability" (Role, resourceNames ["k8sevents-checkpoint"])`)
	assert.Zero(t, api.listCalls())
	assert.Zero(t, h.sink.count())
}

func TestStorageExtensionErrors(t *testing.T) {
	tests := []struct {
		name string
		host component.Host
		want string
	}{
		{"missing", componenttest.NewNopHost(), `storage: extension "file_storage/k8sevents" is not running`},
		{"not storage", extensionHost{storageID: &struct {
			component.StartFunc
			component.ShutdownFunc
		}{}}, `storage: extension "file_storage/k8sevents" is not a storage extension`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, newFakeAPI(), withStorage)
			err := h.rcv.Start(t.Context(), tt.host)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NoError(t, h.rcv.Shutdown(t.Context()))
		})
	}
}

func TestPositionsRoundTrip(t *testing.T) {
	scopes := []scope{{namespace: "a"}, {fieldSelector: "metadata.namespace!=x"}}
	positions := map[string]cursor{
		"a": {Mark: 10},
		"*": {Mark: 7, Steps: []step{{Key: "b/e1", Rev: 9}, {Key: "c/e2", Rev: 8}}},
	}
	data, err := encodePositions(scopes, positions)
	require.NoError(t, err)
	assert.JSONEq(t, `{"version":1,"scopes":{"a":{"mark":10},
		"*":{"field_selector":"metadata.namespace!=x","mark":7,"steps":[{"key":"b/e1","rev":9},{"key":"c/e2","rev":8}]}}}`, string(data))
	got, err := decodePositions(data, scopes)
	require.NoError(t, err)
	assert.Equal(t, map[string]*cursor{"a": {Mark: 10}, "*": {Mark: 7, Steps: []step{{Key: "b/e1", Rev: 9}, {Key: "c/e2", Rev: 8}}}}, got)

	_, err = decodePositions([]byte(`{"version":2,"scopes":{}}`), scopes)
	assert.ErrorContains(t, err, "version 2 is not supported")
}

// sumCounter adds up a counter's points with the given outcome.
func sumCounter(t *testing.T, tel *componenttest.Telemetry, name, outcome string) int64 {
	t.Helper()
	m, err := tel.GetMetric(name)
	require.NoError(t, err)
	var n int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		if v, ok := dp.Attributes.Value("outcome"); ok && v.AsString() == outcome {
			n += dp.Value
		}
	}
	return n
}
