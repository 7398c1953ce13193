package promtest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/k8sevents/otelcol-k8sevents/internal/amtest"
	"github.com/k8sevents/otelcol-k8sevents/internal/promtest"
	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// The forking goroutine of testbin lives as long as the process, by design.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(testbin.ForkLoop)) }

// waitTimeout only stops a broken run from hanging: each wait below takes a
// few seconds at 1s intervals.
const waitTimeout = 2 * time.Minute

// TestScrapeRuleAlertmanager runs the harnesses together: Prometheus scrapes
// itself, a rule over what it scraped fires, and Alertmanager routes the
// alert by severity to a webhook.
func TestScrapeRuleAlertmanager(t *testing.T) {
	t.Parallel()
	webhook := amtest.NewWebhook(t)
	am := amtest.Start(t, amtest.Options{Config: fmt.Sprintf(`route:
  receiver: nobody
  group_by: [alertname]
  group_wait: 1s
  routes:
    - matchers: ['severity="page"']
      receiver: pager
receivers:
  - name: nobody
  - name: pager
    webhook_configs:
      - url: %q
`, webhook.URL())})

	rules := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(rules, []byte(`groups:
  - name: harness
    rules:
      - alert: PrometheusScraped
        expr: sum by (job) (up{job="k8sevents"}) > 0
        labels:
          severity: page
        annotations:
          summary: "job {{ $labels.job }} is up"
`), 0o600))
	// Prometheus scrapes its own /metrics: a target that needs no other
	// program. Its port is known only once it runs, so the harness is
	// started with a placeholder target that is replaced below.
	prom := promtest.Start(t, promtest.Options{
		RuleFiles:       []string{rules},
		AlertmanagerURL: am.URL(),
		Targets:         []string{"127.0.0.1:9"}, // discard: never answers
	})
	ctx := t.Context()

	// The unreachable target is scraped and down.
	targets := waitFor(t, "target scraped", func() ([]promtest.Target, bool, error) {
		ts, err := prom.Targets(ctx)
		return ts, len(ts) == 1 && ts[0].Health != "unknown", err
	})
	assert.Equal(t, "down", targets[0].Health)
	assert.Equal(t, "k8sevents", targets[0].Labels["job"])
	assert.NotEmpty(t, targets[0].LastError)

	up, err := prom.Query(ctx, `up{job="k8sevents"}`, time.Time{})
	require.NoError(t, err)
	require.Len(t, up, 1)
	assert.Equal(t, "127.0.0.1:9", up[0].Labels["instance"])
	assert.Zero(t, up[0].Value)

	scalar, err := prom.Query(ctx, `scalar(up{job="k8sevents"}) + 2`, time.Time{})
	require.NoError(t, err)
	require.Len(t, scalar, 1)
	assert.Equal(t, 2.0, scalar[0].Value)

	_, err = prom.Query(ctx, `up{job="k8sevents"}[1m]`, time.Time{})
	assert.ErrorContains(t, err, "matrix")
	_, err = prom.Query(ctx, `sum(`, time.Time{})
	assert.ErrorContains(t, err, "bad_data")

	series, err := prom.QueryRange(ctx, `up{job="k8sevents"}`, time.Now().Add(-time.Minute), time.Now(), time.Second)
	require.NoError(t, err)
	require.Len(t, series, 1)
	assert.NotEmpty(t, series[0].Points)

	// The rule sees up == 0 and stays inactive: nothing reaches Alertmanager.
	groups, err := prom.Rules(ctx)
	require.NoError(t, err)
	require.Len(t, groups, 1)
	require.Len(t, groups[0].Rules, 1)
	r := groups[0].Rules[0]
	assert.Equal(t, "alerting", r.Type)
	assert.Equal(t, "PrometheusScraped", r.Name)
	assert.Equal(t, map[string]string{"severity": "page"}, r.Labels)
	assert.Equal(t, 1.0, groups[0].Interval)

	// A second Prometheus, configured by a prometheus.yml of its own,
	// scrapes the first, so its rule fires.
	prom2 := promtest.Start(t, promtest.Options{Config: fmt.Sprintf(`rule_files: [%q]
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%q]
scrape_configs:
  - job_name: k8sevents
    static_configs:
      - targets: [%q]
`, rules, strings.TrimPrefix(am.URL(), "http://"), strings.TrimPrefix(prom.URL(), "http://"))})
	alerts := waitFor(t, "alert in Alertmanager", func() ([]amtest.Alert, bool, error) {
		as, aerr := am.Alerts(ctx, `alertname="PrometheusScraped"`)
		return as, len(as) == 1, aerr
	})
	assert.Equal(t, map[string]string{"alertname": "PrometheusScraped", "job": "k8sevents", "severity": "page"}, alerts[0].Labels)
	assert.Equal(t, map[string]string{"summary": "job k8sevents is up"}, alerts[0].Annotations)
	assert.Equal(t, []string{"pager"}, alerts[0].ReceiverNames())
	assert.Contains(t, alerts[0].GeneratorURL, "/graph?g0.expr=")

	firing, err := prom2.Alerts(ctx)
	require.NoError(t, err)
	require.Len(t, firing, 1)
	assert.Equal(t, "firing", firing[0].State)

	notes := waitFor(t, "webhook notified", func() ([]amtest.Notification, bool, error) {
		ns := webhook.Notifications()
		return ns, len(ns) > 0, nil
	})
	assert.Equal(t, "pager", notes[0].Receiver)
	assert.Equal(t, "firing", notes[0].Status)
	require.Len(t, notes[0].Alerts, 1)
	assert.Equal(t, "job k8sevents is up", notes[0].Alerts[0].Annotations["summary"])

	none, err := am.Alerts(ctx, `alertname="NoSuchAlert"`)
	require.NoError(t, err)
	assert.Empty(t, none)
}

// waitFor polls check every 250ms until it reports done, failing t on
// timeout.
func waitFor[T any](t *testing.T, what string, check func() (T, bool, error)) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	for {
		v, done, err := check()
		if done && err == nil {
			return v
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %v (last: %+v, %v)", what, waitTimeout, v, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
