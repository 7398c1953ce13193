package e2e

import (
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// ruleFile is a Prometheus or Loki rule file.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

func readYAML(t *testing.T, rel string, out any) {
	t.Helper()
	b := readRoot(t, rel)
	if err := yaml.UnmarshalStrict(b, out); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

// TestPrometheusRuleIsTheRuleFile checks that the PrometheusRule manifest
// holds the groups of alerts/prometheus-rules.yaml, unchanged.
func TestPrometheusRuleIsTheRuleFile(t *testing.T) {
	t.Parallel()
	var file, manifest map[string]any
	readYAML(t, "alerts/prometheus-rules.yaml", &file)
	readYAML(t, "alerts/prometheusrule.yaml", &manifest)
	if manifest["apiVersion"] != "monitoring.coreos.com/v1" || manifest["kind"] != "PrometheusRule" {
		t.Errorf("alerts/prometheusrule.yaml is a %v %v, want a monitoring.coreos.com/v1 PrometheusRule", manifest["apiVersion"], manifest["kind"])
	}
	spec, _ := manifest["spec"].(map[string]any)
	if !reflect.DeepEqual(spec, file) {
		t.Errorf("the spec of alerts/prometheusrule.yaml differs from alerts/prometheus-rules.yaml:\n%v\n%v", spec, file)
	}
}

// TestLokiRulesAreTheReceiverRules checks that alerts/loki-rules.yaml has one
// alert per alerting rule of the receiver in otelcol-config.yaml, selecting
// that rule's records, with the labels and annotations the README names:
// severity critical where the receiver's rule makes the record ERROR.
func TestLokiRulesAreTheReceiverRules(t *testing.T) {
	t.Parallel()
	var cfg struct {
		Receivers map[string]struct {
			Rules []struct {
				Name     string `json:"name"`
				Severity string `json:"severity"`
				Alert    bool   `json:"alert"`
			} `json:"rules"`
		} `json:"receivers"`
	}
	b := readRoot(t, "otelcol-config.yaml")
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	severity := map[string]string{}
	for _, r := range cfg.Receivers["k8sevents"].Rules {
		if r.Alert {
			severity[r.Name] = "warning"
			if r.Severity == "error" || r.Severity == "fatal" {
				severity[r.Name] = "critical"
			}
		}
	}
	if len(severity) != 5 {
		t.Fatalf("otelcol-config.yaml: alerting rules %v, want the seed's five", severity)
	}

	var rules ruleFile
	readYAML(t, "alerts/loki-rules.yaml", &rules)
	selects := regexp.MustCompile(`\| k8s_event_alert_rule="([^"]+)" \[10m\]`)
	by := regexp.MustCompile(`sum by \(([^)]*)\)`)
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			m := selects.FindStringSubmatch(r.Expr)
			if m == nil {
				t.Errorf("%s: the expression selects no receiver rule: %s", r.Alert, r.Expr)
				continue
			}
			rule := m[1]
			seen[rule] = true
			if want, ok := severity[rule]; !ok {
				t.Errorf("%s: receiver rule %q is not an alerting rule of otelcol-config.yaml", r.Alert, rule)
			} else if r.Labels["severity"] != want {
				t.Errorf("%s: severity %q, want %q", r.Alert, r.Labels["severity"], want)
			}
			if lokiAlertNames[rule] != r.Alert {
				t.Errorf("alert %s for receiver rule %q; e2e's lokiAlertNames says %q", r.Alert, rule, lokiAlertNames[rule])
			}
			b := by.FindStringSubmatch(r.Expr)
			if b == nil {
				t.Errorf("%s: no sum by: %s", r.Alert, r.Expr)
				continue
			}
			labels := strings.Split(strings.ReplaceAll(b[1], " ", ""), ",")
			for _, l := range []string{"k8s_cluster_name", "k8s_namespace_name", "k8s_object_kind", "k8s_object_name", "k8s_event_reason", "k8s_event_alert_rule", "k8s_event_alert_title", "k8s_event_alert_message"} {
				if !slices.Contains(labels, l) {
					t.Errorf("%s: sum by (%s) keeps no %s", r.Alert, b[1], l)
				}
			}
			want := map[string]string{"summary": "{{ $labels.k8s_event_alert_title }}", "description": "{{ $labels.k8s_event_alert_message }}"}
			if !reflect.DeepEqual(r.Annotations, want) {
				t.Errorf("%s: annotations %v, want %v", r.Alert, r.Annotations, want)
			}
			if r.For != "" {
				t.Errorf("%s: for %s; the file says why there is none", r.Alert, r.For)
			}
		}
	}
	for rule := range severity {
		if !seen[rule] {
			t.Errorf("no alert in alerts/loki-rules.yaml for the receiver rule %q", rule)
		}
	}
}

// TestAlertmanagerRoutesEverySeverity checks that alerts/alertmanager.yaml
// routes each severity the rule files use to a receiver of its own.
func TestAlertmanagerRoutesEverySeverity(t *testing.T) {
	t.Parallel()
	severities := map[string]bool{}
	for _, f := range []string{"alerts/loki-rules.yaml", "alerts/prometheus-rules.yaml"} {
		var rules ruleFile
		readYAML(t, f, &rules)
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				severities[r.Labels["severity"]] = true
			}
		}
	}
	var am struct {
		Route struct {
			Routes []struct {
				Matchers []string `json:"matchers"`
				Receiver string   `json:"receiver"`
			} `json:"routes"`
		} `json:"route"`
	}
	b := readRoot(t, filepath.Join("alerts", "alertmanager.yaml"))
	if err := yaml.Unmarshal(b, &am); err != nil {
		t.Fatal(err)
	}
	routed := map[string]string{}
	for _, r := range am.Route.Routes {
		for _, m := range r.Matchers {
			if v, ok := strings.CutPrefix(m, `severity="`); ok {
				routed[strings.TrimSuffix(v, `"`)] = r.Receiver
			}
		}
	}
	for s := range severities {
		if routed[s] != receiverOf(s) {
			t.Errorf("severity %q is routed to %q, want %q", s, routed[s], receiverOf(s))
		}
	}
	if len(severities) != 2 {
		t.Errorf("severities %v, want critical and warning", severities)
	}
}
