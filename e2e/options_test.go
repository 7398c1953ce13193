package e2e

import (
	"io"
	"os"

	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
)

// kubeOptions is the control plane of tests that create Events directly:
// etcd and kube-apiserver only.
func kubeOptions() kubetest.Options {
	return kubetest.Options{Logs: testLogs()}
}

// testLogs copies the control plane's output to stderr when
// K8SEVENTS_E2E_VERBOSE is set, and nowhere else otherwise (the logs are
// always in the control plane's directory and shown when a test fails).
func testLogs() io.Writer {
	if os.Getenv("K8SEVENTS_E2E_VERBOSE") != "" {
		return os.Stderr
	}
	return nil
}
