package k8sevents

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap/zapcore"
)

// TestClusterNameWarning: an empty cluster_name is legal but is worth a
// warning at start, once; a set one is not.
func TestClusterNameWarning(t *testing.T) {
	for _, tc := range []struct {
		clusterName string
		warnings    int
	}{
		{"", 1},
		{"prod-eu-1", 0},
	} {
		t.Run("cluster_name="+tc.clusterName, func(t *testing.T) {
			h := newHarness(t, newFakeAPI(), func(c *Config) { c.ClusterName = tc.clusterName })
			h.start(t)
			got := h.logs.FilterMessage(clusterNameWarning).FilterLevelExact(zapcore.WarnLevel).Len()
			assert.Equal(t, tc.warnings, got, "warnings about cluster_name")
		})
	}
}
