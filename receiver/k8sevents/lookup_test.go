package k8sevents

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents/internal/metadata"
)

// lookupHarness is a resolver on a fakeMeta, with its logs and telemetry.
type lookupHarness struct {
	fm   *fakeMeta
	r    *resolver
	logs *observer.ObservedLogs
	tel  *componenttest.Telemetry
	clk  *clock
}

func newLookupHarness(t *testing.T, fm *fakeMeta, mutate func(*Config)) *lookupHarness {
	t.Helper()
	cfg := createDefaultConfig()
	cfg.Extract.Owners = true
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	core, logs := observer.New(zapcore.DebugLevel)
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { assert.NoError(t, tel.Shutdown(context.Background())) })
	set := tel.NewTelemetrySettings()
	rt, err := newTelemetry(set, receivertest.NewNopSettings(metadata.Type).ID)
	require.NoError(t, err)
	conv, err := newConverter(cfg)
	require.NoError(t, err)
	r := newResolver(fm, cfg, conv.keeps, rt, zap.New(core))
	clk := &clock{t: time.Unix(1_000_000, 0)}
	r.cache.now = clk.now
	t.Cleanup(r.stop)
	return &lookupHarness{fm: fm, r: r, logs: logs, tel: tel, clk: clk}
}

// counterTotal sums every point of a counter.
func counterTotal(t *testing.T, tel *componenttest.Telemetry, name string) int64 {
	t.Helper()
	m, err := tel.GetMetric(name)
	if err != nil {
		return 0 // nothing recorded yet
	}
	var n int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		n += dp.Value
	}
	return n
}

// about is an Event whose involved object is of kind in namespace ns, named
// name, with the UID "uid-<name>".
func about(apiVersion, kind, ns, name string) corev1.Event {
	return corev1.Event{
		InvolvedObject: corev1.ObjectReference{APIVersion: apiVersion, Kind: kind, Namespace: ns, Name: name, UID: types.UID("uid-" + name)},
		Reason:         "Test",
		Type:           corev1.EventTypeNormal,
	}
}

func aboutPod(name string) corev1.Event { return about("v1", "Pod", "shop", name) }

// resolveOne resolves a page with one Event and returns what it adds.
func (h *lookupHarness) resolveOne(t *testing.T, ev corev1.Event) map[string]string {
	t.Helper()
	found := h.r.resolve(t.Context(), []corev1.Event{ev})
	ref, ok := involvedRef(&ev.InvolvedObject)
	if !ok {
		require.Empty(t, found)
		return map[string]string{}
	}
	got := map[string]string{}
	for _, a := range found[ref] {
		got[a.key] = a.value
	}
	return got
}

// workloads stores the objects of a namespace "shop" with every kind of
// owner chain.
func workloads(fm *fakeMeta) {
	fm.add("pods", "shop", "web-7d4-x1", ownedBy("apps/v1", "ReplicaSet", "web-7d4"))
	fm.add("replicasets", "shop", "web-7d4", ownedBy("apps/v1", "Deployment", "web"))
	fm.add("deployments", "shop", "web")
	fm.add("pods", "shop", "nightly-29-q2", ownedBy("batch/v1", "Job", "nightly-29"))
	fm.add("jobs", "shop", "nightly-29", ownedBy("batch/v1", "CronJob", "nightly"))
	fm.add("cronjobs", "shop", "nightly")
	fm.add("pods", "shop", "db-0", ownedBy("apps/v1", "StatefulSet", "db"))
	fm.add("pods", "shop", "agent-k2x", ownedBy("apps/v1", "DaemonSet", "agent"))
	fm.add("pods", "shop", "bare")
	fm.add("replicasets", "shop", "orphan")
	fm.add("pods", "shop", "orphan-z9", ownedBy("apps/v1", "ReplicaSet", "orphan"))
	fm.add("jobs", "shop", "one-off")
	fm.add("pods", "shop", "kube-proxy-node-1", ownedBy("v1", "Node", "node-1")) // a mirror Pod
}

