package k8seventsaggregate // import "github.com/k8sevents/otelcol-k8sevents/processor/k8seventsaggregate"

import (
	"context"
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/k8sevents/otelcol-k8sevents/processor/k8seventsaggregate/internal/metadata"
)

// telemetry holds the processor's own metrics.
type telemetry struct {
	aggregated metric.Int64Counter
	summaries  metric.Int64Counter
	attrs      metric.MeasurementOption
}

var (
	outcomeSuccess = attribute.String("outcome", "success")
	outcomeFailure = attribute.String("outcome", "failure")
)

func newTelemetry(set component.TelemetrySettings, id component.ID) (*telemetry, error) {
	meter := set.MeterProvider.Meter(metadata.ScopeName)
	t := &telemetry{attrs: metric.WithAttributes(attribute.String("processor", id.String()))}
	var err, errs error
	t.aggregated, err = meter.Int64Counter("otelcol_processor_k8sevents_aggregate_aggregated_records",
		metric.WithDescription("Log records counted into a window's summary instead of passed on."), metric.WithUnit("{record}"))
	errs = errors.Join(errs, err)
	t.summaries, err = meter.Int64Counter("otelcol_processor_k8sevents_aggregate_summaries",
		metric.WithDescription("Summary records sent when windows closed, by outcome."), metric.WithUnit("{record}"))
	errs = errors.Join(errs, err)
	return t, errs
}

func (t *telemetry) recordAggregated(ctx context.Context, n int64) {
	if n > 0 {
		t.aggregated.Add(ctx, n, t.attrs)
	}
}

func (t *telemetry) recordSummaries(ctx context.Context, n int64, err error) {
	outcome := outcomeSuccess
	if err != nil {
		outcome = outcomeFailure
	}
	t.summaries.Add(ctx, n, t.attrs, metric.WithAttributes(outcome))
}
