// Package metadata holds the identity of the k8sevents receiver: what mdatagen
// would generate from a metadata.yaml, written by hand because mdatagen cannot
// be downloaded here.
package metadata // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents/internal/metadata"

import "go.opentelemetry.io/collector/component"

var (
	// Type is the receiver's component type, the key used in collector YAML.
	Type = component.MustNewType("k8sevents")
	// ScopeName is the instrumentation scope of the emitted logs and of the
	// receiver's own metrics.
	ScopeName = "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"
)

// LogsStability is the stability of the logs signal.
const LogsStability = component.StabilityLevelAlpha
