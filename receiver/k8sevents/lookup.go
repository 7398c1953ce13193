package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8smetadata "k8s.io/client-go/metadata"
)

// Lookups (extract): before a page is converted, the receiver looks up the
// distinct involved objects of its Events with the metadata API (a GET of
// PartialObjectMetadata, in protobuf) and follows their controller owner
// references to the top-level workload. Answers are cached (objectcache.go),
// so the API server sees a GET per object and TTL, not per Event; there is
// no list and no informer, so memory does not grow with the cluster. A
// lookup that fails, is forbidden or is not answered in time leaves the
// attributes that need it out of the record; the record is delivered all
// the same, and the cursor does not care.

const (
	// lookupPageWait is the longest a page waits for its lookups (less when
	// request_timeout is shorter): delivery is never held up longer than
	// that per page, and a lookup still under way when the page goes on
	// finishes, within request_timeout, for the next page that needs it.
	lookupPageWait = 10 * time.Second
	// lookupWorkers is the most GETs in flight at once, and the goroutines
	// a page uses to wait for its lookups.
	lookupWorkers = 8
	// lookupQPS and lookupBurst are the client-side rate limit of lookups
	// (client-go's token bucket), so that a burst of new objects (a start
	// with start_at beginning in a large cluster) cannot flood the API
	// server. A GET from its watch cache costs it about a millisecond; 2,000
	// new Pods are looked up in about 2 s.
	lookupQPS   = 500
	lookupBurst = 1000
	// failedTTL is how long a failed lookup (a timeout, a 5xx, the API server
	// away) is remembered before the object is asked for again; a 403 or 404
	// is an answer, kept for the cache's TTL.
	failedTTL = 30 * time.Second
	// maxOwnerDepth bounds the walk up the owner references.
	maxOwnerDepth = 4
	// failureLogInterval is the shortest time between two warnings that
	// lookups fail.
	failureLogInterval = time.Minute
)

// Outcomes of a GET, the outcome attribute of the lookups metric.
const (
	lookupFound     = "found"
	lookupNotFound  = "not_found" // 404, or the name now belongs to an object with another UID
	lookupForbidden = "forbidden"
	lookupError     = "error"
)

// attr is a resource attribute a lookup adds.
type attr struct{ key, value string }

// lookupKind is a kind of involved object or owner the receiver looks up.
type lookupKind struct {
	gvr           schema.GroupVersionResource
	clusterScoped bool
	// follow: the kind is owned by the workload the receiver names (a Pod by
	// a ReplicaSet, a ReplicaSet by a Deployment, a Job by a CronJob), so
	// with owners it is looked up to read its owner reference.
	follow bool
	// owner: the kind is a workload that owns others, named in
	// k8s.<kind>.name and k8s.<kind>.uid when it does.
	owner bool
}

// lookupKinds are the kinds with semantic-convention attributes; the prefix
// of each is in workloadKinds.
var lookupKinds = map[schema.GroupKind]lookupKind{
	{Group: "", Kind: "Pod"}:             {gvr: schema.GroupVersionResource{Version: "v1", Resource: "pods"}, follow: true},
	{Group: "", Kind: "Node"}:            {gvr: schema.GroupVersionResource{Version: "v1", Resource: "nodes"}, clusterScoped: true},
	{Group: "apps", Kind: "ReplicaSet"}:  {gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}, follow: true, owner: true},
	{Group: "apps", Kind: "Deployment"}:  {gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, owner: true},
	{Group: "apps", Kind: "StatefulSet"}: {gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}, owner: true},
	{Group: "apps", Kind: "DaemonSet"}:   {gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}, owner: true},
	{Group: "batch", Kind: "Job"}:        {gvr: schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}, follow: true, owner: true},
	{Group: "batch", Kind: "CronJob"}:    {gvr: schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}, owner: true},
}

