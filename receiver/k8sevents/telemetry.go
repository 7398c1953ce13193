package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	corev1 "k8s.io/api/core/v1"

	"github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents/internal/metadata"
)

// telemetry holds the receiver's own metrics, next to the standard
// otelcol_receiver_accepted/refused_log_records that receiverhelper records.
type telemetry struct {
	polls        metric.Int64Counter
	pollDuration metric.Float64Histogram
	pages        metric.Int64Counter
	errors       metric.Int64Counter
	relists      metric.Int64Counter
	checkpoints  metric.Int64Counter
	leader       metric.Int64Gauge
	delay        metric.Float64Histogram
	restarts     metric.Int64Counter
	scopeState   metric.Int64Gauge
	lookups      metric.Int64Counter
	cacheHits    metric.Int64Counter
	lookupLate   metric.Int64Counter
	cacheSize    metric.Int64Gauge
	ruleMatches  metric.Int64Counter
	ruleDrops    metric.Int64Counter
	attrs        metric.MeasurementOption

	statesMu sync.Mutex
	// states is the state last recorded for each scope.
	states map[string]string
}

// delayBuckets are the bounds of the delay histogram, in seconds: from a
// watch's fraction of a second to a poll's minutes and a backlog's hour.
var delayBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600}

// Scope states, the values of the scope_state gauge's state: listing (a
// list runs), streaming (watch mode: a watch is open), idle (poll mode: the
// last poll succeeded and the next one is due) and retrying (the last list or
// watch failed, or got no answer, and is tried again after a back-off).
const (
	stateListing   = "listing"
	stateStreaming = "streaming"
	stateIdle      = "idle"
	stateRetrying  = "retrying"
)

var scopeStates = []string{stateListing, stateStreaming, stateIdle, stateRetrying}

var (
	outcomeSuccess = attribute.String("outcome", "success")
	outcomeFailure = attribute.String("outcome", "failure")
)

