package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Every request to the API server but a watch stream has a deadline,
// request_timeout: the requests client carries it (see clients), and a watch
// request waits that long for its answer before its stream starts. A
// connection that went silent (a NAT or load balancer that lost its flow,
// with no FIN and no RST) then costs one request_timeout, not the receiver.
// What follows is the same for every kind of request: the failure is logged
// as "no answer from the API server in 30s" with the verb, counted as a
// timeout, the idle connections are closed so that the retry dials a new
// one, and the request is retried with the usual back-off from where the
// cursor stands.

// kindTimeout is the kind of the errors metric for a request that got no
// answer within its deadline.
const kindTimeout = "timeout"

// errNoAnswer is a request to the API server that got no answer within its
// deadline.
type errNoAnswer struct {
	// op says what was asked, in the words of the other errors:
	// "list events in all namespaces".
	op     string
	verb   string
	within time.Duration
	err    error
}

func (e errNoAnswer) Error() string {
	return fmt.Sprintf("%s: no answer from the API server in %v", e.op, e.within)
}

func (e errNoAnswer) Unwrap() error { return e.err }

// noAnswer reports whether err ended a request because the request's own
// deadline passed while ctx, the context it was made with, still lasted:
// not a shutdown, a lost Lease or a shorter deadline of the caller. A
// failure of the next consumer is never one.
func noAnswer(ctx context.Context, err error) bool {
	var de errDeliver
	return err != nil && ctx.Err() == nil && !errors.As(err, &de) && errors.Is(err, context.DeadlineExceeded)
}

// requestDeadline is request_timeout and what follows a request that ran
// out of it.
type requestDeadline struct {
	timeout time.Duration
	// expired runs once per request that got no answer.
	expired func()
}

// deadline is the receiver's request_timeout: a request that runs out of it
// is counted (errors, kind timeout), and the idle connections are closed,
// so that the retry does not wait on one as dead as the request's.
func (r *eventsReceiver) deadline() requestDeadline {
	return requestDeadline{timeout: r.cfg.RequestTimeout, expired: func() {
		r.tel.recordError(context.Background(), kindTimeout)
		r.redial()
	}}
}

// check returns err as it is, or, when the request's deadline ended it (see
// noAnswer), an errNoAnswer for op in its place.
func (d requestDeadline) check(ctx context.Context, op, verb string, err error) error {
	var na errNoAnswer
	if !noAnswer(ctx, err) || errors.As(err, &na) {
		return err
	}
	if d.expired != nil {
		d.expired()
	}
	return errNoAnswer{op: op, verb: verb, within: d.timeout, err: err}
}
