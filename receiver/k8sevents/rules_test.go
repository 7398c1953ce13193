package k8sevents

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// loadRulesConfig unmarshals one entry of testdata/rules.yaml over the
// defaults and validates it, as the collector does.
func loadRulesConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	return loadConfigFrom(t, "rules.yaml", name)
}

func TestRulesConfigValid(t *testing.T) {
	cfg, err := loadRulesConfig(t, "rules")
	require.NoError(t, err)
	assert.Equal(t, SeverityTextLevel, cfg.SeverityText)
	require.Len(t, cfg.Rules, 3)
	assert.Equal(t, "ignore-probe-noise", cfg.Rules[0].Name)
	assert.True(t, cfg.Rules[0].Drop)
	assert.Equal(t, "^Readiness probe", cfg.Rules[0].Match.Message)
	assert.Equal(t, []string{"kube-system"}, cfg.Rules[0].Match.Namespaces)
	assert.Equal(t, "Warning", cfg.Rules[1].Match.Type)
	assert.Equal(t, []string{"OOMKilling", "OOMKilled"}, cfg.Rules[1].Match.Reasons)
	assert.Equal(t, []string{"Node", "Pod"}, cfg.Rules[1].Match.Kinds)
	assert.Equal(t, SeverityError, cfg.Rules[1].Severity)
	assert.True(t, cfg.Rules[1].Alert)
	assert.Equal(t, RuleConfig{Name: "quiet"}, cfg.Rules[2])

	def := createDefaultConfig()
	assert.Equal(t, SeverityTextEventType, def.SeverityText, "the default keeps contrib's severity text")
	assert.Empty(t, def.Rules)
}

func TestRulesConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		want []string // every message must appear
	}{
		{"rule_without_name", []string{"rules[0]::name: must be set"}},
		{"rule_duplicate_name", []string{`rules[1]::name: "a" is already the name of rules[0]`}},
		{"rule_bad_message", []string{"rules[1]::match::message: not a regular expression (Go RE2 syntax)", "missing closing )"}},
		{"rule_bad_type", []string{`rules[0]::match::type: "warning" is not an Event type; use Normal or Warning`}},
		{"rule_bad_severity", []string{`rules[0]::severity: "critical" is not supported; use one of info, warn, error, fatal`}},
		{"rule_drop_and_alert", []string{"rules[0]::drop: a dropped Event has no record to mark"}},
		{"rule_empty_reason", []string{"rules[0]::match::reasons[1]: must not be empty", "rules[0]::match::kinds[0]: must not be empty"}},
		{"rule_bad_namespace", []string{`rules[0]::match::namespaces[0]: "Shop" is not a valid namespace name`}},
		{"rule_unknown_key", []string{"has invalid keys: reason"}},
		{"bad_severity_text", []string{`severity_text: "Level" is not supported; use event_type or level`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadRulesConfig(t, tt.name)
			require.Error(t, err)
			for _, want := range tt.want {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

// ruleEvent is an Event for rule tests: type, reason, involved object kind
// and name, namespace and message.
func ruleEvent(eventType, reason, kind, name, namespace, message string) corev1.Event {
	now := metav1.Now()
	objNamespace := namespace
	if kind == "Node" {
		objNamespace = ""
	}
	return corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: name + "." + reason, Namespace: namespace, UID: types.UID("uid-" + name), ResourceVersion: "7"},
		InvolvedObject: corev1.ObjectReference{Kind: kind, Name: name, Namespace: objNamespace, APIVersion: "v1"},
		Type:           eventType, Reason: reason, Message: message, Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
	}
}

// outcome is what became of one Event: whether it has a record and, if so,
// its severity and alert attributes ("" when absent).
type outcome struct {
	dropped            bool
	severity           plog.SeverityNumber
	severityText       string
	rule, title, alert string
}

func outcomeOf(t *testing.T, c converter, ev corev1.Event) outcome {
	t.Helper()
	ld, _ := c.convert([]corev1.Event{ev}, goldenObserved, nil)
	if ld.LogRecordCount() == 0 {
		assert.Equal(t, 0, ld.ResourceLogs().Len(), "a dropped Event leaves no empty resource")
		return outcome{dropped: true}
	}
	require.Equal(t, 1, ld.LogRecordCount())
	lr := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	str := func(k string) string {
		v, _ := lr.Attributes().Get(k)
		return v.Str()
	}
	return outcome{
		severity: lr.SeverityNumber(), severityText: lr.SeverityText(),
		rule: str(attrAlertRule), title: str(attrAlertTitle), alert: str(attrAlertMessage),
	}
}

func TestRulesApply(t *testing.T) {
	cfg, err := loadRulesConfig(t, "rules")
	require.NoError(t, err)
	withLevel, err := newConverter(cfg)
	require.NoError(t, err)
	cfg.SeverityText = SeverityTextEventType
	withType, err := newConverter(cfg)
	require.NoError(t, err)

	tests := []struct {
		name      string
		ev        corev1.Event
		level     outcome // with severity_text: level
		eventType outcome // with severity_text: event_type
	}{
		{
			name:      "dropped by reason, namespace and message",
			ev:        ruleEvent("Warning", "Unhealthy", "Pod", "coredns-1", "kube-system", "Readiness probe failed: HTTP 503"),
			level:     outcome{dropped: true},
			eventType: outcome{dropped: true},
		},
		{
			name:      "message does not match: kept",
			ev:        ruleEvent("Warning", "Unhealthy", "Pod", "coredns-1", "kube-system", "Liveness probe failed"),
			level:     outcome{severity: plog.SeverityNumberWarn, severityText: "WARN"},
			eventType: outcome{severity: plog.SeverityNumberWarn, severityText: "Warning"},
		},
		{
			name:      "namespace does not match: kept",
			ev:        ruleEvent("Warning", "Unhealthy", "Pod", "web-1", "shop", "Readiness probe failed: HTTP 503"),
			level:     outcome{severity: plog.SeverityNumberWarn, severityText: "WARN"},
			eventType: outcome{severity: plog.SeverityNumberWarn, severityText: "Warning"},
		},
		{
			name: "alert with severity error",
			ev:   ruleEvent("Warning", "OOMKilling", "Node", "node-1", "default", "Memory cgroup out of memory: Killed process 4242 (java)"),
			level: outcome{
				severity: plog.SeverityNumberError, severityText: "ERROR",
				rule: "oom", title: "Node OOMKilling", alert: "Node node-1: Memory cgroup out of memory: Killed process 4242 (java)",
			},
			eventType: outcome{
				severity: plog.SeverityNumberError, severityText: "Warning",
				rule: "oom", title: "Node OOMKilling", alert: "Node node-1: Memory cgroup out of memory: Killed process 4242 (java)",
			},
		},
		{
			name:      "type does not match: next rule, which has no action",
			ev:        ruleEvent("Normal", "OOMKilling", "Node", "node-1", "default", "?"),
			level:     outcome{severity: plog.SeverityNumberInfo, severityText: "INFO"},
			eventType: outcome{severity: plog.SeverityNumberInfo, severityText: "Normal"},
		},
		{
			name:      "unknown type keeps its text",
			ev:        ruleEvent("Custom", "Something", "Pod", "p", "shop", "m"),
			level:     outcome{severityText: "Custom"},
			eventType: outcome{severityText: "Custom"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.level, outcomeOf(t, withLevel, tt.ev), "severity_text: level")
			assert.Equal(t, tt.eventType, outcomeOf(t, withType, tt.ev), "severity_text: event_type")
		})
	}
}

func TestRulesFirstMatchDecides(t *testing.T) {
	rules, err := compileRules([]RuleConfig{
		{Name: "exception", Match: MatchConfig{Reasons: []string{"BackOff"}, Namespaces: []string{"ci"}}},
		{Name: "errors", Match: MatchConfig{Type: "Warning", Reasons: []string{"BackOff"}}, Severity: SeverityError, Alert: true},
		{Name: "warnings", Match: MatchConfig{Type: "Warning"}, Alert: true},
	})
	require.NoError(t, err)
	c := converter{rules: rules}
	assert.Equal(t, outcome{severity: plog.SeverityNumberWarn, severityText: "Warning"},
		outcomeOf(t, c, ruleEvent("Warning", "BackOff", "Pod", "job-1", "ci", "Back-off restarting failed container")),
		"the exception comes first: no alert")
	assert.Equal(t, "errors", outcomeOf(t, c, ruleEvent("Warning", "BackOff", "Pod", "web-1", "shop", "m")).rule)
	assert.Equal(t, "warnings", outcomeOf(t, c, ruleEvent("Warning", "FailedMount", "Pod", "web-1", "shop", "m")).rule)
}

func TestRulesKeepOtherRecordsAndResources(t *testing.T) {
	rules, err := compileRules([]RuleConfig{{Name: "drop-normal", Match: MatchConfig{Type: "Normal"}, Drop: true}})
	require.NoError(t, err)
	events := []corev1.Event{
		ruleEvent("Normal", "Scheduled", "Pod", "a", "shop", "1"),
		ruleEvent("Warning", "BackOff", "Pod", "a", "shop", "2"),
		ruleEvent("Normal", "Pulled", "Pod", "b", "shop", "3"),
	}
	ld, matches := converter{clusterName: "c", rules: rules}.convert(events, goldenObserved, nil)
	assert.Equal(t, []int64{2}, matches, "the rule decided both Normal Events")
	require.Equal(t, 1, ld.ResourceLogs().Len(), "no resource for b, whose only Event was dropped")
	assert.Equal(t, 1, ld.LogRecordCount())
	lr := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	assert.Equal(t, "2", lr.Body().Str())
	_, alert := lr.Attributes().Get(attrAlertRule)
	assert.False(t, alert)

	// Without rules the conversion is the golden one.
	for _, name := range capturedCases {
		events := loadCaptured(t, name)
		ld, matches := converter{clusterName: goldenClusterName}.convert(events, goldenObserved, nil)
		assert.Equal(t, goldenOf(convertEvents(events, goldenClusterName, goldenObserved)), goldenOf(ld), name)
		assert.Nil(t, matches, name)
	}
}

// TestShippedRules checks the seed's rule set as otelcol-config.yaml ships
// it: an alert for every Warning, for Failed on a Pod, for FailedScheduling
// and for OOMKilled, with severity ERROR for Warnings that are errors.
func TestShippedRules(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("..", "..", "otelcol-config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub("receivers::k8sevents")
	require.NoError(t, err)
	cfg := createDefaultConfig()
	require.NoError(t, sub.Unmarshal(cfg))
	require.Equal(t, SeverityTextLevel, cfg.SeverityText)
	c, err := newConverter(cfg)
	require.NoError(t, err)

	alert := func(sev plog.SeverityNumber, text, rule, title, message string) outcome {
		return outcome{severity: sev, severityText: text, rule: rule, title: title, alert: message}
	}
	tests := []struct {
		ev   corev1.Event
		want outcome
	}{
		{ruleEvent("Normal", "Scheduled", "Pod", "web-1", "shop", "Successfully assigned shop/web-1 to node-1"),
			outcome{severity: plog.SeverityNumberInfo, severityText: "INFO"}},
		{ruleEvent("Normal", "NodeNotReady", "Node", "node-1", "default", "Node node-1 status is now: NodeNotReady"),
			outcome{severity: plog.SeverityNumberInfo, severityText: "INFO"}},
		{ruleEvent("Warning", "FailedScheduling", "Pod", "web-2", "shop", "0/1 nodes are available: 1 Insufficient memory."),
			alert(plog.SeverityNumberWarn, "WARN", "failed-scheduling", "Pod FailedScheduling", "Pod web-2: 0/1 nodes are available: 1 Insufficient memory.")},
		{ruleEvent("Warning", "OOMKilling", "Node", "node-1", "default", "Out of memory: Killed process 42 (java)"),
			alert(plog.SeverityNumberError, "ERROR", "oom-killed", "Node OOMKilling", "Node node-1: Out of memory: Killed process 42 (java)")},
		{ruleEvent("Warning", "OOMKilled", "Pod", "web-1", "shop", "Container app was OOM killed"),
			alert(plog.SeverityNumberError, "ERROR", "oom-killed", "Pod OOMKilled", "Pod web-1: Container app was OOM killed")},
		{ruleEvent("Warning", "Failed", "Pod", "web-1", "shop", "Error: ErrImagePull"),
			alert(plog.SeverityNumberError, "ERROR", "pod-failed", "Pod Failed", "Pod web-1: Error: ErrImagePull")},
		{ruleEvent("Warning", "Failed", "Deployment", "web", "shop", "some controller failed"),
			alert(plog.SeverityNumberWarn, "WARN", "warning", "Deployment Failed", "Deployment web: some controller failed")},
		{ruleEvent("Warning", "BackOff", "Pod", "web-1", "shop", "Back-off restarting failed container app in pod web-1"),
			alert(plog.SeverityNumberError, "ERROR", "warning-is-error", "Pod BackOff", "Pod web-1: Back-off restarting failed container app in pod web-1")},
		{ruleEvent("Warning", "FailedMount", "Pod", "web-1", "shop", `MountVolume.SetUp failed for volume "data"`),
			alert(plog.SeverityNumberError, "ERROR", "warning-is-error", "Pod FailedMount", `Pod web-1: MountVolume.SetUp failed for volume "data"`)},
		{ruleEvent("Warning", "Unhealthy", "Pod", "web-1", "shop", "Readiness probe failed"),
			alert(plog.SeverityNumberWarn, "WARN", "warning", "Pod Unhealthy", "Pod web-1: Readiness probe failed")},
	}
	for _, tt := range tests {
		t.Run(tt.ev.InvolvedObject.Kind+"/"+tt.ev.Type+"/"+tt.ev.Reason, func(t *testing.T) {
			assert.Equal(t, tt.want, outcomeOf(t, c, tt.ev))
		})
	}
}

// TestRuleTelemetry runs the receiver with a rule that drops, one that
// alerts and one that changes nothing, and reads the counters of Events each
// rule decided and dropped.
func TestRuleTelemetry(t *testing.T) {
	api := newFakeAPI()
	warning := func(ev *corev1.Event) { ev.Type, ev.Reason = corev1.EventTypeWarning, "BackOff" }
	probe := func(ev *corev1.Event) { ev.Type, ev.Reason = corev1.EventTypeWarning, "Unhealthy" }
	api.add(newEvent("ci", "a", warning), newEvent("shop", "b", warning), newEvent("shop", "c", warning),
		newEvent("shop", "d", probe), newEvent("shop", "e"), newEvent("shop", "f"))
	h := newHarness(t, api, func(cfg *Config) {
		cfg.Rules = []RuleConfig{
			{Name: "ci-backoff", Match: MatchConfig{Namespaces: []string{"ci"}}},
			{Name: "probe-noise", Match: MatchConfig{Reasons: []string{"Unhealthy"}}, Drop: true},
			{Name: "warning", Match: MatchConfig{Type: corev1.EventTypeWarning}, Alert: true},
			{Name: "never", Match: MatchConfig{Reasons: []string{"NoSuchReason"}}, Alert: true},
		}
	})
	h.start(t)
	h.waitRecords(t, 5)
	h.settle(t)
	assert.Equal(t, 5, h.sink.count(), "the dropped Event has no record")

	byRule := func(name string) map[string]int64 {
		t.Helper()
		m, err := h.tel.GetMetric(name)
		require.NoError(t, err)
		out := map[string]int64{}
		for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
			rule, _ := dp.Attributes.Value("rule")
			receiver, _ := dp.Attributes.Value("receiver")
			assert.Equal(t, h.rcv.settings.ID.String(), receiver.AsString())
			out[rule.AsString()] += dp.Value
		}
		return out
	}
	// Normal Events e and f match no rule; "never" matched nothing and has
	// no point.
	assert.Equal(t, map[string]int64{"ci-backoff": 1, "probe-noise": 1, "warning": 2}, byRule("otelcol_receiver_k8sevents_rule_matches"))
	assert.Equal(t, map[string]int64{"probe-noise": 1}, byRule("otelcol_receiver_k8sevents_rule_drops"))
}

// TestRuleMatchesPerPage checks the counts convert returns, by rule index.
func TestRuleMatchesPerPage(t *testing.T) {
	rules, err := compileRules([]RuleConfig{
		{Name: "drop-normal", Match: MatchConfig{Type: "Normal"}, Drop: true},
		{Name: "backoff", Match: MatchConfig{Reasons: []string{"BackOff"}}, Alert: true},
		{Name: "warning", Match: MatchConfig{Type: "Warning"}, Alert: true},
	})
	require.NoError(t, err)
	events := []corev1.Event{
		ruleEvent("Normal", "Scheduled", "Pod", "a", "shop", "1"),
		ruleEvent("Warning", "BackOff", "Pod", "a", "shop", "2"),
		ruleEvent("Warning", "BackOff", "Pod", "b", "shop", "3"),
		ruleEvent("Warning", "Unhealthy", "Pod", "b", "shop", "4"),
	}
	ld, matches := converter{rules: rules}.convert(events, goldenObserved, nil)
	assert.Equal(t, []int64{1, 2, 1}, matches, "the first rule that matches counts, the later ones do not")
	assert.Equal(t, 3, ld.LogRecordCount())
}