func newTelemetry(set component.TelemetrySettings, id component.ID) (*telemetry, error) {
	meter := set.MeterProvider.Meter(metadata.ScopeName)
	t := &telemetry{attrs: metric.WithAttributes(attribute.String("receiver", id.String())), states: make(map[string]string)}
	var err, errs error
	t.polls, err = meter.Int64Counter("otelcol_receiver_k8sevents_polls",
		metric.WithDescription("Polls of the Kubernetes API, by outcome."), metric.WithUnit("{poll}"))
	errs = errors.Join(errs, err)
	t.pollDuration, err = meter.Float64Histogram("otelcol_receiver_k8sevents_poll_duration",
		metric.WithDescription("Time a poll took, from its first list request to its last delivery."), metric.WithUnit("s"))
	errs = errors.Join(errs, err)
	t.pages, err = meter.Int64Counter("otelcol_receiver_k8sevents_list_pages",
		metric.WithDescription("Pages of Events read from the Kubernetes API."), metric.WithUnit("{page}"))
	errs = errors.Join(errs, err)
	t.errors, err = meter.Int64Counter("otelcol_receiver_k8sevents_errors",
		metric.WithDescription("Failed list and watch requests and deliveries, by kind (list, watch, forbidden, consume), and requests of any kind that got no answer within request_timeout (timeout)."), metric.WithUnit("{error}"))
	errs = errors.Join(errs, err)
	t.relists, err = meter.Int64Counter("otelcol_receiver_k8sevents_relists",
		metric.WithDescription("Lists restarted because their continue token expired (410 Gone)."), metric.WithUnit("{relist}"))
	errs = errors.Join(errs, err)
	t.checkpoints, err = meter.Int64Counter("otelcol_receiver_k8sevents_checkpoint_writes",
		metric.WithDescription("Writes of the resume point (storage or checkpoint), by outcome."), metric.WithUnit("{write}"))
	errs = errors.Join(errs, err)
	t.leader, err = meter.Int64Gauge("otelcol_receiver_k8sevents_leader",
		metric.WithDescription("1 while this replica holds the leader_election Lease and reads Events, else 0; only with leader_election."), metric.WithUnit("1"))
	errs = errors.Join(errs, err)
	t.delay, err = meter.Float64Histogram("otelcol_receiver_k8sevents_delivery_delay",
		metric.WithDescription("Time from when an Event last happened (the record's timestamp) to its hand-off to the next consumer."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(delayBuckets...))
	errs = errors.Join(errs, err)
	t.restarts, err = meter.Int64Counter("otelcol_receiver_k8sevents_watch_restarts",
		metric.WithDescription("Watches started again, by cause (timeout, gone, error, stall, refused); watch mode only."), metric.WithUnit("{restart}"))
	errs = errors.Join(errs, err)
	t.scopeState, err = meter.Int64Gauge("otelcol_receiver_k8sevents_scope_state",
		metric.WithDescription("1 for the state each scope is in (listing, streaming, idle, retrying), 0 for the others."), metric.WithUnit("1"))
	errs = errors.Join(errs, err)
	t.lookups, err = meter.Int64Counter("otelcol_receiver_k8sevents_lookups",
		metric.WithDescription("Involved objects and owners looked up with the API server (extract), one GET each (two when a 404 or another UID from the watch cache is confirmed with etcd), by resource and outcome (found, not_found, forbidden, error)."), metric.WithUnit("{lookup}"))
	errs = errors.Join(errs, err)
	t.cacheHits, err = meter.Int64Counter("otelcol_receiver_k8sevents_lookup_cache_hits",
		metric.WithDescription("Lookups of involved objects and their owners answered without a request of their own: from the cache, or by the request already in flight for the object; by resource."), metric.WithUnit("{lookup}"))
	errs = errors.Join(errs, err)
	t.lookupLate, err = meter.Int64Counter("otelcol_receiver_k8sevents_lookup_timeouts",
		metric.WithDescription("Involved objects whose lookups were not answered before their page's deadline: their records went out without what the lookups would add."), metric.WithUnit("{object}"))
	errs = errors.Join(errs, err)
	t.cacheSize, err = meter.Int64Gauge("otelcol_receiver_k8sevents_lookup_cache_size",
		metric.WithDescription("Objects in the lookup cache (at most extract::cache::size)."), metric.WithUnit("{object}"))
	errs = errors.Join(errs, err)
	t.ruleMatches, err = meter.Int64Counter("otelcol_receiver_k8sevents_rule_matches",
		metric.WithDescription("Events that a rule decided (the first rule that matched), dropped ones included, by rule."), metric.WithUnit("{event}"))
	errs = errors.Join(errs, err)
	t.ruleDrops, err = meter.Int64Counter("otelcol_receiver_k8sevents_rule_drops",
		metric.WithDescription("Events that a rule with drop: true left out (no record was emitted), by rule."), metric.WithUnit("{event}"))
	errs = errors.Join(errs, err)
	return t, errs
}

// Error kinds, the values of the errors counter's kind.
var errorKinds = []string{"list", "watch", "forbidden", "consume", kindTimeout}

// watchCauses are the causes of watch restarts, the values of the
// watch_restarts counter's cause.
var watchCauses = []string{causeTimeout, causeGone, causeError, causeStall, causeRefused}

// zero adds 0 to the counters of failures that mode can count, so that
// their series exist from the start: Prometheus' increase() and rate() see
// the first error of a process only when the series had a sample before it.
func (t *telemetry) zero(ctx context.Context, mode Mode) {
	kinds := errorKinds
	if mode == ModeWatch {
		for _, cause := range watchCauses {
			t.restarts.Add(ctx, 0, t.attrs, metric.WithAttributes(attribute.String("cause", cause)))
		}
	} else {
		kinds = slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return k == "watch" })
		for _, outcome := range []attribute.KeyValue{outcomeSuccess, outcomeFailure} {
			t.polls.Add(ctx, 0, t.attrs, metric.WithAttributes(outcome))
		}
	}
	for _, kind := range kinds {
		t.errors.Add(ctx, 0, t.attrs, metric.WithAttributes(attribute.String("kind", kind)))
	}
	t.relists.Add(ctx, 0, t.attrs)
}