func TestResolveOwners(t *testing.T) {
	names := func(kind, name string) map[string]string {
		return map[string]string{"k8s." + kind + ".name": name, "k8s." + kind + ".uid": "uid-" + name}
	}
	merge := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			maps.Copy(out, m)
		}
		return out
	}
	tests := []struct {
		name  string
		event corev1.Event
		want  map[string]string
		// gets are the objects looked up ("resource/name"); nothing else is.
		gets []string
	}{
		{"pod of a deployment", aboutPod("web-7d4-x1"),
			merge(names("replicaset", "web-7d4"), names("deployment", "web")), []string{"pods/web-7d4-x1", "replicasets/web-7d4"}},
		{"replicaset of a deployment", about("apps/v1", "ReplicaSet", "shop", "web-7d4"),
			names("deployment", "web"), []string{"replicasets/web-7d4"}},
		{"pod of a cronjob's job", aboutPod("nightly-29-q2"),
			merge(names("job", "nightly-29"), names("cronjob", "nightly")), []string{"pods/nightly-29-q2", "jobs/nightly-29"}},
		{"job of a cronjob", about("batch/v1", "Job", "shop", "nightly-29"),
			names("cronjob", "nightly"), []string{"jobs/nightly-29"}},
		{"pod of a statefulset", aboutPod("db-0"), names("statefulset", "db"), []string{"pods/db-0"}},
		{"pod of a daemonset", aboutPod("agent-k2x"), names("daemonset", "agent"), []string{"pods/agent-k2x"}},
		{"pod of a replicaset without deployment", aboutPod("orphan-z9"),
			names("replicaset", "orphan"), []string{"pods/orphan-z9", "replicasets/orphan"}},
		{"pod without owner", aboutPod("bare"), map[string]string{}, []string{"pods/bare"}},
		{"job without owner", about("batch/v1", "Job", "shop", "one-off"), map[string]string{}, []string{"jobs/one-off"}},
		{"mirror pod: a node is not a workload", aboutPod("kube-proxy-node-1"), map[string]string{}, []string{"pods/kube-proxy-node-1"}},
		// The workloads at the top have no owner to find: not looked up.
		{"deployment", about("apps/v1", "Deployment", "shop", "web"), map[string]string{}, nil},
		{"cronjob", about("batch/v1", "CronJob", "shop", "nightly"), map[string]string{}, nil},
		{"node", about("v1", "Node", "", "node-1"), map[string]string{}, nil},
		{"unknown kind", about("v1", "Service", "shop", "web"), map[string]string{}, nil},
		{"extensions ReplicaSet is not apps", about("extensions/v1beta1", "ReplicaSet", "shop", "web-7d4"), map[string]string{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm := newFakeMeta()
			workloads(fm)
			h := newLookupHarness(t, fm, nil)
			assert.Equal(t, tt.want, h.resolveOne(t, tt.event))
			for _, g := range tt.gets {
				resource, name, _ := strings.Cut(g, "/")
				assert.Equal(t, 1, fm.getsOf(resource, "shop", name), "GETs of %s", g)
			}
			assert.Equal(t, len(tt.gets), fm.totalGets(), "GETs in all")
		})
	}
}

func TestResolveLabelsAndAnnotations(t *testing.T) {
	fm := newFakeMeta()
	fm.add("pods", "shop", "web-7d4-x1", ownedBy("apps/v1", "ReplicaSet", "web-7d4"),
		withLabels("app", "web", "team", "shop", "pod-template-hash", "7d4"), withAnnotations("example.com/owner", "alice", "other", "x"))
	fm.add("replicasets", "shop", "web-7d4", ownedBy("apps/v1", "Deployment", "web"), withLabels("app", "web-rs", "team", "rs"))
	fm.add("deployments", "shop", "web", withLabels("app", "web", "team", ""), withAnnotations("example.com/owner", "bob"))
	fm.add("pods", "shop", "db-0", ownedBy("apps/v1", "StatefulSet", "db"), withLabels("app", "db"))
	// The StatefulSet is missing: the Pod's own labels and its owner's name still come.
	fm.add("nodes", "", "node-1", withLabels("team", "infra", "topology.kubernetes.io/zone", "eu-1a"))
	labels := func(cfg *Config) {
		cfg.Extract.Labels = []string{"app", "team", "topology.kubernetes.io/zone"}
		cfg.Extract.Annotations = []string{"example.com/owner"}
	}

	h := newLookupHarness(t, fm, labels)
	assert.Equal(t, map[string]string{
		"k8s.pod.label.app": "web", "k8s.pod.label.team": "shop", "k8s.pod.annotation.example.com/owner": "alice",
		"k8s.replicaset.name": "web-7d4", "k8s.replicaset.uid": "uid-web-7d4",
		"k8s.deployment.name": "web", "k8s.deployment.uid": "uid-web",
		// The top-level owner's, not the ReplicaSet's; an empty label is there, empty.
		"k8s.deployment.label.app": "web", "k8s.deployment.label.team": "", "k8s.deployment.annotation.example.com/owner": "bob",
	}, h.resolveOne(t, aboutPod("web-7d4-x1")))
	assert.Equal(t, 1, fm.getsOf("deployments", "shop", "web"), "the top-level owner is looked up for its labels")
	assert.Equal(t, map[string]string{
		"k8s.pod.label.app": "db", "k8s.statefulset.name": "db", "k8s.statefulset.uid": "uid-db",
	}, h.resolveOne(t, aboutPod("db-0")))
	assert.Equal(t, map[string]string{"k8s.node.label.team": "infra", "k8s.node.label.topology.kubernetes.io/zone": "eu-1a"},
		h.resolveOne(t, about("v1", "Node", "", "node-1")))
	assert.Equal(t, map[string]string{"k8s.deployment.label.app": "web", "k8s.deployment.label.team": "", "k8s.deployment.annotation.example.com/owner": "bob"},
		h.resolveOne(t, about("apps/v1", "Deployment", "shop", "web")), "a workload's own labels")
	assert.Equal(t, 1, fm.getsOf("deployments", "shop", "web"), "answered from the cache")

	// Without owners: the involved object's labels only.
	fm2 := newFakeMeta()
	maps.Copy(fm2.objects, fm.objects)
	h = newLookupHarness(t, fm2, func(cfg *Config) { labels(cfg); cfg.Extract.Owners = false })
	assert.Equal(t, map[string]string{"k8s.pod.label.app": "web", "k8s.pod.label.team": "shop", "k8s.pod.annotation.example.com/owner": "alice"},
		h.resolveOne(t, aboutPod("web-7d4-x1")))
	assert.Equal(t, 1, fm2.totalGets(), "only the Pod")
}

