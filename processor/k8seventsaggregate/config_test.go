package k8seventsaggregate

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/k8sevents/otelcol-k8sevents/processor/k8seventsaggregate/internal/metadata"
)

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

func TestDefaultConfig(t *testing.T) {
	cfg := createDefaultConfig()
	require.NoError(t, componenttest.CheckConfigStruct(cfg))
	require.NoError(t, cfg.Validate())
	assert.Equal(t, time.Minute, cfg.Window)
	assert.Equal(t, []string{"k8s.namespace.name", "k8s.object.kind", "k8s.event.reason"}, cfg.Keys)
	assert.Equal(t, 10000, cfg.MaxKeys)
}

func TestConfigValid(t *testing.T) {
	cfg, err := loadConfig(t, "")
	require.NoError(t, err)
	assert.Equal(t, createDefaultConfig(), cfg)

	cfg, err = loadConfig(t, "all_fields")
	require.NoError(t, err)
	want := createDefaultConfig()
	want.Window, want.Keys, want.MaxKeys = 5*time.Minute, []string{"k8s.namespace.name", "k8s.event.reason"}, 100
	assert.Equal(t, want, cfg)
}

func TestConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		want []string
	}{
		{"zero_window", []string{"window: must be a positive duration such as 30s or 1m, got 0s"}},
		{"no_keys", []string{"keys: must name at least one attribute"}},
		{"bad_keys", []string{"keys[1]: must not be empty", `keys[2]: "k8s.event.reason" is already keys[0]`}},
		{"zero_max_keys", []string{"max_keys: must be at least 1, got 0"}},
		{"unknown_key", []string{"has invalid keys: interval"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(t, tt.name)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
