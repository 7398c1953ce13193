//go:build tools

// Package loki pins the Grafana Loki binary the end-to-end tests send logs to.
// It is a module of its own so that the project's go.mod never depends on
// Loki and its large dependency graph.
package loki

import (
	_ "github.com/grafana/loki/v3/cmd/loki"
)
