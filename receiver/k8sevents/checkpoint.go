package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The resume point is the cursors of every configured scope, written as one
// JSON document:
//
//	{"version":1,"scopes":{"payments":{"mark":1234},
//	 "*":{"field_selector":"metadata.namespace!=kube-system","mark":1200,"steps":[{"key":"ns/name","rev":1190}]}}}
//
// A scope is "*" (all namespaces) or a namespace name. A saved cursor is used
// only for a configured scope with the same field selector, so a changed
// namespaces or exclude_namespaces list never applies a cursor to Events it
// did not cover: such a scope starts per start_at.
//
// The document is written only after the next consumer accepted the Events
// it covers, at most once per checkpoint_interval (and when a write fails,
// less often: see checkpointer.retry), and once more on shutdown; never when
// nothing changed. So a crash or a killed pod repeats the Events delivered
// since the last write, at most checkpoint_interval worth, and loses none; a
// clean shutdown repeats none.
const (
	checkpointVersion = 1
	// storageKey is the key in the storage extension's client.
	storageKey = "positions"
	// configMapKey is the data key in the checkpoint ConfigMap.
	configMapKey = "positions.json"
	// storageTimeout bounds one read or write of a storage extension. (A
	// checkpoint ConfigMap's requests are bounded by request_timeout.)
	storageTimeout = 10 * time.Second
	// flushTimeout bounds the write on shutdown, so that a connection gone
	// silent holds the shutdown 10 s at most, whatever request_timeout is.
	flushTimeout = 10 * time.Second
	// maxCheckpointRetry is the longest wait between writes that fail, unless
	// checkpoint_interval is longer.
	maxCheckpointRetry = time.Minute
)

type savedPositions struct {
	Version int                   `json:"version"`
	Scopes  map[string]savedScope `json:"scopes"`
}

type savedScope struct {
	FieldSelector string `json:"field_selector,omitempty"`
	cursor
}

func encodePositions(scopes []scope, positions map[string]cursor) ([]byte, error) {
	doc := savedPositions{Version: checkpointVersion, Scopes: make(map[string]savedScope, len(scopes))}
	for _, s := range scopes {
		if cur, ok := positions[s.id()]; ok {
			doc.Scopes[s.id()] = savedScope{FieldSelector: s.fieldSelector, cursor: cur}
		}
	}
	return json.Marshal(doc)
}

// decodePositions returns the saved cursors of the configured scopes.
func decodePositions(data []byte, scopes []scope) (map[string]*cursor, error) {
	var doc savedPositions
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode checkpoint: %w", err)
	}
	if doc.Version != checkpointVersion {
		return nil, fmt.Errorf("decode checkpoint: version %d is not supported, only %d", doc.Version, checkpointVersion)
	}
	positions := make(map[string]*cursor, len(scopes))
	for _, s := range scopes {
		if saved, ok := doc.Scopes[s.id()]; ok && saved.FieldSelector == s.fieldSelector {
			cur := saved.cursor
			positions[s.id()] = &cur
		}
	}
	return positions, nil
}

// positionStore is where the resume point lives.
type positionStore interface {
	// load returns the saved document, or nil when there is none.
	load(ctx context.Context) ([]byte, error)
	save(ctx context.Context, data []byte) error
	close(ctx context.Context) error
	// String names the store in logs.
	String() string
}

// storageStore keeps the resume point in a collector storage extension.
type storageStore struct {
	id     component.ID
	client storage.Client
}

// openStorage gets a client of the storage extension the receiver is
// configured with.
func openStorage(ctx context.Context, host component.Host, id, receiverID component.ID) (*storageStore, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("storage: extension %q is not running; define it under extensions and list it in service::extensions", id)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return nil, fmt.Errorf("storage: extension %q is not a storage extension", id)
	}
	client, err := se.GetClient(ctx, component.KindReceiver, receiverID, "")
	if err != nil {
		return nil, fmt.Errorf("storage: get a client of extension %q: %w", id, err)
	}
	return &storageStore{id: id, client: client}, nil
}

func (s *storageStore) load(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, storageTimeout)
	defer cancel()
	data, err := s.client.Get(ctx, storageKey)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s, err)
	}
	return data, nil
}

func (s *storageStore) save(ctx context.Context, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, storageTimeout)
	defer cancel()
	if err := s.client.Set(ctx, storageKey, data); err != nil {
		return fmt.Errorf("write %s: %w", s, err)
	}
	return nil
}

