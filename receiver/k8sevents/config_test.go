package k8sevents

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents/internal/metadata"
)

// loadConfig unmarshals one entry of testdata/config.yaml over the defaults,
// as the collector does.
func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return nil, err
	}
	return cfg, confmap.Validate(cfg)
}

func TestConfigValid(t *testing.T) {
	tests := []struct {
		name string
		want *Config
	}{
		{
			name: "",
			want: &Config{AuthType: AuthTypeServiceAccount, Interval: time.Minute, PageSize: 500, StartAt: StartAtEnd},
		},
		{
			name: "all_fields",
			want: &Config{
				AuthType: AuthTypeKubeConfig, Context: "kind-dev", Interval: 10 * time.Second, PageSize: 100,
				StartAt: StartAtBeginning, ClusterName: "prod-eu-1", ExcludeNamespaces: []string{"kube-system", "kube-public"},
			},
		},
		{
			name: "namespaces",
			want: &Config{AuthType: AuthTypeNone, Namespaces: []string{"default", "payments"}, Interval: time.Minute, PageSize: 500, StartAt: StartAtEnd},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(t, tt.name)
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg)
		})
	}
}

func TestConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		want []string // every message must appear
	}{
		{"bad_auth_type", []string{`auth_type: "token" is not supported; use one of serviceAccount, kubeConfig, none`}},
		{"context_without_kubeconfig", []string{`context: is only used with auth_type kubeConfig`}},
		{"zero_interval", []string{"interval: must be a positive duration", "got 0s"}},
		{"negative_interval", []string{"interval: must be a positive duration", "got -5s"}},
		{"bad_page_size", []string{"page_size: must be between 1 and 10000, got 0"}},
		{"huge_page_size", []string{"page_size: must be between 1 and 10000, got 100000"}},
		{"bad_start_at", []string{`start_at: "now" is not supported; use end or beginning`}},
		{"bad_namespace", []string{`namespaces[1]: "Not_A_Namespace" is not a valid namespace name`}},
		{"duplicate_namespace", []string{`namespaces[1]: "default" is listed twice`}},
		{"bad_exclude_namespace", []string{`exclude_namespaces[0]: "kube-system/" is not a valid namespace name`}},
		{"namespaces_and_exclude", []string{"exclude_namespaces: only applies when reading all namespaces"}},
		{"several_errors", []string{"auth_type:", "interval:", "start_at:"}},
		{"unknown_key", []string{"has invalid keys: namespace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(t, tt.name)
			require.Error(t, err)
			for _, want := range tt.want {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

func TestScopes(t *testing.T) {
	all := createDefaultConfig()
	all.ExcludeNamespaces = []string{"kube-system", "kube-public"}
	assert.Equal(t, []scope{{fieldSelector: "metadata.namespace!=kube-system,metadata.namespace!=kube-public"}}, scopesOf(all))

	some := createDefaultConfig()
	some.Namespaces = []string{"a", "b"}
	assert.Equal(t, []scope{{namespace: "a"}, {namespace: "b"}}, scopesOf(some))
}
