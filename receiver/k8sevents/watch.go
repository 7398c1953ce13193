package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// Watch mode keeps one watch per scope, from the scope's cursor, and lists
// only when there is no cursor to watch from: on the first start, and when
// the API server no longer holds the history since the cursor (410 Gone).
//
// client-go's RetryWatcher and informers are not used: the first keeps
// bookmarks to itself and hides why a watch ended, the second caches every
// Event. The cursor is the only record of what was delivered, and it moves
// only after the next consumer accepted a batch (or a bookmark says nothing
// in the scope changed up to its revision).

// Why a watch was started again, the cause attribute of the watch restarts
// metric.
const (
	causeTimeout = "timeout" // it reached the lifetime it asked for
	causeGone    = "gone"    // 410: the cursor is older than the watch window; a list follows
	causeError   = "error"   // the request failed, or the stream ended early
	causeStall   = "stall"   // neither an Event nor a bookmark for stallAfter
	causeRefused = "refused" // the next consumer refused a batch
)

// watchTimings are the times of watch mode, which tests shorten.
type watchTimings struct {
	// timeout is the shortest lifetime a watch asks for; each scope asks
	// for a random time between timeout and twice that, as client-go's
	// reflector does, so that restarted collectors do not all re-watch at
	// once. (Drawn once per scope: the request, and so a failure's message,
	// stays the same from one retry to the next, and is logged once.)
	timeout time.Duration
	// stallAfter is how long a watch may bring neither an Event nor a
	// bookmark before it is replaced: a silent watch is a broken one (a
	// connection dropped without a reset, a proxy that stopped forwarding).
	//
	// kube-apiserver's watch cache (k8s.io/apiserver v0.37.2,
	// pkg/storage/cacher) sends each watch that asks for bookmarks one every
	// defaultBookmarkFrequency (1 minute), scheduled in buckets of a second
	// and dispatched by a timer of 1 to 1.25 s, and one 2 s before the
	// watch's own deadline. So a healthy watch is never silent for more
	// than about 62 s; 90 s leaves half a period for a loaded server, and
	// a false stall costs one watch request from the cursor.
	stallAfter time.Duration
}

var defaultWatchTimings = watchTimings{timeout: 5 * time.Minute, stallAfter: 90 * time.Second}

// watchScopes runs a streamer per scope and, in this goroutine, writes the
// resume point as the streamers move their cursors. It returns when ctx
// ends and every streamer has stopped.
func (r *eventsReceiver) watchScopes(ctx, delivering context.Context) {
	changed := make(chan struct{}, 1)
	moved := func(_ context.Context, s scope, cur *cursor) {
		r.moved(s, cur)
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	l := r.newLister(moved)

	// start_at end: learn where every new scope's stored Events end in one
	// pass, as the first poll does, and say so once. A scope that fails here
	// is left to its streamer, which retries and logs why.
	var marked []string
	for _, s := range r.scopes {
		if _, ok := r.positions[s.id()]; ok || r.cfg.StartAt != StartAtEnd {
			continue
		}
		cur, err := r.markEnd(ctx, l, s)
		if err != nil {
			if noAnswer(ctx, err) {
				r.redial() // the streamer's retry must not wait on a dead connection
			}
			continue
		}
		r.positions[s.id()] = cur
		marked = append(marked, fmt.Sprintf("%s@%d", s.id(), cur.Mark))
	}
	r.logMarked(marked)
	r.checkpoint(ctx)

	var wg sync.WaitGroup
	for _, s := range r.scopes {
		st := &streamer{
			r: r, l: l, s: s, cur: r.positions[s.id()], delivering: delivering, moved: moved,
			// The server counts whole seconds, and ends the watch when they pass.
			watchSeconds: max(1, int64((r.watch.timeout+rand.N(r.watch.timeout))/time.Second)),
			failures: failureLog{
				logger:       r.settings.Logger,
				failedMsg:    "Watching Kubernetes events failed; keeping the position and retrying",
				noAnswerMsg:  "Watching Kubernetes events: no answer from the API server in %v; keeping the position and retrying",
				stillMsg:     "Watching Kubernetes events still fails",
				recoveredMsg: "Watching Kubernetes events works again",
				countKey:     "failures",
			},
		}
		wg.Go(func() { st.run(ctx) })
	}
	var due <-chan time.Time
	if r.ckpt != nil {
		due = r.ckpt.timer.C
	}
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-changed:
			r.checkpoint(ctx)
		case <-due:
			r.checkpoint(ctx)
		}
	}
}