func (s *storageStore) close(ctx context.Context) error { return s.client.Close(ctx) }

func (s *storageStore) String() string { return fmt.Sprintf("storage extension %q", s.id) }

// configMapStore keeps the resume point in a ConfigMap, which it creates
// when it is absent. Writes are conditional on the resourceVersion last read,
// so a write never silently undoes one it did not see: after a conflict it
// reads the ConfigMap again and writes over it, since the replica that writes
// is the one delivering. Each request is bounded by request_timeout (the
// client's), and one that runs out of it fails as an errNoAnswer.
type configMapStore struct {
	client          kubernetes.Interface
	namespace, name string
	deadline        requestDeadline
	// current is the ConfigMap as last read or written; nil when absent.
	current *corev1.ConfigMap
}

func (s *configMapStore) load(ctx context.Context) ([]byte, error) {
	cm, err := s.client.CoreV1().ConfigMaps(s.namespace).Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s.current = nil
		return nil, nil
	}
	if err != nil {
		return nil, s.fail(ctx, "get", err)
	}
	s.current = cm
	if data, ok := cm.Data[configMapKey]; ok {
		return []byte(data), nil
	}
	return nil, nil
}

func (s *configMapStore) save(ctx context.Context, data []byte) error {
	err := s.write(ctx, data)
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) {
		// Changed, created or deleted by someone else since it was read.
		if _, err = s.load(ctx); err != nil {
			return err
		}
		err = s.write(ctx, data)
	}
	return err
}

func (s *configMapStore) write(ctx context.Context, data []byte) error {
	configMaps := s.client.CoreV1().ConfigMaps(s.namespace)
	if s.current == nil {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: s.name},
			Data:       map[string]string{configMapKey: string(data)},
		}
		created, err := configMaps.Create(ctx, cm, metav1.CreateOptions{})
		if err != nil {
			return s.fail(ctx, "create", err)
		}
		s.current = created
		return nil
	}
	cm := s.current.DeepCopy()
	if cm.Data == nil {
		cm.Data = make(map[string]string, 1)
	}
	cm.Data[configMapKey] = string(data)
	updated, err := configMaps.Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		return s.fail(ctx, "update", err)
	}
	s.current = updated
	return nil
}

// fail wraps an error of the API, naming the RBAC rule a 403 lacks, or the
// deadline a request ran out of.
func (s *configMapStore) fail(ctx context.Context, verb string, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%s %s: %w; RBAC: grant verb %q on resource \"configmaps\" (apiGroups [\"\"]) in namespace %q (Role%s); the checkpoint needs get, create and update",
			verb, s, err, verb, s.namespace, resourceNamesHint(verb, s.name))
	}
	op := fmt.Sprintf("%s %s", verb, s)
	return s.deadline.check(ctx, op, verb, fmt.Errorf("%s: %w", op, err))
}

func (s *configMapStore) close(context.Context) error { return nil }

func (s *configMapStore) String() string {
	return fmt.Sprintf("ConfigMap %q in namespace %q", s.name, s.namespace)
}

// resourceNamesHint is the resourceNames restriction a Role can put on a verb:
// every verb but create can be limited to the one object.
func resourceNamesHint(verb, name string) string {
	if verb == "create" {
		return ""
	}
	return fmt.Sprintf(", resourceNames [%q]", name)
}

// checkpointer reads the resume point and writes it when it changed, at most
// once per interval. The goroutines that move cursors publish copies of them;
// one goroutine at a time loads and saves.
type checkpointer struct {
	store    positionStore
	scopes   []scope
	interval time.Duration
	startAt  StartAt
	logger   *zap.Logger
	tel      *telemetry
	failures failureLog
	// saved is what the store holds as far as this receiver knows; a write
	// that would not change it is skipped.
	saved   []byte
	lastTry time.Time
	// timer fires when changed positions may be written.
	timer *time.Timer

	pubMu sync.Mutex
	// published is a copy of each scope's cursor as last moved; nil until
	// the resume point is loaded, and after leadership is lost.
	published map[string]cursor
}

