package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// AuthType says how the receiver authenticates to the Kubernetes API.
type AuthType string

const (
	// AuthTypeServiceAccount uses the pod's ServiceAccount token and the
	// in-cluster API address (KUBERNETES_SERVICE_HOST/PORT).
	AuthTypeServiceAccount AuthType = "serviceAccount"
	// AuthTypeKubeConfig uses the file named by KUBECONFIG, or ~/.kube/config.
	AuthTypeKubeConfig AuthType = "kubeConfig"
	// AuthTypeNone connects to the in-cluster API address with no credentials.
	AuthTypeNone AuthType = "none"
)

// StartAt says which Events the receiver emits on its first poll.
type StartAt string

const (
	// StartAtEnd emits only Events that appear or change after the receiver starts.
	StartAtEnd StartAt = "end"
	// StartAtBeginning also emits the Events already stored when it starts.
	StartAtBeginning StartAt = "beginning"
)

// Defaults of the fields below.
const (
	defaultInterval = time.Minute
	defaultPageSize = 500
	// maxPageSize keeps one page, the most the receiver holds at once, bounded.
	maxPageSize = 10000
)

// Config is what users set under `receivers: k8sevents:` in collector YAML.
type Config struct {
	// AuthType is how to authenticate: serviceAccount, kubeConfig or none.
	// Default: serviceAccount.
	AuthType AuthType `mapstructure:"auth_type"`
	// Context is the kubeconfig context to use with auth_type kubeConfig.
	// Default: the kubeconfig's current context.
	Context string `mapstructure:"context"`
	// Namespaces are the namespaces whose Events are read. Empty means all
	// namespaces, read with one cluster-wide list. Default: empty.
	Namespaces []string `mapstructure:"namespaces"`
	// ExcludeNamespaces are left out when reading all namespaces (filtered by the
	// API server with a field selector). Not allowed together with namespaces.
	// Default: empty.
	ExcludeNamespaces []string `mapstructure:"exclude_namespaces"`
	// Interval is the time between the starts of two polls. Default: 1m.
	Interval time.Duration `mapstructure:"interval"`
	// PageSize is the number of Events asked for in one list request, and so
	// the most the receiver holds in memory at once. Default: 500.
	PageSize int64 `mapstructure:"page_size"`
	// StartAt is which Events the first poll emits: end (only those that
	// appear or change after the start) or beginning (also those already
	// stored). Default: end.
	StartAt StartAt `mapstructure:"start_at"`
	// ClusterName, when set, is emitted as the resource attribute
	// k8s.cluster.name. Default: empty (not emitted).
	ClusterName string `mapstructure:"cluster_name"`

	// prevent unkeyed literal initialization
	_ struct{}
}

func createDefaultConfig() *Config {
	return &Config{
		AuthType: AuthTypeServiceAccount,
		Interval: defaultInterval,
		PageSize: defaultPageSize,
		StartAt:  StartAtEnd,
	}
}

// Validate checks the configuration without touching the network. Every
// message names the YAML key and what is allowed.
func (cfg *Config) Validate() error {
	var errs []error
	switch cfg.AuthType {
	case AuthTypeServiceAccount, AuthTypeKubeConfig, AuthTypeNone:
	default:
		errs = append(errs, fmt.Errorf("auth_type: %q is not supported; use one of %s, %s, %s",
			cfg.AuthType, AuthTypeServiceAccount, AuthTypeKubeConfig, AuthTypeNone))
	}
	if cfg.Context != "" && cfg.AuthType != AuthTypeKubeConfig {
		errs = append(errs, fmt.Errorf("context: is only used with auth_type %s, not %q", AuthTypeKubeConfig, cfg.AuthType))
	}
	errs = append(errs, validateNamespaces("namespaces", cfg.Namespaces)...)
	errs = append(errs, validateNamespaces("exclude_namespaces", cfg.ExcludeNamespaces)...)
	if len(cfg.Namespaces) > 0 && len(cfg.ExcludeNamespaces) > 0 {
		errs = append(errs, errors.New("exclude_namespaces: only applies when reading all namespaces; leave namespaces empty or drop exclude_namespaces"))
	}
	if cfg.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval: must be a positive duration such as 10s or 1m, got %v", cfg.Interval))
	}
	if cfg.PageSize <= 0 || cfg.PageSize > maxPageSize {
		errs = append(errs, fmt.Errorf("page_size: must be between 1 and %d, got %d", maxPageSize, cfg.PageSize))
	}
	switch cfg.StartAt {
	case StartAtEnd, StartAtBeginning:
	default:
		errs = append(errs, fmt.Errorf("start_at: %q is not supported; use %s or %s", cfg.StartAt, StartAtEnd, StartAtBeginning))
	}
	return errors.Join(errs...)
}

func validateNamespaces(key string, namespaces []string) []error {
	var errs []error
	seen := make(map[string]bool, len(namespaces))
	for i, ns := range namespaces {
		if problems := validation.IsDNS1123Label(ns); len(problems) > 0 {
			errs = append(errs, fmt.Errorf("%s[%d]: %q is not a valid namespace name: %s", key, i, ns, strings.Join(problems, "; ")))
			continue
		}
		if seen[ns] {
			errs = append(errs, fmt.Errorf("%s[%d]: %q is listed twice", key, i, ns))
		}
		seen[ns] = true
	}
	return errs
}
