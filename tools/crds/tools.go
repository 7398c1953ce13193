//go:build tools

// Package crds pins controller-gen and the Prometheus Operator's API types
// from which `make crds` generates the CRDs of the ServiceMonitor and the
// PrometheusRule, for the chart's server-side dry run. It is a module of its
// own so that the project's go.mod never depends on either.
package crds

import (
	_ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