func newCheckpointer(store positionStore, cfg *Config, scopes []scope, logger *zap.Logger, tel *telemetry) *checkpointer {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	return &checkpointer{
		store: store, scopes: scopes, interval: cfg.CheckpointInterval, startAt: cfg.StartAt, logger: logger, tel: tel,
		failures: failureLog{
			logger:       logger,
			failedMsg:    "Writing the checkpoint failed; collection goes on and the write is retried",
			noAnswerMsg:  "Writing the checkpoint: no answer from the API server in %v; collection goes on and the write is retried",
			stillMsg:     "Writing the checkpoint still fails",
			recoveredMsg: "Writing the checkpoint works again",
			countKey:     "failed_writes",
		},
		timer: timer,
	}
}

// load reads the resume point: the saved cursors of the configured scopes.
// A document that cannot be decoded is logged and ignored, as if absent.
func (c *checkpointer) load(ctx context.Context) (map[string]*cursor, error) {
	data, err := c.store.load(ctx)
	if err != nil {
		return nil, err
	}
	c.timer.Stop()
	c.lastTry = time.Time{}
	c.pubMu.Lock()
	c.published = make(map[string]cursor)
	c.pubMu.Unlock()
	if data == nil {
		c.saved = nil
		c.logger.Info("No checkpoint yet; starting per start_at",
			zap.Stringer("checkpoint", c.store), zap.String("start_at", string(c.startAt)))
		return make(map[string]*cursor), nil
	}
	positions, err := decodePositions(data, c.scopes)
	if err != nil {
		c.saved = data
		c.logger.Warn("The checkpoint cannot be used; starting per start_at and writing over it",
			zap.Stringer("checkpoint", c.store), zap.String("start_at", string(c.startAt)), zap.Error(err))
		return make(map[string]*cursor), nil
	}
	var resumed, fresh []string
	for _, s := range c.scopes {
		if cur, ok := positions[s.id()]; ok {
			resumed = append(resumed, s.id())
			c.publish(s.id(), cur)
		} else {
			fresh = append(fresh, s.id())
		}
	}
	// Compare later writes with what this configuration would write, so
	// that nothing is written until a position moves.
	c.saved, _ = encodePositions(c.scopes, c.snapshot())
	c.logger.Info("Resumed from checkpoint", zap.Stringer("checkpoint", c.store),
		zap.Strings("resumed_scopes", resumed), zap.Strings("scopes_per_start_at", fresh), zap.String("start_at", string(c.startAt)))
	return positions, nil
}

// publish records a scope's cursor as it is now, for the next save.
func (c *checkpointer) publish(scopeID string, cur *cursor) {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	if c.published != nil {
		c.published[scopeID] = cur.clone()
	}
}

// snapshot copies the published cursors; nil when none are loaded.
func (c *checkpointer) snapshot() map[string]cursor {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	if c.published == nil {
		return nil
	}
	return maps.Clone(c.published)
}

// forget drops the published cursors unwritten (leadership was lost: the
// next leader writes its own); nothing is saved until the next load.
func (c *checkpointer) forget() {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	c.published = nil
}

// save writes the published positions when they changed. Unless forced (the
// flush on shutdown), it writes at most once per interval, and a cancelled
// context (shutdown, or a lost lease) writes nothing; the timer fires when a
// delayed write may be made.
func (c *checkpointer) save(ctx context.Context, force bool) {
	positions := c.snapshot()
	if positions == nil {
		return // not loaded: writing would erase what the store holds
	}
	if !force && ctx.Err() != nil {
		return
	}
	data, err := encodePositions(c.scopes, positions)
	if err != nil || bytes.Equal(data, c.saved) {
		c.timer.Stop()
		return
	}
	if wait := time.Until(c.lastTry.Add(c.retry())); !force && wait > 0 {
		c.timer.Reset(wait)
		return
	}
	c.lastTry = time.Now()
	if force {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	err = c.store.save(ctx, data)
	c.tel.recordCheckpoint(context.WithoutCancel(ctx), err)
	if err != nil {
		c.failures.fail(err, c.retryAfter(c.failures.failures+1), zap.Stringer("checkpoint", c.store))
		c.timer.Reset(c.retry())
		return
	}
	c.failures.ok()
	c.saved = slices.Clip(data)
	c.timer.Stop()
}

// retry is the wait after the last write: the interval, doubled after every
// failure up to maxCheckpointRetry (or the interval, if longer).
func (c *checkpointer) retry() time.Duration {
	return c.retryAfter(c.failures.failures)
}

func (c *checkpointer) retryAfter(failures int) time.Duration {
	if failures == 0 {
		return c.interval
	}
	return min(max(c.interval, maxCheckpointRetry), c.interval<<min(failures-1, 16))
}
