//go:build tools

// Package kube pins the control-plane binaries the end-to-end tests run:
// kube-apiserver, kube-controller-manager and kube-scheduler. It is a module of
// its own so that the project's go.mod never depends on k8s.io/kubernetes.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