func (t *telemetry) recordLookup(ctx context.Context, resource, outcome string) {
	t.lookups.Add(ctx, 1, t.attrs, metric.WithAttributes(attribute.String("resource", resource), attribute.String("outcome", outcome)))
}

func (t *telemetry) recordCacheHit(ctx context.Context, resource string) {
	t.cacheHits.Add(ctx, 1, t.attrs, metric.WithAttributes(attribute.String("resource", resource)))
}

// recordLookupPage records, after a page's lookups, how many objects were
// not answered in time and how many the cache holds.
func (t *telemetry) recordLookupPage(ctx context.Context, late int64, cached int) {
	if late > 0 {
		t.lookupLate.Add(ctx, late, t.attrs)
	}
	t.cacheSize.Record(ctx, int64(cached), t.attrs)
}

func (t *telemetry) recordPoll(ctx context.Context, started time.Time, err error) {
	outcome := outcomeSuccess
	if err != nil {
		outcome = outcomeFailure
	}
	t.polls.Add(ctx, 1, t.attrs, metric.WithAttributes(outcome))
	t.pollDuration.Record(ctx, time.Since(started).Seconds(), t.attrs, metric.WithAttributes(outcome))
}

func (t *telemetry) recordError(ctx context.Context, kind string) {
	t.errors.Add(ctx, 1, t.attrs, metric.WithAttributes(attribute.String("kind", kind)))
}

func (t *telemetry) recordCheckpoint(ctx context.Context, err error) {
	outcome := outcomeSuccess
	if err != nil {
		outcome = outcomeFailure
	}
	t.checkpoints.Add(ctx, 1, t.attrs, metric.WithAttributes(outcome))
}

func (t *telemetry) recordLeader(ctx context.Context, leading bool) {
	var v int64
	if leading {
		v = 1
	}
	t.leader.Record(ctx, v, t.attrs)
}

// recordDelays records, for each Event handed on at handoff, how long after
// it last happened that was. Events without a usable time are left out.
func (t *telemetry) recordDelays(ctx context.Context, events []corev1.Event, handoff time.Time) {
	for i := range events {
		if last, ok := lastTime(&events[i]); ok {
			t.delay.Record(ctx, handoff.Sub(last).Seconds(), t.attrs)
		}
	}
}

// recordRules adds a page's matches (counts by index into rules, as
// converter.convert returns them) to the rule counters.
func (t *telemetry) recordRules(ctx context.Context, rules []rule, matches []int64) {
	for i, n := range matches {
		if n == 0 {
			continue
		}
		name := metric.WithAttributes(attribute.String("rule", rules[i].name))
		t.ruleMatches.Add(ctx, n, t.attrs, name)
		if rules[i].drop {
			t.ruleDrops.Add(ctx, n, t.attrs, name)
		}
	}
}

func (t *telemetry) recordRestart(ctx context.Context, cause string) {
	t.restarts.Add(ctx, 1, t.attrs, metric.WithAttributes(attribute.String("cause", cause)))
}

// recordState records that a scope is now in state.
func (t *telemetry) recordState(ctx context.Context, s scope, state string) {
	t.statesMu.Lock()
	t.states[s.id()] = state
	t.statesMu.Unlock()
	for _, st := range scopeStates {
		var v int64
		if st == state {
			v = 1
		}
		t.scopeState.Record(ctx, v, t.attrs, metric.WithAttributes(attribute.String("scope", s.id()), attribute.String("state", st)))
	}
}

// recordListing records that a list of the scope starts, unless the scope
// is retrying: it stays so until a list or watch succeeds, so that the
// gauge shows why Events stopped for as long as they do.
func (t *telemetry) recordListing(ctx context.Context, s scope) {
	t.statesMu.Lock()
	retrying := t.states[s.id()] == stateRetrying
	t.statesMu.Unlock()
	if !retrying {
		t.recordState(ctx, s, stateListing)
	}
}
