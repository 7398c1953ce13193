package k8sevents

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// The counters of failures exist from the start with 0, by each value of
// their attribute that the mode can count, so that Prometheus sees the first
// error of a process as an increase.
func TestFailureCountersStartAtZero(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		want map[string][]string // metric -> attribute values with a series
	}{
		{ModePoll, map[string][]string{
			"otelcol_receiver_k8sevents_errors":         {"consume", "forbidden", "list", "timeout"},
			"otelcol_receiver_k8sevents_polls":          {"failure"},
			"otelcol_receiver_k8sevents_relists":        {""},
			"otelcol_receiver_k8sevents_watch_restarts": nil,
		}},
		{ModeWatch, map[string][]string{
			"otelcol_receiver_k8sevents_errors":         {"consume", "forbidden", "list", "timeout", "watch"},
			"otelcol_receiver_k8sevents_polls":          nil,
			"otelcol_receiver_k8sevents_relists":        {""},
			"otelcol_receiver_k8sevents_watch_restarts": {"error", "gone", "refused", "stall", "timeout"},
		}},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			// Nothing fails: every series of a failure stays at 0.
			h := newHarness(t, newFakeAPI(), func(cfg *Config) { cfg.Mode = tc.mode })
			h.start(t)
			for name, want := range tc.want {
				got := map[string]int64{}
				if m, err := h.tel.GetMetric(name); err == nil {
					for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
						got[attrValue(dp.Attributes, "kind", "cause", "outcome")] = dp.Value
					}
				}
				if want == nil {
					assert.Empty(t, got, name)
					continue
				}
				for _, v := range want {
					value, ok := got[v]
					require.Truef(t, ok, "%s: no series %q; got %v", name, v, got)
					assert.Zerof(t, value, "%s %q", name, v)
				}
			}
		})
	}
}

// attrValue is the value of the first of keys in set, or "".
func attrValue(set attribute.Set, keys ...string) string {
	for _, k := range keys {
		if v, ok := set.Value(attribute.Key(k)); ok {
			return v.AsString()
		}
	}
	return ""
}
