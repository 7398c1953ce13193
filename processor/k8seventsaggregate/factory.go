package k8seventsaggregate // import "github.com/k8sevents/otelcol-k8sevents/processor/k8seventsaggregate"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"

	"github.com/k8sevents/otelcol-k8sevents/processor/k8seventsaggregate/internal/metadata"
)

// NewFactory returns the factory of the k8sevents_aggregate processor.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		metadata.Type,
		func() component.Config { return createDefaultConfig() },
		processor.WithLogs(createLogs, metadata.LogsStability),
	)
}

func createLogs(_ context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
	return newProcessor(set, cfg.(*Config), next)
}
