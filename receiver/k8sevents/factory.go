package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents/internal/metadata"
)

// NewFactory returns the factory of the k8sevents receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		func() component.Config { return createDefaultConfig() },
		receiver.WithLogs(createLogs, metadata.LogsStability),
	)
}

// createLogs builds the receiver; it touches no network (Start does).
func createLogs(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	return newReceiver(set, cfg.(*Config), next)
}
