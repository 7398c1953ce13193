// Package k8sevents is an OpenTelemetry Collector receiver that reads the
// Events of the configured namespaces from the Kubernetes API, by polling or
// by watching, and emits each new or changed Event once, as an OTLP log record.
package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"
