// Package metadata holds the identity of the k8sevents_aggregate processor:
// what mdatagen would generate from a metadata.yaml, written by hand because
// mdatagen cannot be downloaded here.
package metadata // import "github.com/k8sevents/otelcol-k8sevents/processor/k8seventsaggregate/internal/metadata"

import "go.opentelemetry.io/collector/component"

var (
	// Type is the processor's component type, the key used in collector YAML.
	Type = component.MustNewType("k8sevents_aggregate")
	// ScopeName is the instrumentation scope of the summary records and of
	// the processor's own metrics.
	ScopeName = "github.com/k8sevents/otelcol-k8sevents/processor/k8seventsaggregate"
)

// LogsStability is the stability of the logs signal.
const LogsStability = component.StabilityLevelAlpha
