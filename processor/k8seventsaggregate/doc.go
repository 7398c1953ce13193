// Package k8seventsaggregate is an OpenTelemetry Collector processor that
// aggregates repeated Kubernetes Events: per key (namespace, involved object
// kind and reason by default) the first record of a window passes, the rest
// are counted, and a summary record closes the window.
package k8seventsaggregate // import "github.com/k8sevents/otelcol-k8sevents/processor/k8seventsaggregate"
