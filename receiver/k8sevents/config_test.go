package k8sevents

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents/internal/metadata"
)

// loadConfig unmarshals one entry of testdata/config.yaml over the defaults,
// as the collector does.
func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	return loadConfigFrom(t, "config.yaml", name)
}

// loadConfigFrom is loadConfig for another file of testdata.
func loadConfigFrom(t *testing.T, file, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", file))
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
	storageID := component.MustNewIDWithName("file_storage", "k8sevents")
	tests := []struct {
		name   string
		mutate func(*Config) // of the default configuration
	}{
		{name: ""},
		{
			name: "all_fields",
			mutate: func(cfg *Config) {
				cfg.AuthType, cfg.Context, cfg.Interval, cfg.PageSize = AuthTypeKubeConfig, "kind-dev", 10*time.Second, 100
				cfg.RequestTimeout = 45 * time.Second
				cfg.StartAt, cfg.ClusterName = StartAtBeginning, "prod-eu-1"
				cfg.ExcludeNamespaces = []string{"kube-system", "kube-public"}
			},
		},
		{
			name: "watch",
			mutate: func(cfg *Config) {
				cfg.Mode, cfg.BatchTimeout = ModeWatch, 500*time.Millisecond
				cfg.FieldSelector = "type=Warning,involvedObject.kind=Pod"
				cfg.ExcludeNamespaces = []string{"kube-system"}
			},
		},
		{
			name: "namespaces",
			mutate: func(cfg *Config) {
				cfg.AuthType, cfg.Namespaces = AuthTypeNone, []string{"default", "payments"}
			},
		},
		{
			name: "checkpoint",
			mutate: func(cfg *Config) {
				cfg.Checkpoint = configoptional.Some(CheckpointConfig{Namespace: "observability", Name: "k8sevents-checkpoint"})
				cfg.CheckpointInterval = 10 * time.Second
				cfg.LeaderElection = configoptional.Some(LeaderElectionConfig{
					LeaseName: "k8sevents", LeaseNamespace: "observability",
					LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
				})
			},
		},
		{
			name: "leader_election_all_fields",
			mutate: func(cfg *Config) {
				cfg.Checkpoint = configoptional.Some(CheckpointConfig{Namespace: "observability", Name: "k8sevents-checkpoint"})
				cfg.LeaderElection = configoptional.Some(LeaderElectionConfig{
					LeaseName: "k8sevents", LeaseNamespace: "observability",
					LeaseDuration: 30 * time.Second, RenewDeadline: 20 * time.Second, RetryPeriod: 5 * time.Second,
				})
			},
		},
		{
			name:   "leader_election_disabled",
			mutate: func(cfg *Config) { cfg.LeaderElection = configoptional.None[LeaderElectionConfig]() },
		},
		{
			name:   "storage",
			mutate: func(cfg *Config) { cfg.Storage = &storageID },
		},
		{
			name: "extract",
			mutate: func(cfg *Config) {
				cfg.Extract.Owners = true
				cfg.Extract.Labels = []string{"app.kubernetes.io/name", "team"}
				cfg.Extract.Annotations = []string{"example.com/owner"}
				cfg.Extract.Cache.Size, cfg.Extract.Cache.TTL = 5000, 30*time.Minute
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(t, tt.name)
			require.NoError(t, err)
			want := createDefaultConfig()
			if tt.mutate != nil {
				tt.mutate(want)
			}
			assert.Equal(t, want, cfg)
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := createDefaultConfig()
	require.NoError(t, componenttest.CheckConfigStruct(cfg))
	assert.Equal(t, AuthTypeServiceAccount, cfg.AuthType)
	assert.Equal(t, ModePoll, cfg.Mode)
	assert.Equal(t, 200*time.Millisecond, cfg.BatchTimeout)
	assert.Empty(t, cfg.FieldSelector)
	assert.Equal(t, time.Minute, cfg.Interval)
	assert.Equal(t, int64(500), cfg.PageSize)
	assert.Equal(t, 30*time.Second, cfg.RequestTimeout)
	assert.Equal(t, StartAtEnd, cfg.StartAt)
	assert.Nil(t, cfg.Storage)
	assert.False(t, cfg.Checkpoint.HasValue())
	assert.Equal(t, 5*time.Second, cfg.CheckpointInterval)
	assert.False(t, cfg.LeaderElection.HasValue(), "leader election is off unless configured")
	le := cfg.LeaderElection.GetOrInsertDefault()
	assert.Equal(t, 15*time.Second, le.LeaseDuration)
	assert.Equal(t, 10*time.Second, le.RenewDeadline)
	assert.Equal(t, 2*time.Second, le.RetryPeriod)
	assert.False(t, cfg.Extract.enabled(), "nothing is looked up unless configured")
	assert.Equal(t, 20000, cfg.Extract.Cache.Size)
	assert.Equal(t, 10*time.Minute, cfg.Extract.Cache.TTL)
}

func TestConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		want []string // every message must appear
	}{
		{"bad_mode", []string{`mode: "stream" is not supported; use poll or watch`}},
		{"zero_batch_timeout", []string{"batch_timeout: must be a positive duration up to 10s", "got 0s"}},
		{"long_batch_timeout", []string{"batch_timeout: must be a positive duration up to 10s", "got 1m0s"}},
		{"bad_field_selector", []string{`field_selector: "type=Warning,reason" is not a field selector`}},
		{"bad_auth_type", []string{`auth_type: "token" is not supported; use one of serviceAccount, kubeConfig, none`}},
		{"context_without_kubeconfig", []string{`context: is only used with auth_type kubeConfig`}},
		{"zero_interval", []string{"interval: must be a positive duration", "got 0s"}},
		{"negative_interval", []string{"interval: must be a positive duration", "got -5s"}},
		{"zero_request_timeout", []string{"request_timeout: must be a positive duration such as 30s", "got 0s"}},
		{"negative_request_timeout", []string{"request_timeout: must be a positive duration such as 30s", "got -1s"}},
		{"bad_page_size", []string{"page_size: must be between 1 and 10000, got 0"}},
		{"huge_page_size", []string{"page_size: must be between 1 and 10000, got 100000"}},
		{"bad_start_at", []string{`start_at: "now" is not supported; use end or beginning`}},
		{"bad_namespace", []string{`namespaces[1]: "Not_A_Namespace" is not a valid namespace name`}},
		{"duplicate_namespace", []string{`namespaces[1]: "default" is listed twice`}},
		{"bad_exclude_namespace", []string{`exclude_namespaces[0]: "kube-system/" is not a valid namespace name`}},
		{"namespaces_and_exclude", []string{"exclude_namespaces: only applies when reading all namespaces"}},
		{"several_errors", []string{"auth_type:", "interval:", "start_at:"}},
		{"unknown_key", []string{"has invalid keys: namespace"}},
		{"storage_and_checkpoint", []string{"storage and checkpoint: set only one place for the resume point"}},
		{"checkpoint_without_name", []string{"checkpoint::name: must be set"}},
		{"checkpoint_bad_namespace", []string{`checkpoint::namespace: "Observability" is not a valid name`}},
		{"zero_checkpoint_interval", []string{"checkpoint_interval: must be a positive duration", "got 0s"}},
		{"bad_storage", []string{"storage", "file storage"}},
		{"leader_election_without_checkpoint", []string{"leader_election: needs checkpoint"}},
		{"leader_election_without_lease", []string{"leader_election::lease_name: must be set", "leader_election::lease_namespace: must be set"}},
		{"leader_election_short_lease", []string{"leader_election::lease_duration: must be at least 1s", "got 500ms"}},
		{"leader_election_renew_too_long", []string{"leader_election::renew_deadline: must be positive and shorter than lease_duration (15s), got 15s"}},
		{"leader_election_retry_too_long", []string{"leader_election::retry_period: must be positive and shorter than renew_deadline / 1.2", "got 9s"}},
		{"leader_election_unknown_key", []string{"has invalid keys: identity"}},
		{"extract_bad_keys", []string{
			`extract::labels[1]: "Team Name" is not a label or annotation key`,
			`extract::labels[2]: "team" is listed twice`,
			`extract::annotations[0]: "example.com/" is not a label or annotation key`,
		}},
		{"extract_bad_cache", []string{
			"extract::cache::size: must be between 1 and 1000000 objects, got 0",
			"extract::cache::ttl: must be a duration from 1s to 24h0m0s, such as 10m, got 500ms",
		}},
		{"extract_unknown_key", []string{"has invalid keys: metadata"}},
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

	selected := createDefaultConfig()
	selected.ExcludeNamespaces = []string{"kube-system"}
	selected.FieldSelector = "type=Warning"
	assert.Equal(t, []scope{{fieldSelector: "metadata.namespace!=kube-system,type=Warning"}}, scopesOf(selected))

	selected.ExcludeNamespaces, selected.Namespaces = nil, []string{"a"}
	assert.Equal(t, []scope{{namespace: "a", fieldSelector: "type=Warning"}}, scopesOf(selected))
}
