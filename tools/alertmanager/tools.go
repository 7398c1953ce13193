//go:build tools

// Package alertmanager pins the Prometheus Alertmanager that the end-to-end
// tests send alerts to.
package alertmanager

import (
	_ "github.com/prometheus/alertmanager/cmd/alertmanager"
)