// streamer keeps the Events of one scope flowing: it lists when it must,
// then watches from the cursor, again and again, until ctx ends.
type streamer struct {
	r *eventsReceiver
	l *lister
	s scope
	// cur is the scope's position, owned by this streamer; nil until the
	// scope has one.
	cur        *cursor
	delivering context.Context
	moved      func(ctx context.Context, s scope, cur *cursor)
	// watchSeconds is the lifetime each watch asks for.
	watchSeconds int64
	// failures logs the failures since the cursor last moved, and sets the
	// back-off.
	failures failureLog
	// batch is the Events of the batch being gathered; its backing array is
	// reused, so the streamer holds at most page_size Events.
	batch []corev1.Event
}

func (st *streamer) run(ctx context.Context) {
	r := st.r
	list := st.cur == nil || st.cur.Mark == 0
	for ctx.Err() == nil {
		if st.cur == nil && r.cfg.StartAt == StartAtEnd {
			r.tel.recordListing(ctx, st.s)
			cur, err := r.markEnd(ctx, st.l, st.s)
			if err != nil {
				st.retry(ctx, r.classify(ctx, st.s, "list", err))
				continue
			}
			st.cur, list = cur, false
			st.moved(ctx, st.s, cur)
			r.logMarked([]string{fmt.Sprintf("%s@%d", st.s.id(), cur.Mark)})
		}
		if st.cur == nil {
			st.cur = &cursor{} // start_at beginning: the list emits every stored Event
		}
		if list {
			r.tel.recordListing(ctx, st.s)
			err := st.l.sync(ctx, st.s, st.cur, st.deliver)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				st.retry(ctx, r.classify(ctx, st.s, "list", err))
				continue
			}
			st.progress()
			list = false
		}
		cause, silent, err := st.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		r.tel.recordRestart(ctx, cause)
		switch cause {
		case causeTimeout:
		case causeGone:
			list = true
			msg := "The API server no longer holds the changes since the cursor (410 Gone); listing from the cursor without repeating what was delivered"
			if apierrors.HasStatusCause(err, metav1.CauseTypeResourceVersionTooLarge) {
				msg = "The API server has not reached the cursor's revision; listing to learn where it stands"
			}
			r.settings.Logger.Info(msg, zap.String("scope", st.s.id()), zap.Uint64("cursor_revision", st.cur.Mark), zap.Error(err))
		case causeStall:
			// Another connection of the pool may be as dead as the watch's:
			// the next watch dials a new one.
			r.redial()
			r.settings.Logger.Warn("No Event and no bookmark from the watch; it is stalled, watching again from the cursor",
				zap.String("scope", st.s.id()), zap.Duration("silent_for", silent.Round(time.Second)),
				zap.Duration("stall_after", r.watch.stallAfter), zap.Uint64("cursor_revision", st.cur.Mark))
		default:
			st.retry(ctx, r.classify(ctx, st.s, "watch", err))
		}
	}
}

// deliver hands a page of a list on; it is the lister's deliverFunc.
func (st *streamer) deliver(events []corev1.Event) error {
	return st.r.deliver(st.delivering, events)
}

// retry logs a failure and waits before the next try, backing off from
// minRetry to the interval.
func (st *streamer) retry(ctx context.Context, err error) {
	wait := retryWait(st.failures.failures+1, st.r.cfg.Interval)
	st.r.tel.recordState(ctx, st.s, stateRetrying)
	st.failures.fail(err, wait, zap.String("scope", st.s.id()))
	sleep(ctx, wait)
}

// progress notes that the cursor moved: whatever failed works again.
func (st *streamer) progress() {
	st.failures.ok(zap.String("scope", st.s.id()))
}