// resolver looks up involved objects and their owners for the receiver.
type resolver struct {
	client k8smetadata.Interface
	cache  *objectCache
	owners bool
	// labels and annotations are the configured keys; meta is true when
	// there is any.
	labels, annotations []string
	meta                bool
	// attrKeys holds, per kind, the attribute names of labels then
	// annotations, built once so that cached objects share them.
	attrKeys map[schema.GroupKind][]string
	ttl      time.Duration
	// timeout bounds each GET (and the wait for a free worker before it):
	// request_timeout. deadline is how long a page waits for its lookups:
	// lookupPageWait, or request_timeout when that is shorter. Tests
	// shorten both.
	timeout, deadline time.Duration
	// expired runs when a GET got no answer within timeout: the request is
	// counted as a timeout and the next one dials a new connection (see
	// deadline.go). Nil in tests.
	expired func()
	// namespaced: the receiver reads configured namespaces, so a missing
	// rule is granted by a Role in the namespace.
	namespaced bool
	// keep reports whether an Event gets a record (the rules drop some);
	// only those are looked up.
	keep   func(*corev1.Event) bool
	tel    *telemetry
	logger *zap.Logger

	// sem holds a slot per GET in flight.
	sem chan struct{}
	// ctx bounds every GET; stop cancels it and waits for them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// forbidden holds the resources (and namespaces) whose 403 was logged.
	forbidden sync.Map
	// failing is set while lookups fail, so that an outage is logged once;
	// warned when that was logged, and lastWarn when, so that lookups that
	// fail and work by turns log at most once a minute.
	failing, warned atomic.Bool
	lastWarn        atomic.Int64
}

func newResolver(client k8smetadata.Interface, cfg *Config, keep func(*corev1.Event) bool, tel *telemetry, logger *zap.Logger) *resolver {
	ctx, cancel := context.WithCancel(context.Background())
	e := &cfg.Extract
	keys := make(map[schema.GroupKind][]string, len(lookupKinds))
	for gk := range lookupKinds {
		for _, l := range e.Labels {
			keys[gk] = append(keys[gk], workloadKinds[gk]+".label."+l)
		}
		for _, a := range e.Annotations {
			keys[gk] = append(keys[gk], workloadKinds[gk]+".annotation."+a)
		}
	}
	return &resolver{
		client: client, cache: newObjectCache(e.Cache.Size),
		owners: e.Owners, labels: e.Labels, annotations: e.Annotations, meta: len(e.Labels)+len(e.Annotations) > 0,
		attrKeys: keys, ttl: e.Cache.TTL, timeout: cfg.RequestTimeout, deadline: min(lookupPageWait, cfg.RequestTimeout), namespaced: len(cfg.Namespaces) > 0,
		keep: keep, tel: tel, logger: logger,
		sem: make(chan struct{}, lookupWorkers), ctx: ctx, cancel: cancel,
	}
}

// stop cancels the lookups under way and waits for them. Safe twice.
func (r *resolver) stop() {
	r.cancel()
	r.wg.Wait()
}

// involvedRef is the objectRef of an Event's involved object, when it is of
// a kind the receiver looks up.
func involvedRef(obj *corev1.ObjectReference) (objectRef, bool) {
	gk := schema.GroupKind{Group: groupOf(obj.APIVersion), Kind: obj.Kind}
	k, ok := lookupKinds[gk]
	if !ok || obj.Name == "" {
		return objectRef{}, false
	}
	ref := objectRef{gk: gk, name: obj.Name, uid: obj.UID}
	if !k.clusterScoped {
		if obj.Namespace == "" {
			return objectRef{}, false
		}
		ref.namespace = obj.Namespace
	}
	return ref, true
}

// wants reports whether an involved object of kind gk is looked up.
func (r *resolver) wants(gk schema.GroupKind) bool {
	return r.meta || (r.owners && lookupKinds[gk].follow)
}

