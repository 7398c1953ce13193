package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"fmt"
	"net"
	"os"

	"go.opentelemetry.io/collector/receiver"
	"k8s.io/client-go/kubernetes"
	k8smetadata "k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents/internal/metadata"
)

// userAgent identifies the receiver and its own version first, whatever
// distribution it is built into, then that distribution and the component ID:
// "k8seventsreceiver/0.1.0 otelcol-k8sevents/0.1.0 (k8sevents/prod)".
func userAgent(set receiver.Settings) string {
	ua := metadata.UserAgentProduct + "/" + metadata.Version
	if bi := set.BuildInfo; bi.Command != "" {
		ua += " " + bi.Command
		if bi.Version != "" {
			ua += "/" + bi.Version
		}
	}
	return ua + " (" + set.ID.String() + ")"
}

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

// newMetadataClient is the client of lookups (extract): the metadata API,
// which returns only an object's metadata, in protobuf, with its own
// client-side rate limit.
func newMetadataClient(cfg *Config, userAgent string) (k8smetadata.Interface, error) {
	rc, err := restConfig(cfg, userAgent)
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = lookupQPS, lookupBurst
	client, err := k8smetadata.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("create kubernetes metadata client: %w", err)
	}
	return client, nil
}
