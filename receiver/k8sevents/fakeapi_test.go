package k8sevents

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// fakeAPI is an Event store behind a fake clientset that pages lists the way
// the API server does (limit, continue, a list resourceVersion, key order),
// which the fake clientset's own tracker does not. Hooks inject the failures
// a real server cannot be made to produce on demand.
type fakeAPI struct {
	mu     sync.Mutex
	rev    uint64
	events map[string]corev1.Event
	// history keeps every version of every Event, so that the pages of a
	// list come from one snapshot, as etcd serves them.
	history map[string][]corev1.Event
	lists   int
	// inFlight and maxInFlight count concurrent list requests.
	inFlight, maxInFlight int
	// beforeList, when set, may fail a list request; it runs unlocked.
	beforeList func(call int, opts metav1.ListOptions) error
	// w is the watch side (fakewatch_test.go).
	w watchState
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{rev: 100, events: make(map[string]corev1.Event), history: make(map[string][]corev1.Event)}
}

// eventOption changes a fixture Event.
type eventOption func(*corev1.Event)

// newEvent is an Event about a Pod, the common case.
func newEvent(ns, name string, opts ...eventOption) corev1.Event {
	ev := corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Pod", Namespace: ns, Name: "pod-" + name, UID: types.UID("pod-uid-" + name), APIVersion: "v1",
		},
		Reason:  "Started",
		Message: "message of " + name,
		Type:    corev1.EventTypeNormal,
		Count:   1,
		Source:  corev1.EventSource{Component: "kubelet", Host: "node-1"},
	}
	for _, opt := range opts {
		opt(&ev)
	}
	return ev
}

// add stores new Events, each with the next revision.
func (f *fakeAPI) add(events ...corev1.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range events {
		f.rev++
		ev.ResourceVersion = strconv.FormatUint(f.rev, 10)
		f.store(ev)
	}
}

// store records a new version of an Event; f.mu is held.
func (f *fakeAPI) store(ev corev1.Event) {
	key := eventKey(ev.Namespace, ev.Name)
	typ := watch.Modified
	if _, ok := f.events[key]; !ok {
		typ = watch.Added
	}
	f.events[key] = ev
	f.history[key] = append(f.history[key], ev)
	f.recordChange(typ, ev)
}

// at returns the version of the Event with this key that a snapshot at rev
// sees; f.mu is held.
func (f *fakeAPI) at(key string, rev uint64) (corev1.Event, bool) {
	versions := f.history[key]
	for i := len(versions) - 1; i >= 0; i-- {
		if v, _ := strconv.ParseUint(versions[i].ResourceVersion, 10, 64); v <= rev {
			return versions[i], true
		}
	}
	return corev1.Event{}, false
}

// addN stores n Pod Events named prefix-000, prefix-001, ...
func (f *fakeAPI) addN(ns, prefix string, n int) {
	for i := range n {
		f.add(newEvent(ns, fmt.Sprintf("%s-%03d", prefix, i)))
	}
}

// bump records another occurrence of a stored Event.
func (f *fakeAPI) bump(ns, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := f.events[eventKey(ns, name)]
	f.rev++
	ev.Count++
	ev.ResourceVersion = strconv.FormatUint(f.rev, 10)
	f.store(ev)
}

func (f *fakeAPI) listCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists
}

func (f *fakeAPI) clientset() *fake.Clientset {
	cs := fake.NewClientset()
	cs.PrependReactor("list", "events", f.react)
	cs.PrependWatchReactor("events", f.reactWatch)
	return cs
}

func (f *fakeAPI) react(action clienttesting.Action) (bool, runtime.Object, error) {
	la := action.(clienttesting.ListActionImpl)
	opts := la.ListOptions

	f.mu.Lock()
	f.lists++
	call := f.lists
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	hook := f.beforeList
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()

	if hook != nil {
		if err := hook(call, opts); err != nil {
			return true, nil, err
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	// A continue token here is "<snapshot revision>|<last key>".
	listRev, after := f.rev, ""
	if opts.Continue != "" {
		revText, key, _ := strings.Cut(opts.Continue, "|")
		listRev, _ = strconv.ParseUint(revText, 10, 64)
		after = key
	}
	keys := make([]string, 0, len(f.history))
	for k := range f.history {
		ev, ok := f.at(k, listRev)
		if ok && k > after && (la.Namespace == "" || ev.Namespace == la.Namespace) && matchesExclusions(ev, opts.FieldSelector) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	list := &corev1.EventList{ListMeta: metav1.ListMeta{ResourceVersion: strconv.FormatUint(listRev, 10)}}
	if opts.Limit > 0 && int64(len(keys)) > opts.Limit {
		keys = keys[:opts.Limit]
		list.Continue = fmt.Sprintf("%d|%s", listRev, keys[len(keys)-1])
	}
	for _, k := range keys {
		ev, _ := f.at(k, listRev)
		list.Items = append(list.Items, ev)
	}
	return true, list, nil
}

// matchesExclusions applies the only field selectors the receiver sends:
// metadata.namespace!=<ns>, joined by commas.
func matchesExclusions(ev corev1.Event, selector string) bool {
	if selector == "" {
		return true
	}
	for term := range strings.SplitSeq(selector, ",") {
		if ns, ok := strings.CutPrefix(term, "metadata.namespace!="); ok && ev.Namespace == ns {
			return false
		}
	}
	return true
}

// withOptimisticConcurrency makes the clientset give stored objects of these
// resources a resourceVersion, and refuse an update that carries another one
// than the stored object's with 409 Conflict, as the API server does and the
// fake tracker does not.
func withOptimisticConcurrency(cs *fake.Clientset, resources ...string) {
	var rv atomic.Uint64
	next := func() string { return strconv.FormatUint(rv.Add(1), 10) }
	for _, res := range resources {
		cs.PrependReactor("create", res, func(action clienttesting.Action) (bool, runtime.Object, error) {
			m, err := meta.Accessor(action.(clienttesting.CreateAction).GetObject())
			if err != nil {
				return true, nil, err
			}
			m.SetResourceVersion(next())
			return false, nil, nil // the tracker stores it
		})
		cs.PrependReactor("update", res, func(action clienttesting.Action) (bool, runtime.Object, error) {
			ua := action.(clienttesting.UpdateAction)
			m, err := meta.Accessor(ua.GetObject())
			if err != nil {
				return true, nil, err
			}
			stored, err := cs.Tracker().Get(ua.GetResource(), ua.GetNamespace(), m.GetName())
			if err != nil {
				return false, nil, nil // the tracker answers 404
			}
			sm, _ := meta.Accessor(stored)
			if sm.GetResourceVersion() != m.GetResourceVersion() {
				return true, nil, apierrors.NewConflict(ua.GetResource().GroupResource(), m.GetName(),
					errors.New("the object has been modified; please apply your changes to the latest version and try again"))
			}
			m.SetResourceVersion(next())
			return false, nil, nil
		})
	}
}

// countActions counts the requests the clientset received for a verb and
// resource.
func countActions(cs *fake.Clientset, verb, resource string) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource {
			n++
		}
	}
	return n
}
