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

// Version is the release of the module github.com/k8sevents/otelcol-k8sevents
// that this receiver belongs to (git tag "v" + Version). It is the one place
// the version is written in code: the receiver's user agent carries it in any
// distribution, and tests hold builder-config.yaml (dist.version and the
// module's own gomod), CHANGELOG.md and both READMEs to it.
const Version = "0.1.0"

// UserAgentProduct names the receiver in the user agent of its API requests,
// as Kubernetes audit logs show it: UserAgentProduct/Version.
const UserAgentProduct = "k8seventsreceiver"
