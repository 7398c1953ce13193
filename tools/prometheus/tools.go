//go:build tools

// Package prometheus pins the Prometheus server (and promtool, which checks
// the shipped rules) that the end-to-end tests scrape the collector with. It
// is a module of its own so that the project's go.mod never depends on
// Prometheus and its large dependency graph.
package prometheus

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
