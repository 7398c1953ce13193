package k8sevents

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

var podKind = schema.GroupKind{Kind: "Pod"}

func podRef(name string) objectRef {
	return objectRef{gk: podKind, namespace: "shop", name: name, uid: types.UID("uid-" + name)}
}

// answer completes a fresh entry for ref, as a lookup would.
func answer(t *testing.T, c *objectCache, ref objectRef, meta *objectMeta, ttl time.Duration) {
	t.Helper()
	e, fetch := c.get(ref)
	require.True(t, fetch, "%s is already cached", ref.name)
	c.complete(e, lookupResult{meta: meta, outcome: lookupFound}, ttl)
}

// clock is a time that tests move.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestObjectCacheBoundedLeastRecentlyUsedFirst(t *testing.T) {
	c := newObjectCache(3)
	for _, name := range []string{"a", "b", "c"} {
		answer(t, c, podRef(name), &objectMeta{attrs: []attr{{"name", name}}}, time.Hour)
	}
	_, fetch := c.get(podRef("a")) // a is now the most recently used
	require.False(t, fetch)
	answer(t, c, podRef("d"), nil, time.Hour)
	answer(t, c, podRef("e"), nil, time.Hour)

	assert.Equal(t, 3, c.len(), "never more than size entries")
	for name, cached := range map[string]bool{"a": true, "b": false, "c": false, "d": true, "e": true} {
		_, ok := c.entries[podRef(name)]
		assert.Equal(t, cached, ok, "%s cached", name)
	}
}

func TestObjectCacheTTL(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := newObjectCache(10)
	c.now = clk.now
	answer(t, c, podRef("a"), &objectMeta{attrs: []attr{{"name", "a"}}}, time.Minute)
	answer(t, c, podRef("gone"), nil, time.Minute) // a negative answer is kept as long

	clk.t = clk.t.Add(59 * time.Second)
	for _, name := range []string{"a", "gone"} {
		e, fetch := c.get(podRef(name))
		require.False(t, fetch, "%s: within its TTL", name)
		require.True(t, e.answered())
	}
	e, _ := c.get(podRef("a"))
	assert.Equal(t, []attr{{"name", "a"}}, e.result.meta.attrs)

	clk.t = clk.t.Add(2 * time.Second)
	for _, name := range []string{"a", "gone"} {
		e, fetch := c.get(podRef(name))
		assert.True(t, fetch, "%s: expired, looked up again", name)
		assert.False(t, e.answered(), "%s: the new lookup is pending", name)
		_, again := c.get(podRef(name))
		assert.False(t, again, "%s: a second caller waits for the lookup under way", name)
	}
}

// A lookup under way is never dropped to make room: a caller that came
// later would start a second request for the same object.
func TestObjectCacheKeepsPendingLookups(t *testing.T) {
	c := newObjectCache(2)
	pending := make([]*cacheEntry, 3)
	for i := range pending {
		e, fetch := c.get(podRef(fmt.Sprint(i)))
		require.True(t, fetch)
		pending[i] = e
	}
	assert.Equal(t, 3, c.len(), "pending lookups stay, beyond size")
	for i := range pending {
		_, fetch := c.get(podRef(fmt.Sprint(i)))
		assert.False(t, fetch, "pending %d: one request in flight per object", i)
	}
	for _, e := range pending {
		c.complete(e, lookupResult{}, time.Hour)
	}
	answer(t, c, podRef("x"), nil, time.Hour)
	assert.Equal(t, 2, c.len(), "answered entries are dropped down to size")
}

// put keeps the object found under a name for the Events of its own UID,
// without overriding a lookup under way for it.
func TestObjectCachePut(t *testing.T) {
	c := newObjectCache(10)
	c.put(podRef("new"), lookupResult{meta: &objectMeta{attrs: []attr{{"name", "new"}}}, outcome: lookupFound}, time.Hour)
	e, fetch := c.get(podRef("new"))
	require.False(t, fetch)
	assert.Equal(t, []attr{{"name", "new"}}, e.result.meta.attrs)

	pending, fetch := c.get(podRef("p"))
	require.True(t, fetch)
	c.put(podRef("p"), lookupResult{outcome: lookupFound}, time.Hour)
	e, fetch = c.get(podRef("p"))
	assert.False(t, fetch)
	assert.Same(t, pending, e, "the pending entry stays")
}

// TestCacheEntrySize measures the memory of one cache entry as a Pod's
// lookup leaves it (key, owner reference, two labels), for the sizing of
// extract::cache::size in config.go.
func TestCacheEntrySize(t *testing.T) {
	const n = 20000
	labelName, labelTeam := "k8s.pod.label.app.kubernetes.io/name", "k8s.pod.label.team"
	meta := func(i int) *objectMeta {
		return &objectMeta{
			owner: objectRef{gk: schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}, namespace: "payments", name: fmt.Sprintf("checkout-api-7d9f8c6b5-%d", i%100), uid: types.UID(fmt.Sprintf("0a1b2c3d-4e5f-6a7b-8c9d-%012d", i%100))},
			attrs: []attr{{labelName, "checkout-api"}, {labelTeam, "payments"}}, // the keys are shared, as the resolver builds them once
		}
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c := newObjectCache(n)
	for i := range n {
		ref := objectRef{gk: podKind, namespace: "payments", name: fmt.Sprintf("checkout-api-7d9f8c6b5-%05d", i), uid: types.UID(fmt.Sprintf("9f3c6a1e-4b2d-4c8e-9a7f-%012d", i))}
		e, _ := c.get(ref)
		c.complete(e, lookupResult{meta: meta(i), outcome: lookupFound}, time.Hour)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perEntry := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%d entries: %.0f bytes each, %.1f MiB in all", c.len(), perEntry, perEntry*n/(1<<20))
	require.Equal(t, n, c.len())
	// config.go sizes the default cache at about 0.8 KiB an entry.
	assert.Less(t, perEntry, 1024.0, "bytes per entry")
	runtime.KeepAlive(c)
}