// Many Events of a page and several pages at once need the same objects:
// each is asked for once, and every Event gets the answer.
func TestResolveOneRequestInFlightPerObject(t *testing.T) {
	fm := newFakeMeta()
	workloads(fm)
	release := make(chan struct{})
	fm.hook = func(ctx context.Context, resource, _, _ string) error {
		if resource == "pods" {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	h := newLookupHarness(t, fm, nil)
	page := []corev1.Event{aboutPod("web-7d4-x1"), aboutPod("web-7d4-x1"), aboutPod("web-7d4-x1")}
	const pages = 5
	results := make([]map[objectRef][]attr, pages)
	var wg sync.WaitGroup
	for i := range pages {
		wg.Go(func() { results[i] = h.r.resolve(context.Background(), page) })
	}
	// The other pages wait for the first one's request.
	require.Eventually(t, func() bool {
		return counterBy(t, h.tel, "otelcol_receiver_k8sevents_lookup_cache_hits", "resource", "pods") == pages-1
	}, time.Minute, time.Millisecond)
	assert.Equal(t, 1, fm.getsOf("pods", "shop", "web-7d4-x1"), "one request in flight")
	close(release)
	wg.Wait()
	ref, _ := involvedRef(&page[0].InvolvedObject)
	for i, found := range results {
		assert.Len(t, found[ref], 4, "page %d: the ReplicaSet's and the Deployment's name and UID", i)
	}
	assert.Equal(t, 1, fm.getsOf("pods", "shop", "web-7d4-x1"))
	assert.Equal(t, 1, fm.getsOf("replicasets", "shop", "web-7d4"))
	assert.Equal(t, int64(2), counterBy(t, h.tel, "otelcol_receiver_k8sevents_lookups", "outcome", lookupFound))
}

// A Pod deleted before its Events are read: its records go out without
// owners, and the 404 is remembered, so that its other Events (in later
// pages) cause no request.
func TestResolveNotFoundIsCached(t *testing.T) {
	fm := newFakeMeta()
	h := newLookupHarness(t, fm, nil)
	for range 3 {
		assert.Empty(t, h.resolveOne(t, aboutPod("gone")))
	}
	assert.Equal(t, []string{"0", ""}, fm.rvsOf("pods", "shop", "gone"),
		"one lookup for three pages: the watch cache's 404, confirmed by etcd")
	assert.Equal(t, int64(1), counterBy(t, h.tel, "otelcol_receiver_k8sevents_lookups", "outcome", lookupNotFound))
	assert.Equal(t, int64(2), counterBy(t, h.tel, "otelcol_receiver_k8sevents_lookup_cache_hits", "resource", "pods"))

	// Once the TTL is over it is asked for again (a Pod does not come back
	// under its UID, but a TTL bounds every answer).
	h.clk.t = h.clk.t.Add(defaultCacheTTL + time.Second)
	assert.Empty(t, h.resolveOne(t, aboutPod("gone")))
	assert.Equal(t, 4, fm.getsOf("pods", "shop", "gone"))
}

// An object that exists is read from the API server's watch cache, in one
// GET; one that the watch cache does not hold yet (created a moment ago) is
// found in etcd rather than taken for deleted.
func TestResolveReadsTheWatchCache(t *testing.T) {
	fm := newFakeMeta()
	workloads(fm)
	fm.stale[metaKey("pods", "shop", "db-0")] = true
	h := newLookupHarness(t, fm, nil)
	assert.Equal(t, map[string]string{"k8s.statefulset.name": "db", "k8s.statefulset.uid": "uid-db"}, h.resolveOne(t, aboutPod("db-0")))
	assert.Equal(t, []string{"0", ""}, fm.rvsOf("pods", "shop", "db-0"), "the watch cache's 404, then etcd")
	assert.Len(t, h.resolveOne(t, aboutPod("web-7d4-x1")), 4)
	assert.Equal(t, []string{"0"}, fm.rvsOf("pods", "shop", "web-7d4-x1"))
	assert.Equal(t, []string{"0"}, fm.rvsOf("replicasets", "shop", "web-7d4"))
	assert.Equal(t, int64(3), counterBy(t, h.tel, "otelcol_receiver_k8sevents_lookups", "outcome", lookupFound))
}

// A StatefulSet's Pod deleted and created again has the same name and a new
// UID: the old Pod's Events get no owners, the new one's do, and one
// request answers both.
func TestResolveRecreatedObjectIsAnotherObject(t *testing.T) {
	fm := newFakeMeta()
	fm.add("pods", "shop", "db-0", ownedBy("apps/v1", "StatefulSet", "db"), withUID("uid-db-0-new"))
	h := newLookupHarness(t, fm, nil)
	old, recreated := aboutPod("db-0"), aboutPod("db-0")
	old.InvolvedObject.UID, recreated.InvolvedObject.UID = "uid-db-0-old", "uid-db-0-new"

	assert.Empty(t, h.resolveOne(t, old), "the Pod the Event is about is gone")
	assert.Equal(t, map[string]string{"k8s.statefulset.name": "db", "k8s.statefulset.uid": "uid-db"}, h.resolveOne(t, recreated))
	assert.Empty(t, h.resolveOne(t, old))
	assert.Equal(t, []string{"0", ""}, fm.rvsOf("pods", "shop", "db-0"), "another UID in the watch cache, confirmed by etcd; then none")
	assert.Equal(t, int64(1), counterBy(t, h.tel, "otelcol_receiver_k8sevents_lookups", "outcome", lookupNotFound))

	// An Event without involvedObject.uid takes the object of the name.
	anyUID := aboutPod("db-0")
	anyUID.InvolvedObject.UID = ""
	assert.Equal(t, map[string]string{"k8s.statefulset.name": "db", "k8s.statefulset.uid": "uid-db"}, h.resolveOne(t, anyUID))
}

// A lookup that fails leaves the owners out, is logged once for the outage,
// and is tried again only after failedTTL, not for every page.
func TestResolveFailure(t *testing.T) {
	fm := newFakeMeta()
	workloads(fm)
	var failing sync.Mutex
	fail := true
	fm.hook = func(context.Context, string, string, string) error {
		failing.Lock()
		defer failing.Unlock()
		if fail {
			return apierrors.NewInternalError(fmt.Errorf("etcd is away"))
		}
		return nil
	}
	h := newLookupHarness(t, fm, nil)
	for range 3 {
		assert.Empty(t, h.resolveOne(t, aboutPod("web-7d4-x1")))
		assert.Empty(t, h.resolveOne(t, aboutPod("db-0")))
	}
	assert.Equal(t, 1, fm.getsOf("pods", "shop", "web-7d4-x1"))
	assert.Equal(t, 1, fm.getsOf("pods", "shop", "db-0"))
	assert.Equal(t, int64(2), counterBy(t, h.tel, "otelcol_receiver_k8sevents_lookups", "outcome", lookupError))
	assert.Equal(t, 1, h.logs.FilterMessageSnippet("Looking up the involved objects of Events fails").FilterLevelExact(zapcore.WarnLevel).Len(), "logged once")

	failing.Lock()
	fail = false
	failing.Unlock()
	h.clk.t = h.clk.t.Add(failedTTL + time.Second)
	assert.Equal(t, map[string]string{"k8s.statefulset.name": "db", "k8s.statefulset.uid": "uid-db"}, h.resolveOne(t, aboutPod("db-0")))
	assert.Equal(t, 2, fm.getsOf("pods", "shop", "db-0"))
	assert.Equal(t, 1, h.logs.FilterMessage("Looking up the involved objects of Events works again").Len())

	// Failing again within a minute: no second warning, and so no second
	// "works again", however the lookups alternate.
	for _, failNow := range []bool{true, false, true, false} {
		failing.Lock()
		fail = failNow
		failing.Unlock()
		h.clk.t = h.clk.t.Add(failedTTL + time.Second)
		h.resolveOne(t, aboutPod("agent-k2x"))
	}
	assert.Equal(t, 1, h.logs.FilterMessageSnippet("Looking up the involved objects of Events fails").FilterLevelExact(zapcore.WarnLevel).Len())
	assert.Equal(t, 1, h.logs.FilterMessage("Looking up the involved objects of Events works again").Len())
}

// A 403 is logged once per resource with the rule that is missing, and the
// records keep what needs no forbidden lookup.
func TestResolveForbidden(t *testing.T) {
	for _, tt := range []struct {
		name       string
		namespaces []string
		where      string
	}{
		{"cluster-wide", nil, `cluster-wide (ClusterRole)`},
		{"namespaced", []string{"shop"}, `in namespace "shop" (Role)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fm := newFakeMeta()
			workloads(fm)
			fm.add("pods", "shop", "web-9f1-y2", ownedBy("apps/v1", "ReplicaSet", "web-9f1"))
			fm.hook = func(_ context.Context, resource, _, name string) error {
				if resource == "replicasets" {
					return apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "replicasets"}, name, fmt.Errorf("RBAC: access denied"))
				}
				return nil
			}
			h := newLookupHarness(t, fm, func(cfg *Config) { cfg.Namespaces = tt.namespaces })
			assert.Equal(t, map[string]string{"k8s.replicaset.name": "web-7d4", "k8s.replicaset.uid": "uid-web-7d4"},
				h.resolveOne(t, aboutPod("web-7d4-x1")), "the ReplicaSet's name comes from the Pod's owner reference")
			assert.Equal(t, map[string]string{"k8s.replicaset.name": "web-9f1", "k8s.replicaset.uid": "uid-web-9f1"}, h.resolveOne(t, aboutPod("web-9f1-y2")))
			assert.Equal(t, map[string]string{"k8s.statefulset.name": "db", "k8s.statefulset.uid": "uid-db"}, h.resolveOne(t, aboutPod("db-0")))
			assert.Empty(t, h.resolveOne(t, about("apps/v1", "ReplicaSet", "shop", "web-7d4")), "cached: no second request")
			assert.Equal(t, 1, fm.getsOf("replicasets", "shop", "web-7d4"))
			assert.Equal(t, int64(2), counterBy(t, h.tel, "otelcol_receiver_k8sevents_lookups", "outcome", lookupForbidden))

			logged := h.logs.FilterMessageSnippet("forbidden").All()
			require.Len(t, logged, 1, "one log line for the resource")
			assert.Equal(t, zapcore.WarnLevel, logged[0].Level)
			want := `RBAC: grant verb "get" on resource "replicasets" (apiGroups ["apps"]) ` + tt.where
			assert.Contains(t, logged[0].ContextMap()["error"], want)
		})
	}
}

// A page waits for its lookups at most its deadline; one not answered by
// then is counted, and finishes for the next page that needs it.
func TestResolveDeadline(t *testing.T) {
	fm := newFakeMeta()
	workloads(fm)
	release := make(chan struct{})
	fm.hook = func(ctx context.Context, resource, _, _ string) error {
		if resource == "replicasets" {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	h := newLookupHarness(t, fm, nil)
	h.r.deadline = 50 * time.Millisecond
	assert.Equal(t, map[string]string{"k8s.replicaset.name": "web-7d4", "k8s.replicaset.uid": "uid-web-7d4"}, h.resolveOne(t, aboutPod("web-7d4-x1")),
		"what was known at the deadline")
	assert.Equal(t, int64(1), counterTotal(t, h.tel, "otelcol_receiver_k8sevents_lookup_timeouts"))

	close(release)
	ref := objectRef{gk: schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}, namespace: "shop", name: "web-7d4", uid: "uid-web-7d4"}
	require.Eventually(t, func() bool {
		h.r.cache.mu.Lock()
		defer h.r.cache.mu.Unlock()
		el, ok := h.r.cache.entries[ref]
		return ok && el.Value.(*cacheEntry).answered()
	}, time.Minute, time.Millisecond)
	assert.Equal(t, map[string]string{
		"k8s.replicaset.name": "web-7d4", "k8s.replicaset.uid": "uid-web-7d4", "k8s.deployment.name": "web", "k8s.deployment.uid": "uid-web",
	}, h.resolveOne(t, aboutPod("web-7d4-x1")))
	assert.Equal(t, 1, fm.getsOf("replicasets", "shop", "web-7d4"), "the late answer was kept")
}

// stop ends the lookups under way; TestMain's goleak checks nothing is left.
func TestResolverStopEndsLookups(t *testing.T) {
	fm := newFakeMeta()
	workloads(fm)
	entered := make(chan struct{}, 1)
	fm.hook = func(ctx context.Context, _, _, _ string) error {
		entered <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
	h := newLookupHarness(t, fm, nil)
	h.r.deadline = time.Millisecond
	assert.Empty(t, h.resolveOne(t, aboutPod("web-7d4-x1")))
	<-entered
	h.r.stop()
	assert.Zero(t, counterBy(t, h.tel, "otelcol_receiver_k8sevents_lookups", "outcome", lookupError), "a stop is no failure")
}

// The receiver looks up the involved objects of a page before it converts
// it, and adds what it found to the records' resources; Events that a rule
// drops are not looked up.
func TestReceiverAddsOwners(t *testing.T) {
	api := newFakeAPI()
	fm := newFakeMeta()
	workloads(fm)
	for i, name := range []string{"web-7d4-x1", "db-0", "gone", "nightly-29-q2"} {
		ev := newEvent("shop", fmt.Sprintf("ev-%d", i))
		ev.InvolvedObject.Name, ev.InvolvedObject.UID = name, types.UID("uid-"+name)
		api.add(ev)
	}
	dropped := newEvent("shop", "noise")
	dropped.Reason = "Noise"
	dropped.InvolvedObject.Name, dropped.InvolvedObject.UID = "agent-k2x", "uid-agent-k2x"
	api.add(dropped)

	cfg := createDefaultConfig()
	cfg.Interval, cfg.StartAt = 5*time.Millisecond, StartAtBeginning
	cfg.Extract.Owners = true
	cfg.Rules = []RuleConfig{{Name: "noise", Match: MatchConfig{Reasons: []string{"Noise"}}, Drop: true}}
	require.NoError(t, cfg.Validate())
	sink := &consumertest.LogsSink{}
	rcv, err := newReceiver(receivertest.NewNopSettings(metadata.Type), cfg, sink)
	require.NoError(t, err)
	cs := api.clientset()
	rcv.newClients = func() (clients, error) { return clients{requests: cs, watches: cs, metadata: fm}, nil }
	require.NoError(t, rcv.Start(t.Context(), componenttest.NewNopHost()))
	t.Cleanup(func() { assert.NoError(t, rcv.Shutdown(context.Background())) })

	require.Eventually(t, func() bool { return sink.LogRecordCount() >= 4 }, time.Minute, time.Millisecond)
	got := map[string]map[string]any{}
	for _, ld := range sink.AllLogs() {
		for _, rl := range ld.ResourceLogs().All() {
			res := rl.Resource().Attributes().AsRaw()
			got[res[attrObjectName].(string)] = res
		}
	}
	assert.Equal(t, "web", got["web-7d4-x1"]["k8s.deployment.name"])
	assert.Equal(t, "web-7d4", got["web-7d4-x1"]["k8s.replicaset.name"])
	assert.Equal(t, "db", got["db-0"]["k8s.statefulset.name"])
	assert.Equal(t, "nightly", got["nightly-29-q2"]["k8s.cronjob.name"])
	assert.Equal(t, "nightly-29", got["nightly-29-q2"]["k8s.job.name"])
	assert.Equal(t, "uid-gone", got["gone"]["k8s.pod.uid"])
	for key := range got["gone"] {
		assert.False(t, strings.HasPrefix(key, "k8s.replicaset") || strings.HasPrefix(key, "k8s.deployment"), "the deleted Pod's record has %s", key)
	}
	assert.NotContains(t, got, "agent-k2x", "dropped by the rule")
	assert.Zero(t, fm.getsOf("pods", "shop", "agent-k2x"), "a dropped Event's object is not looked up")
}
