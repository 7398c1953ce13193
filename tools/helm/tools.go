//go:build tools

// Package helm pins the helm binary that the chart's tests run (helm lint,
// template, install, upgrade, uninstall). It is a module of its own so that
// the project's go.mod never depends on Helm and its dependency graph.
package helm

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
