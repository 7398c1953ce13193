package k8sevents

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

// BenchmarkConvertEventsSeedRules converts the page of BenchmarkConvertEvents
// with the receiver settings of otelcol-config.yaml: the seed's alert rules
// and severity_text level. The page's Warnings (FailedScheduling, one Event
// in eight) become alerts; the other Events go through every rule.
func BenchmarkConvertEventsSeedRules(b *testing.B) {
	cm, err := confmaptest.LoadConf(filepath.Join("..", "..", "otelcol-config.yaml"))
	require.NoError(b, err)
	sub, err := cm.Sub("receivers::k8sevents")
	require.NoError(b, err)
	cfg := createDefaultConfig()
	require.NoError(b, sub.Unmarshal(cfg))
	require.NotEmpty(b, cfg.Rules)
	c, err := newConverter(cfg)
	require.NoError(b, err)
	c.clusterName = goldenClusterName

	page := benchPage(b)
	b.ReportAllocs()
	for b.Loop() {
		c.convert(page, goldenObserved, nil)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(page)), "ns/event")
}
