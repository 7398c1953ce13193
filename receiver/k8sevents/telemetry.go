package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

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
	attrs        metric.MeasurementOption
}

var (
	outcomeSuccess = attribute.String("outcome", "success")
	outcomeFailure = attribute.String("outcome", "failure")
)

func newTelemetry(set component.TelemetrySettings, id component.ID) (*telemetry, error) {
	meter := set.MeterProvider.Meter(metadata.ScopeName)
	t := &telemetry{attrs: metric.WithAttributes(attribute.String("receiver", id.String()))}
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
		metric.WithDescription("Failed list requests and deliveries, by kind (list, forbidden, consume)."), metric.WithUnit("{error}"))
	errs = errors.Join(errs, err)
	t.relists, err = meter.Int64Counter("otelcol_receiver_k8sevents_relists",
		metric.WithDescription("Lists restarted because their continue token expired (410 Gone)."), metric.WithUnit("{relist}"))
	errs = errors.Join(errs, err)
	t.checkpoints, err = meter.Int64Counter("otelcol_receiver_k8sevents_checkpoint_writes",
		metric.WithDescription("Writes of the resume point (storage or checkpoint), by outcome."), metric.WithUnit("{write}"))
	errs = errors.Join(errs, err)
	t.leader, err = meter.Int64Gauge("otelcol_receiver_k8sevents_leader",
		metric.WithDescription("1 while this replica holds the leader_election Lease and polls, else 0; only with leader_election."), metric.WithUnit("1"))
	errs = errors.Join(errs, err)
	return t, errs
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