// watch streams the scope's changes from the cursor until the watch ends,
// and says why it ended; after a stall, also for how long the watch had
// been silent.
func (st *streamer) watch(ctx context.Context) (cause string, silent time.Duration, err error) {
	r := st.r
	seconds := st.watchSeconds
	timeout := time.Duration(seconds) * time.Second
	from := st.cur.Mark
	started := time.Now()
	// The answer to the watch request (its headers) must come within
	// request_timeout, as for any request; the stream that follows has the
	// stall timer instead.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	unanswered := time.AfterFunc(r.cfg.RequestTimeout, stop)
	w, err := r.watches.CoreV1().Events(st.s.namespace).Watch(wctx, metav1.ListOptions{
		FieldSelector:       st.s.fieldSelector,
		ResourceVersion:     strconv.FormatUint(from, 10),
		AllowWatchBookmarks: true,
		TimeoutSeconds:      &seconds,
	})
	if !unanswered.Stop() && ctx.Err() == nil {
		if err == nil {
			w.Stop()
		}
		return causeError, 0, fmt.Errorf("watch %s from revision %d: %w", st.s.describe(), from, context.DeadlineExceeded)
	}
	if err != nil {
		if needsList(err) {
			return causeGone, 0, err
		}
		return causeError, 0, fmt.Errorf("watch %s from revision %d: %w", st.s.describe(), from, err)
	}
	defer w.Stop()
	r.tel.recordState(ctx, st.s, stateStreaming)
	heard := time.Now() // the last Event or bookmark, or the answer

	stall := time.NewTimer(r.watch.stallAfter)
	defer stall.Stop()
	due := time.NewTimer(time.Hour)
	due.Stop()
	defer due.Stop()
	gathering := false // a batch is open and due fires when it closes
	var upTo uint64    // the highest revision the watch has passed
	flush := func() error {
		gathering = false
		due.Stop()
		err := st.flush(ctx, upTo)
		// A slow consumer is not a silent watch: count from now.
		heard = time.Now()
		stall.Reset(r.watch.stallAfter)
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return "", 0, ctx.Err()
		case <-stall.C:
			if err := flush(); err != nil {
				return causeRefused, 0, err
			}
			return causeStall, time.Since(heard), nil
		case <-due.C:
			if err := flush(); err != nil {
				return causeRefused, 0, err
			}
			continue
		case ev, ok := <-w.ResultChan():
			if !ok {
				if ctx.Err() != nil {
					return "", 0, ctx.Err()
				}
				if err := flush(); err != nil {
					return causeRefused, 0, err
				}
				if lasted := time.Since(started); lasted < timeout*9/10 {
					return causeError, 0, fmt.Errorf("watch %s: the API server ended it after %v, before its timeout of %v", st.s.describe(), lasted.Round(time.Millisecond), timeout)
				}
				return causeTimeout, 0, nil
			}
			heard = time.Now()
			stall.Reset(r.watch.stallAfter)
			switch ev.Type {
			case watch.Added, watch.Modified:
				event, ok := ev.Object.(*corev1.Event)
				if !ok {
					return causeError, 0, fmt.Errorf("watch %s: a %s change holds a %T, not an Event", st.s.describe(), ev.Type, ev.Object)
				}
				rev, ok := parseRevision(event.ResourceVersion)
				// An Event whose revision is not a number cannot be placed:
				// it is kept, as a list keeps it; a repeat beats a loss.
				if !ok || rev > st.cur.deliveredUpTo(eventKey(event.Namespace, event.Name)) {
					st.batch = append(st.batch, *event)
				}
				upTo = max(upTo, rev)
			case watch.Deleted, watch.Bookmark:
				// A deletion is not a change of the Event: nothing to emit,
				// but the watch has passed its revision. A bookmark says the
				// scope holds no change up to its revision that was not sent.
				if m, err := meta.Accessor(ev.Object); err == nil {
					if rev, ok := parseRevision(m.GetResourceVersion()); ok {
						upTo = max(upTo, rev)
					}
				}
				if ev.Type == watch.Bookmark {
					if err := flush(); err != nil {
						return causeRefused, 0, err
					}
					continue
				}
			case watch.Error:
				err := apierrors.FromObject(ev.Object)
				if ferr := flush(); ferr != nil {
					return causeRefused, 0, ferr
				}
				if needsList(err) {
					return causeGone, 0, err
				}
				return causeError, 0, fmt.Errorf("watch %s: %w", st.s.describe(), err)
			}
			if int64(len(st.batch)) >= r.cfg.PageSize {
				if err := flush(); err != nil {
					return causeRefused, 0, err
				}
			} else if !gathering && upTo > st.cur.Mark {
				gathering = true
				due.Reset(r.cfg.BatchTimeout)
			}
		}
	}
}

// flush hands the gathered Events on and, once the next consumer accepted
// them, moves the cursor to upTo, the revision the watch has passed. When
// the consumer refuses, the batch is dropped and the cursor stays: the
// next watch starts before it.
func (st *streamer) flush(ctx context.Context, upTo uint64) error {
	if len(st.batch) > 0 {
		if err := ctx.Err(); err != nil {
			return err // shut down, or the lease was lost: deliver nothing more
		}
		err := st.r.deliver(st.delivering, st.batch)
		clear(st.batch) // let the Events go; keep the array for the next batch
		st.batch = st.batch[:0]
		if err != nil {
			return errDeliver{err: err}
		}
	}
	if upTo > st.cur.Mark {
		st.cur.watched(upTo)
		st.moved(ctx, st.s, st.cur)
		st.progress()
	}
	return nil
}

// needsList reports an answer that a watch cannot start from the cursor: its
// revision is older than the API server's watch window (410 Gone), or newer
// than the server's newest (etcd restored from a backup; the list that
// follows says so and starts over).
func needsList(err error) bool {
	return isExpired(err) || apierrors.HasStatusCause(err, metav1.CauseTypeResourceVersionTooLarge)
}
