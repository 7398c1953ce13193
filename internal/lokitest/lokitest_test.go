package lokitest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/k8sevents/otelcol-k8sevents/internal/amtest"
	"github.com/k8sevents/otelcol-k8sevents/internal/lokitest"
	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// The forking goroutine of testbin lives as long as the process, by design.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(testbin.ForkLoop)) }

// TestRuler pushes lines with structured metadata and checks that the
// ruler's alert, with an annotation taken from the metadata, reaches
// Alertmanager.
func TestRuler(t *testing.T) {
	t.Parallel()
	am := amtest.Start(t, amtest.Options{})
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(rules, []byte(`groups:
  - name: harness
    rules:
      - alert: LineWithTitle
        expr: sum by (job, title) (count_over_time({job="harness"} | title != "" [1m])) > 0
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.title }}"
`), 0o600))
	loki := lokitest.Start(t, lokitest.Options{RuleFiles: []string{rules}, AlertmanagerURL: am.URL()})
	ctx := t.Context()

	groups, err := loki.Rules(ctx)
	require.NoError(t, err)
	require.Len(t, groups, 1)
	require.Len(t, groups[0].Rules, 1)
	assert.Equal(t, "LineWithTitle", groups[0].Rules[0].Name)
	assert.Equal(t, 1.0, groups[0].Interval)

	push(t, loki.URL(), map[string]string{"job": "harness"}, "no title", nil)
	push(t, loki.URL(), map[string]string{"job": "harness"}, "a line", map[string]string{"title": "Pod BackOff"})

	deadline := time.Now().Add(2 * time.Minute) // only stops a broken run from hanging
	var alerts []amtest.Alert
	for len(alerts) == 0 {
		require.False(t, time.Now().After(deadline), "no alert in Alertmanager; ruler: %+v", groups)
		time.Sleep(250 * time.Millisecond)
		alerts, err = am.Alerts(ctx, `alertname="LineWithTitle"`)
		require.NoError(t, err)
		groups, _ = loki.Rules(ctx)
	}
	require.Len(t, alerts, 1)
	assert.Equal(t, map[string]string{"alertname": "LineWithTitle", "job": "harness", "title": "Pod BackOff", "severity": "page"}, alerts[0].Labels)
	assert.Equal(t, map[string]string{"summary": "Pod BackOff"}, alerts[0].Annotations)

	firing, err := loki.Alerts(ctx)
	require.NoError(t, err)
	require.Len(t, firing, 1)
	assert.Equal(t, "firing", firing[0].State)
}

// push sends one line to Loki's push API, with structured metadata when md
// is not nil.
func push(t *testing.T, lokiURL string, stream map[string]string, line string, md map[string]string) {
	t.Helper()
	value := []any{strconv.FormatInt(time.Now().UnixNano(), 10), line}
	if md != nil {
		value = append(value, md)
	}
	body, err := json.Marshal(map[string]any{"streams": []any{map[string]any{"stream": stream, "values": []any{value}}}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, lokiURL+"/loki/api/v1/push", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusNoContent, resp.StatusCode, fmt.Sprintf("push %q", line))
}
