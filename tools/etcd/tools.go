//go:build tools

// Package etcd pins the etcd server the end-to-end tests run behind the local
// kube-apiserver. It is a module of its own so that neither the project nor
// the Kubernetes tool module has to agree with etcd's dependency versions.
package etcd

import _ "go.etcd.io/etcd/server/v3"
