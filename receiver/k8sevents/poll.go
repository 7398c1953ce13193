package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// poll lists every scope at once and then every interval, and writes the
// resume point when the checkpointer's timer fires. A poll that fails is
// retried sooner, backing off from minRetry to the interval; the failure is
// logged when it starts and when it changes, and the recovery once.
func (r *eventsReceiver) poll(ctx, delivering context.Context) {
	l := r.newLister(func(ctx context.Context, s scope, cur *cursor) {
		r.moved(s, cur)
		r.checkpoint(ctx)
	})
	polls := failureLog{
		logger:       r.settings.Logger,
		failedMsg:    "Polling Kubernetes events failed; keeping the position and retrying",
		noAnswerMsg:  "Polling Kubernetes events: no answer from the API server in %v; keeping the position and retrying",
		stillMsg:     "Polling Kubernetes events still fails",
		recoveredMsg: "Polling Kubernetes events works again",
		countKey:     "failed_polls",
	}
	var due <-chan time.Time
	if r.ckpt != nil {
		due = r.ckpt.timer.C
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-due:
			r.checkpoint(ctx)
			continue
		case <-timer.C:
		}
		started := time.Now()
		err := r.pollOnce(ctx, delivering, l)
		if ctx.Err() != nil {
			return // shutting down or no longer leader; an interrupted poll is not a failure
		}
		r.tel.recordPoll(ctx, started, err)
		r.checkpoint(ctx)
		if err == nil {
			polls.ok()
			timer.Reset(max(0, r.cfg.Interval-time.Since(started)))
			continue
		}
		wait := retryWait(polls.failures+1, r.cfg.Interval)
		polls.fail(err, wait)
		timer.Reset(wait)
	}
}

// pollOnce syncs every scope. A scope that fails does not stop the others.
// ctx governs the lists; delivering, the pages handed to the next consumer.
// Each scope's state is listing while its list runs, then idle until the
// next poll; or retrying from a failed list until a list succeeds.
func (r *eventsReceiver) pollOnce(ctx, delivering context.Context, l *lister) error {
	var errs []error
	var marked []string
	for _, s := range r.scopes {
		r.tel.recordListing(ctx, s)
		rev, err := r.pollScope(ctx, delivering, l, s)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			r.tel.recordState(ctx, s, stateRetrying)
			errs = append(errs, r.classify(ctx, s, "list", err))
			continue
		case rev != 0:
			marked = append(marked, fmt.Sprintf("%s@%d", s.id(), rev))
		}
		r.tel.recordState(ctx, s, stateIdle)
	}
	r.logMarked(marked)
	return errors.Join(errs...)
}

// pollScope syncs one scope. On the first poll of a scope with start_at end
// it only learns where the stored Events end, and returns that revision.
func (r *eventsReceiver) pollScope(ctx, delivering context.Context, l *lister, s scope) (marked uint64, err error) {
	cur, ok := r.positions[s.id()]
	if !ok {
		if r.cfg.StartAt == StartAtEnd {
			marked, err := r.markEnd(ctx, l, s)
			if err != nil {
				return 0, err
			}
			r.positions[s.id()] = marked
			return marked.Mark, nil
		}
		cur = &cursor{}
		r.positions[s.id()] = cur
	}
	return 0, l.sync(ctx, s, cur, func(events []corev1.Event) error { return r.deliver(delivering, events) })
}
