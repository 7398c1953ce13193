package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"container/list"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// objectRef names one object the receiver looks up: its kind, where it is,
// and its UID. An object deleted and created again under the same name is
// another object with another UID, so the UID is part of the key: the
// answer for the old one (gone) and for the new one are kept apart.
type objectRef struct {
	gk              schema.GroupKind
	namespace, name string
	// uid is empty when the Event's involvedObject has none; then whatever
	// object has the name is taken.
	uid types.UID
}

// objectMeta is what the receiver keeps of an object it found: only what
// records need, not the object's metadata.
type objectMeta struct {
	// owner is the object's controller owner reference; zero when it has none.
	owner objectRef
	// attrs are the configured labels and annotations the object carries,
	// as resource attributes (k8s.pod.label.app, ...).
	attrs []attr
}

// lookupResult is the answer of one lookup.
type lookupResult struct {
	// meta is the object; nil when it does not exist or the lookup failed.
	meta    *objectMeta
	outcome string
}

// cacheEntry is one object's answer, or the lookup still under way for it.
// Once done is closed, the entry never changes: a newer answer replaces the
// entry in the cache instead, so a reader never needs the cache's lock.
type cacheEntry struct {
	ref     objectRef
	result  lookupResult
	expires time.Time
	done    chan struct{}
}

// answered reports whether the lookup of the entry has finished.
func (e *cacheEntry) answered() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// objectCache keeps the answers of lookups, found or not, for a time and up
// to a number of objects, dropping the least recently used first. A lookup
// under way is an entry too, so that one request at a time is in flight per
// object: the callers that find it pending wait for its answer.
type objectCache struct {
	size int
	now  func() time.Time

	mu      sync.Mutex
	entries map[objectRef]*list.Element
	// lru holds *cacheEntry, most recently used at the front.
	lru *list.List
}

func newObjectCache(size int) *objectCache {
	return &objectCache{size: size, now: time.Now, entries: make(map[objectRef]*list.Element), lru: list.New()}
}

// get returns the entry of ref. When there is none, or its answer expired,
// it adds a pending entry and reports fetch true: the caller must look the
// object up and complete the entry. The other callers wait on its done.
func (c *objectCache) get(ref objectRef) (e *cacheEntry, fetch bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[ref]; ok {
		e := el.Value.(*cacheEntry)
		if !e.answered() || c.now().Before(e.expires) {
			c.lru.MoveToFront(el)
			return e, false
		}
	}
	e = &cacheEntry{ref: ref, done: make(chan struct{})}
	c.insert(e)
	return e, true
}

// complete gives a pending entry its answer, kept for ttl. An entry that
// was dropped while its lookup ran still answers the callers waiting on it.
func (c *objectCache) complete(e *cacheEntry, res lookupResult, ttl time.Duration) {
	c.mu.Lock()
	e.result, e.expires = res, c.now().Add(ttl)
	c.mu.Unlock()
	close(e.done)
}

// put stores an answer for ref that no caller asked for yet: the object
// found under a name when the Event named another UID.
func (c *objectCache) put(ref objectRef, res lookupResult, ttl time.Duration) {
	e := &cacheEntry{ref: ref, result: res, done: make(chan struct{})}
	close(e.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[ref]; ok && !el.Value.(*cacheEntry).answered() {
		return // its own lookup will answer
	}
	e.expires = c.now().Add(ttl)
	c.insert(e)
}

// insert adds e at the front, replacing the entry of its ref, and drops the
// least recently used answers beyond size. Lookups under way stay (there
// are at most as many as objects in the pages of one lookup timeout), so
// that a second request for their object cannot start. c.mu must be held.
func (c *objectCache) insert(e *cacheEntry) {
	if el, ok := c.entries[e.ref]; ok {
		c.lru.Remove(el)
	}
	c.entries[e.ref] = c.lru.PushFront(e)
	for el := c.lru.Back(); el != nil && c.lru.Len() > c.size; {
		prev := el.Prev()
		if old := el.Value.(*cacheEntry); old.answered() {
			c.lru.Remove(el)
			delete(c.entries, old.ref)
		}
		el = prev
	}
}

// len is the number of entries.
func (c *objectCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