// resolve looks up the involved objects of a page's Events and returns the
// attributes to add for each. It waits at most r.deadline: what is not
// answered by then is left out of this page's records.
func (r *resolver) resolve(ctx context.Context, events []corev1.Event) map[objectRef][]attr {
	var refs []objectRef
	seen := make(map[objectRef]bool)
	for i := range events {
		ev := &events[i]
		ref, ok := involvedRef(&ev.InvolvedObject)
		if !ok || seen[ref] || !r.wants(ref.gk) || (r.keep != nil && !r.keep(ev)) {
			continue
		}
		seen[ref] = true
		refs = append(refs, ref)
	}
	if len(refs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.deadline)
	defer cancel()
	out := make(map[objectRef][]attr, len(refs))
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		next atomic.Int64
		late atomic.Int64
	)
	for range min(lookupWorkers, len(refs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(refs) {
					return
				}
				attrs, answered := r.describe(ctx, refs[i])
				if !answered {
					late.Add(1)
				}
				if len(attrs) > 0 {
					mu.Lock()
					out[refs[i]] = attrs
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	r.tel.recordLookupPage(context.WithoutCancel(ctx), late.Load(), r.cache.len())
	return out
}

// describe returns the attributes of one involved object: its labels and
// annotations, its owners' names and UIDs, and the labels and annotations
// of its top-level owner. answered is false when ctx ended first; attrs
// then holds what was known by then.
func (r *resolver) describe(ctx context.Context, ref objectRef) (attrs []attr, answered bool) {
	meta, ok := r.object(ctx, ref)
	if !ok || meta == nil {
		return nil, ok
	}
	if r.meta {
		attrs = append(attrs, meta.attrs...)
	}
	if !r.owners {
		return attrs, true
	}
	owner := meta.owner
	for depth := 0; depth < maxOwnerDepth; depth++ {
		k, ok := lookupKinds[owner.gk]
		if owner.name == "" || !ok || !k.owner {
			break
		}
		prefix := workloadKinds[owner.gk]
		attrs = append(attrs, attr{prefix + ".name", owner.name})
		if owner.uid != "" {
			attrs = append(attrs, attr{prefix + ".uid", string(owner.uid)})
		}
		if !k.follow && !r.meta {
			break // the top-level workload: its name and UID are all that is needed
		}
		om, ok := r.object(ctx, owner)
		if !ok {
			return attrs, false
		}
		if om == nil {
			break
		}
		next, ok := lookupKinds[om.owner.gk]
		if om.owner.name == "" || !ok || !next.owner {
			// The top-level owner.
			if r.meta {
				attrs = append(attrs, om.attrs...)
			}
			break
		}
		owner = om.owner
	}
	return attrs, true
}

// object returns what the cache knows of ref, looking it up when it knows
// nothing, and waiting for a lookup under way. ok is false when ctx ended
// first.
func (r *resolver) object(ctx context.Context, ref objectRef) (meta *objectMeta, ok bool) {
	e, fetch := r.cache.get(ref)
	resource := lookupKinds[ref.gk].gvr.Resource
	if fetch {
		r.wg.Add(1)
		go r.fetch(e)
	} else {
		r.tel.recordCacheHit(ctx, resource)
	}
	select {
	case <-e.done:
		return e.result.meta, true
	case <-ctx.Done():
		return nil, false
	}
}

// fetch looks up a pending entry's object and completes the entry.
func (r *resolver) fetch(e *cacheEntry) {
	defer r.wg.Done()
	ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
	defer cancel()
	res, ttl := r.get(ctx, e.ref)
	r.cache.complete(e, res, ttl)
}

// get GETs the metadata of ref's object and says how long the answer holds.
func (r *resolver) get(ctx context.Context, ref objectRef) (lookupResult, time.Duration) {
	k := lookupKinds[ref.gk]
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return r.failed(ctx, ref, k, fmt.Errorf("wait for a lookup worker: %w", ctx.Err()))
	}
	// resourceVersion "0": served from the API server's watch cache, no
	// etcd read. The cache may lag etcd by a moment, so an answer that
	// would be kept for the TTL although the object may exist (a 404, or
	// another UID: a Pod created just now, or created again under its name)
	// is read again from etcd.
	obj, err := r.getMeta(ctx, ref, k, "0")
	if apierrors.IsNotFound(err) || (err == nil && ref.uid != "" && obj.UID != ref.uid) {
		obj, err = r.getMeta(ctx, ref, k, "")
	}
	<-r.sem
	switch {
	case err == nil:
	case apierrors.IsNotFound(err):
		r.recovered()
		r.tel.recordLookup(ctx, k.gvr.Resource, lookupNotFound)
		return lookupResult{outcome: lookupNotFound}, r.ttl
	case apierrors.IsForbidden(err):
		r.logForbidden(ref, k, err)
		r.tel.recordLookup(ctx, k.gvr.Resource, lookupForbidden)
		return lookupResult{outcome: lookupForbidden}, r.ttl
	default:
		return r.failed(ctx, ref, k, err)
	}
	r.recovered()
	meta := r.metaOf(obj, ref)
	if ref.uid != "" && obj.UID != ref.uid {
		// The name now belongs to another object: the one the Event is
		// about is gone. Keep the new one for its own Events.
		r.cache.put(objectRef{gk: ref.gk, namespace: ref.namespace, name: ref.name, uid: obj.UID}, lookupResult{meta: meta, outcome: lookupFound}, r.ttl)
		r.tel.recordLookup(ctx, k.gvr.Resource, lookupNotFound)
		return lookupResult{outcome: lookupNotFound}, r.ttl
	}
	r.tel.recordLookup(ctx, k.gvr.Resource, lookupFound)
	return lookupResult{meta: meta, outcome: lookupFound}, r.ttl
}

// getMeta GETs the metadata of ref's object at resourceVersion rv.
func (r *resolver) getMeta(ctx context.Context, ref objectRef, k lookupKind, rv string) (*metav1.PartialObjectMetadata, error) {
	opts := metav1.GetOptions{ResourceVersion: rv}
	if k.clusterScoped {
		return r.client.Resource(k.gvr).Get(ctx, ref.name, opts)
	}
	return r.client.Resource(k.gvr).Namespace(ref.namespace).Get(ctx, ref.name, opts)
}

// failed counts and logs a lookup that got no answer; it is tried again
// after failedTTL (at once when the receiver is stopping).
func (r *resolver) failed(ctx context.Context, ref objectRef, k lookupKind, err error) (lookupResult, time.Duration) {
	if r.ctx.Err() != nil {
		return lookupResult{outcome: lookupError}, 0
	}
	r.tel.recordLookup(ctx, k.gvr.Resource, lookupError)
	if r.expired != nil && errors.Is(err, context.DeadlineExceeded) {
		r.expired()
	}
	if r.failing.CompareAndSwap(false, true) && time.Since(time.Unix(0, r.lastWarn.Load())) >= failureLogInterval {
		r.lastWarn.Store(time.Now().UnixNano())
		r.warned.Store(true)
		r.logger.Warn("Looking up the involved objects of Events fails; their records go out without owners, labels and annotations until it works again",
			zap.String("resource", k.gvr.Resource), zap.String("namespace", ref.namespace), zap.String("name", ref.name), zap.Error(err))
	} else {
		r.logger.Debug("Looking up an involved object failed", zap.String("resource", k.gvr.Resource),
			zap.String("namespace", ref.namespace), zap.String("name", ref.name), zap.Error(err))
	}
	return lookupResult{outcome: lookupError}, min(failedTTL, r.ttl)
}

// recovered logs, once, that lookups work again after failing.
func (r *resolver) recovered() {
	if r.failing.CompareAndSwap(true, false) && r.warned.Swap(false) {
		r.logger.Info("Looking up the involved objects of Events works again")
	}
}

// logForbidden logs a 403 once per resource (and namespace, when the
// receiver reads configured namespaces), with the rule that is missing.
func (r *resolver) logForbidden(ref objectRef, k lookupKind, err error) {
	where, key := "cluster-wide (ClusterRole)", k.gvr.GroupResource().String()
	if r.namespaced && !k.clusterScoped {
		where = fmt.Sprintf("in namespace %q (Role)", ref.namespace)
		key += "/" + ref.namespace
	}
	if _, logged := r.forbidden.LoadOrStore(key, true); logged {
		return
	}
	r.logger.Warn("Looking up involved objects is forbidden; their records go out without what the lookup would add",
		zap.Error(fmt.Errorf("%w; RBAC: grant verb \"get\" on resource %q (apiGroups [%q]) %s", err, k.gvr.Resource, k.gvr.Group, where)))
}

// metaOf keeps what records need of the metadata of ref's object.
func (r *resolver) metaOf(obj *metav1.PartialObjectMetadata, ref objectRef) *objectMeta {
	meta := &objectMeta{}
	if c := metav1.GetControllerOfNoCopy(obj); c != nil {
		meta.owner = objectRef{
			gk:        schema.GroupKind{Group: groupOf(c.APIVersion), Kind: c.Kind},
			namespace: ref.namespace, // owners are in the namespace of what they own
			name:      c.Name,
			uid:       c.UID,
		}
	}
	keys := r.attrKeys[ref.gk]
	for i, key := range r.labels {
		if v, ok := obj.Labels[key]; ok {
			meta.attrs = append(meta.attrs, attr{keys[i], v})
		}
	}
	for i, key := range r.annotations {
		if v, ok := obj.Annotations[key]; ok {
			meta.attrs = append(meta.attrs, attr{keys[len(r.labels)+i], v})
		}
	}
	return meta
}
