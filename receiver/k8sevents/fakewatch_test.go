package k8sevents

import (
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	clienttesting "k8s.io/client-go/testing"
)

// The fakeAPI's watch: every change stored (add, bump, remove) is streamed,
// in revision order, to the watches whose namespace and exclusions it
// matches, as the API server's watch cache does. A watch asked to start
// before the window (expireBefore) gets 410 Gone in its stream; one that
// runs past its timeoutSeconds is ended, as the server ends it.

// watchState is the fakeAPI's watch bookkeeping; fakeAPI.mu guards it.
type watchState struct {
	changes  []watch.Event
	watchers []*fakeWatcher
	watches  int
	// windowStart is the oldest revision a watch may start from.
	windowStart uint64
	// silent watchers send nothing at all, as a stalled connection.
	silent bool
	// beforeWatch, when set, may fail a watch request; it runs unlocked.
	beforeWatch func(call int, opts metav1.ListOptions) error
}

// recordChange logs a stored change and streams it; f.mu is held.
func (f *fakeAPI) recordChange(typ watch.EventType, ev corev1.Event) {
	change := watch.Event{Type: typ, Object: ev.DeepCopy()}
	f.w.changes = append(f.w.changes, change)
	for _, w := range f.w.watchers {
		w.offer(change)
	}
}

// remove deletes a stored Event, which is a change of its own revision.
func (f *fakeAPI) remove(ns, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := eventKey(ns, name)
	ev := f.events[key]
	delete(f.events, key)
	delete(f.history, key)
	f.rev++
	ev.ResourceVersion = strconv.FormatUint(f.rev, 10)
	f.recordChange(watch.Deleted, ev)
}

// bookmark sends every watch a bookmark at the current revision.
func (f *fakeAPI) bookmark() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.w.watchers {
		w.offer(watch.Event{Type: watch.Bookmark, Object: &corev1.Event{ObjectMeta: metav1.ObjectMeta{ResourceVersion: strconv.FormatUint(f.rev, 10)}}})
	}
}

// endWatches ends every open watch early, as an API server going away does.
func (f *fakeAPI) endWatches() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.w.watchers {
		w.end()
	}
	f.w.watchers = nil
}

// expireBefore makes watches from revisions before rev fail with 410 Gone,
// and ends the open ones that started before it.
func (f *fakeAPI) expireBefore(rev uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.w.windowStart = rev
}

func (f *fakeAPI) setSilent(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.w.silent = on
}

func (f *fakeAPI) watchCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.w.watches
}

func (f *fakeAPI) reactWatch(action clienttesting.Action) (bool, watch.Interface, error) {
	wa := action.(clienttesting.WatchActionImpl)
	opts := wa.ListOptions

	f.mu.Lock()
	f.w.watches++
	call := f.w.watches
	hook := f.w.beforeWatch
	f.mu.Unlock()
	if hook != nil {
		if err := hook(call, opts); err != nil {
			return true, nil, err
		}
	}

	from, err := strconv.ParseUint(opts.ResourceVersion, 10, 64)
	if err != nil || from == 0 {
		return true, nil, apierrors.NewBadRequest("the fake watches only from a revision")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w := newFakeWatcher(wa.Namespace, opts.FieldSelector, from, opts.AllowWatchBookmarks, f.w.silent)
	if from < f.w.windowStart {
		w.offer(watch.Event{Type: watch.Error, Object: &apierrors.NewResourceExpired("too old resource version").ErrStatus})
		w.end()
		return true, w, nil
	}
	for _, change := range f.w.changes {
		w.offer(change)
	}
	if opts.TimeoutSeconds != nil {
		time.AfterFunc(time.Duration(*opts.TimeoutSeconds)*time.Second, w.end)
	}
	f.w.watchers = append(f.w.watchers, w)
	return true, w, nil
}

// fakeWatcher streams what it is offered through an unbuffered channel, as
// client-go's StreamWatcher does, from a queue of its own.
type fakeWatcher struct {
	namespace, selector string
	from                uint64
	bookmarks, silent   bool

	mu     sync.Mutex
	queue  []watch.Event
	ended  bool
	wake   chan struct{}
	stop   chan struct{}
	once   sync.Once
	result chan watch.Event
}

func newFakeWatcher(ns, selector string, from uint64, bookmarks, silent bool) *fakeWatcher {
	w := &fakeWatcher{
		namespace: ns, selector: selector, from: from, bookmarks: bookmarks, silent: silent,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), result: make(chan watch.Event),
	}
	go w.pump()
	return w
}

// offer queues a change the watch should see.
func (w *fakeWatcher) offer(ev watch.Event) {
	if w.silent {
		return
	}
	if obj, ok := ev.Object.(*corev1.Event); ok {
		rev, _ := strconv.ParseUint(obj.ResourceVersion, 10, 64)
		if ev.Type == watch.Bookmark && !w.bookmarks {
			return
		}
		if ev.Type != watch.Bookmark && (rev <= w.from ||
			(w.namespace != "" && obj.Namespace != w.namespace) || !matchesExclusions(*obj, w.selector)) {
			return
		}
	}
	w.mu.Lock()
	w.queue = append(w.queue, ev)
	w.mu.Unlock()
	w.poke()
}

// end closes the stream once what is queued has been sent.
func (w *fakeWatcher) end() {
	w.mu.Lock()
	w.ended = true
	w.mu.Unlock()
	w.poke()
}

func (w *fakeWatcher) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *fakeWatcher) pump() {
	defer close(w.result)
	for {
		w.mu.Lock()
		var next *watch.Event
		if len(w.queue) > 0 {
			next = &w.queue[0]
			w.queue = w.queue[1:]
		}
		ended := w.ended
		w.mu.Unlock()
		if next == nil {
			if ended {
				return
			}
			select {
			case <-w.wake:
				continue
			case <-w.stop:
				return
			}
		}
		select {
		case w.result <- *next:
		case <-w.stop:
			return
		}
	}
}

func (w *fakeWatcher) Stop() { w.once.Do(func() { close(w.stop) }) }

func (w *fakeWatcher) ResultChan() <-chan watch.Event { return w.result }
