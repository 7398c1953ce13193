package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// scope is one list the receiver runs on every poll: one namespace, or every
// namespace ("") less the excluded ones.
type scope struct {
	namespace     string
	fieldSelector string
}

// scopesOf returns the lists a poll runs (and the watches of watch mode):
// one per configured namespace, or one cluster-wide list with the exclusions
// as a server-side field selector. field_selector is added to each.
func scopesOf(cfg *Config) []scope {
	if len(cfg.Namespaces) == 0 {
		terms := make([]string, 0, len(cfg.ExcludeNamespaces)+1)
		for _, ns := range cfg.ExcludeNamespaces {
			terms = append(terms, "metadata.namespace!="+ns)
		}
		if cfg.FieldSelector != "" {
			terms = append(terms, cfg.FieldSelector)
		}
		return []scope{{fieldSelector: strings.Join(terms, ",")}}
	}
	scopes := make([]scope, len(cfg.Namespaces))
	for i, ns := range cfg.Namespaces {
		scopes[i] = scope{namespace: ns, fieldSelector: cfg.FieldSelector}
	}
	return scopes
}

// id names the scope in the position, logs and errors.
func (s scope) id() string {
	if s.namespace == "" {
		return "*"
	}
	return s.namespace
}

func (s scope) describe() string {
	if s.namespace == "" {
		return "events in all namespaces"
	}
	return fmt.Sprintf("events in namespace %q", s.namespace)
}

// deliverFunc hands a page's changed Events to the pipeline, with a context
// of its own (a page being delivered may finish after polling stopped). A
// non-nil error means they were not delivered and the cursor must stay
// where it is.
type deliverFunc func(events []corev1.Event) error

// errDeliver marks a failure of the next consumer, as opposed to the API.
type errDeliver struct{ err error }

func (e errDeliver) Error() string { return "deliver events: " + e.err.Error() }
func (e errDeliver) Unwrap() error { return e.err }

// maxRelists bounds how often one poll restarts a list whose continue token
// expired, so a server that expires every token cannot hold the poll forever.
const maxRelists = 5

// lister reads the Events of a scope page by page and delivers each page's
// changes; it holds one page at a time.
type lister struct {
	client   kubernetes.Interface
	pageSize int64
	logger   *zap.Logger
	tel      *telemetry
	// moved runs after the cursor moved past a delivered page; the receiver
	// hands the resume point on there.
	moved func(ctx context.Context, s scope, cur *cursor)
}

// newLister is the lister of the receiver's scopes; moved is called after
// each page that moved a cursor.
func (r *eventsReceiver) newLister(moved func(ctx context.Context, s scope, cur *cursor)) *lister {
	return &lister{client: r.client, pageSize: r.cfg.PageSize, logger: r.settings.Logger, tel: r.tel, moved: moved}
}

// mark reads only the scope's current revision: a list of one item, whose
// list resourceVersion is the revision of the whole snapshot.
func (l *lister) mark(ctx context.Context, s scope) (uint64, error) {
	list, err := l.client.CoreV1().Events(s.namespace).List(ctx, metav1.ListOptions{Limit: 1, FieldSelector: s.fieldSelector})
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", s.describe(), err)
	}
	l.tel.pages.Add(ctx, 1, l.tel.attrs)
	rev, ok := parseRevision(list.ResourceVersion)
	if !ok {
		return 0, fmt.Errorf("list %s: resourceVersion %q is not a revision number", s.describe(), list.ResourceVersion)
	}
	return rev, nil
}

// sync lists the scope and delivers every Event changed since the cursor,
// moving the cursor after each delivered page. When a continue token expires
// part way, it lists again from the start; the cursor makes the second list
// skip what the first one delivered.
func (l *lister) sync(ctx context.Context, s scope, cur *cursor, deliver deliverFunc) error {
	for relists := 0; ; relists++ {
		err := l.syncOnce(ctx, s, cur, deliver)
		if err == nil || !isExpired(err) || relists == maxRelists {
			return err
		}
		l.tel.relists.Add(ctx, 1, l.tel.attrs)
		l.logger.Info("Continue token expired; listing again from the start without repeating what was delivered",
			zap.String("scope", s.id()), zap.Error(err))
	}
}

func (l *lister) syncOnce(ctx context.Context, s scope, cur *cursor, deliver deliverFunc) error {
	opts := metav1.ListOptions{Limit: l.pageSize, FieldSelector: s.fieldSelector}
	var listRev uint64
	for {
		list, err := l.client.CoreV1().Events(s.namespace).List(ctx, opts)
		if err != nil {
			return fmt.Errorf("list %s: %w", s.describe(), err)
		}
		l.tel.pages.Add(ctx, 1, l.tel.attrs)
		if listRev == 0 {
			rev, ok := parseRevision(list.ResourceVersion)
			if !ok {
				return fmt.Errorf("list %s: resourceVersion %q is not a revision number", s.describe(), list.ResourceVersion)
			}
			listRev = rev // every page of a list comes from the first page's snapshot
			if latest := cur.latest(); rev < latest {
				// Revisions only grow, so the resume point was not written
				// by this etcd's history: a repeat is better than a loss.
				l.logger.Warn("The API server's revision is behind the checkpoint (etcd restored from a backup, or another cluster?); delivering the stored Events of the scope again",
					zap.String("scope", s.id()), zap.Uint64("revision", rev), zap.Uint64("checkpoint_revision", latest))
				*cur = cursor{}
			}
		}
		changed := changedSince(list.Items, cur)
		if len(changed) > 0 {
			if err := ctx.Err(); err != nil {
				return err // shut down, or the lease was lost: deliver nothing more
			}
			if err := deliver(changed); err != nil {
				return errDeliver{err: err}
			}
		}
		if list.Continue == "" {
			cur.complete(listRev)
			l.moved(ctx, s, cur)
			return nil
		}
		if n := len(list.Items); n > 0 {
			last := &list.Items[n-1]
			cur.advance(eventKey(last.Namespace, last.Name), listRev)
			l.moved(ctx, s, cur)
		}
		opts.Continue = list.Continue
	}
}

// changedSince keeps, in place, the Events changed after the cursor. An Event
// whose resourceVersion is not a number cannot be placed, so it is kept:
// a repeat is better than a loss.
func changedSince(items []corev1.Event, cur *cursor) []corev1.Event {
	changed := items[:0]
	for i := range items {
		rev, ok := parseRevision(items[i].ResourceVersion)
		if ok && rev <= cur.deliveredUpTo(eventKey(items[i].Namespace, items[i].Name)) {
			continue
		}
		changed = append(changed, items[i])
	}
	return changed
}

// isExpired reports a 410 Gone, which is how the API server says a continue
// token is too old.
func isExpired(err error) bool {
	var de errDeliver
	if errors.As(err, &de) {
		return false
	}
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
}
