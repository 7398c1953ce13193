package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"slices"
	"strconv"
)

// cursor is how far the receiver has delivered the Events of one list scope
// (one namespace, or all of them), without remembering any Event.
//
// It rests on two facts of the API server: every change of an object gets a
// resourceVersion greater than all before it (an etcd revision), and a list
// returns one snapshot, at the list's resourceVersion, in key order
// ("namespace/name"), page after page.
//
// A watch from Mark returns every change after Mark in revision order, so
// once a watch has passed revision R (a delivered batch, a bookmark), Mark
// moves to R.
//
// After a complete list at revision R, Mark is R: every change up to R has
// been delivered, so the next list emits exactly the Events whose
// resourceVersion is above R. When a list stops part way (the next consumer
// refused a page, or the continue token expired), the pages already delivered
// are recorded as a step: Events with keys up to Step.Key have been delivered
// up to Step.Rev, the rest only up to Mark. A later list from the start then
// skips what was delivered and emits the rest, so nothing is lost or repeated.
type cursor struct {
	// Mark is the revision up to which every Event in the scope was delivered.
	Mark uint64 `json:"mark"`
	// Steps, in increasing key order and decreasing revision, record lists
	// that stopped part way: keys up to Steps[i].Key were delivered up to
	// Steps[i].Rev (and past the earlier steps' keys, see above).
	Steps []step `json:"steps,omitempty"`
}

type step struct {
	Key string `json:"key"`
	Rev uint64 `json:"rev"`
}

// deliveredUpTo is the revision up to which the Event with this key has been
// delivered.
func (c *cursor) deliveredUpTo(key string) uint64 {
	for _, s := range c.Steps {
		if key <= s.Key {
			return s.Rev
		}
	}
	return c.Mark
}

// advance records that every Event with a key up to lastKey has been
// delivered as of the list at revision rev.
func (c *cursor) advance(lastKey string, rev uint64) {
	if rev <= c.Mark {
		return // nothing above the mark was listed: a step would only churn the checkpoint
	}
	i := 0
	for i < len(c.Steps) && c.Steps[i].Key <= lastKey {
		i++
	}
	steps := make([]step, 0, len(c.Steps)-i+1)
	steps = append(steps, step{Key: lastKey, Rev: rev})
	c.Steps = append(steps, c.Steps[i:]...)
}

// complete records a list at revision rev that was delivered to its end.
func (c *cursor) complete(rev uint64) {
	c.Mark = rev
	c.Steps = nil
}

// watched records that a watch from Mark has passed revision rev: every
// change up to rev has been delivered, or skipped because a step covers it.
// Steps above rev still say more than Mark does, so they stay.
func (c *cursor) watched(rev uint64) {
	if rev <= c.Mark {
		return
	}
	c.Mark = rev
	i := 0
	for i < len(c.Steps) && c.Steps[i].Rev > rev {
		i++ // steps go down in revision as their keys go up
	}
	if i == 0 {
		c.Steps = nil
		return
	}
	c.Steps = slices.Clone(c.Steps[:i])
}

// clone is a copy that shares nothing with c.
func (c *cursor) clone() cursor {
	return cursor{Mark: c.Mark, Steps: slices.Clone(c.Steps)}
}

// latest is the highest revision the cursor has delivered up to.
func (c *cursor) latest() uint64 {
	if len(c.Steps) > 0 {
		return max(c.Mark, c.Steps[0].Rev)
	}
	return c.Mark
}

// eventKey is the key the API server orders a list by.
func eventKey(namespace, name string) string {
	return namespace + "/" + name
}

// parseRevision reads a resourceVersion. The API documents it as opaque, but
// every etcd-backed server, which is every real one, uses the etcd revision.
func parseRevision(rv string) (uint64, bool) {
	n, err := strconv.ParseUint(rv, 10, 64)
	return n, err == nil
}
