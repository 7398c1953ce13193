package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"fmt"
	"net"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// restConfig builds the client configuration for the configured auth_type.
// Lists ask for protobuf, the API server's cheapest encoding.
func restConfig(cfg *Config, userAgent string) (*rest.Config, error) {
	var (
		rc  *rest.Config
		err error
	)
	switch cfg.AuthType {
	case AuthTypeKubeConfig:
		rules := clientcmd.NewDefaultClientConfigLoadingRules() // KUBECONFIG, then ~/.kube/config
		overrides := &clientcmd.ConfigOverrides{CurrentContext: cfg.Context}
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("load kubeconfig: %w", err)
		}
	case AuthTypeNone:
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, fmt.Errorf("auth_type none: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")
		}
		rc = &rest.Config{
			Host:            "https://" + net.JoinHostPort(host, port),
			TLSClientConfig: rest.TLSClientConfig{CAFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"},
		}
	default: // AuthTypeServiceAccount
		rc, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("load in-cluster config (auth_type %s): %w", AuthTypeServiceAccount, err)
		}
	}
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	rc.UserAgent = userAgent
	return rc, nil
}

func newClient(cfg *Config, userAgent string) (kubernetes.Interface, error) {
	rc, err := restConfig(cfg, userAgent)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("create kubernetes client: %w", err)
	}
	return client, nil
}
