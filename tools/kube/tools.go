//go:build tools

// Package kube pins the Kubernetes binaries the tests run: kube-apiserver,
// kube-controller-manager and kube-scheduler for the control plane, the
// kubelet for the node, and kubectl to apply the deploy/ manifests. It is a
// module of its own so that the project's go.mod never depends on
// k8s.io/kubernetes.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
