package e2e

import (
	"bytes"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	sigsyaml "sigs.k8s.io/yaml"
)

// chartRuleFiles are the rule files of alerts/ that the chart carries in
// files/ (Helm reads no file outside the chart).
var chartRuleFiles = []string{"loki-rules.yaml", "prometheus-rules.yaml"}

// TestChartAlerts checks the chart's alerts and Event metrics against what
// the repository ships: the receiver's rules and the count pipeline of the
// generated configuration are otelcol-config.yaml's, each can be turned
// off, the chart's copies of the rule files are alerts/'s byte for byte,
// and the PrometheusRule and the Loki rules ConfigMap carry them with the
// labels set.
func TestChartAlerts(t *testing.T) {
	t.Parallel()
	h := newHelm(t, "")
	var shipped map[string]any
	if err := yaml.Unmarshal([]byte(shippedConfig(t)), &shipped); err != nil {
		t.Fatal(err)
	}
	defaults, unknown := decodeManifest(t, h.template(t, withEndpoint))
	if len(unknown) > 0 {
		t.Errorf("the default rendering has objects of kinds without a CRD by default:\n%s", strings.Join(unknown, "\n---"))
	}
	if n := len(objectsOf[*corev1.ConfigMap](defaults)); n != 1 {
		t.Errorf("the default rendering has %d ConfigMaps, want the configuration's only (alerts.lokiRules is off)", n)
	}
	cfg := renderedConfig(t, defaults)

	t.Run("ReceiverRulesLikeShipped", func(t *testing.T) {
		for _, key := range []string{"rules", "severity_text"} {
			got, want := dig(cfg, "receivers", "k8sevents", key), dig(shipped, "receivers", "k8sevents", key)
			if want == nil || !reflect.DeepEqual(got, want) {
				t.Errorf("the chart's receivers::k8sevents::%s is not otelcol-config.yaml's:\n got %v\nwant %v", key, got, want)
			}
		}
	})

	t.Run("CountLikeShipped", func(t *testing.T) {
		for _, path := range [][]string{
			{"processors", "transform/count"},
			{"processors", "groupbyattrs/count"},
			{"processors", "delta_to_cumulative"},
			{"connectors", "count"},
			{"service", "pipelines", "logs/count"},
			{"service", "pipelines", "metrics"},
		} {
			got, want := dig(cfg, path...), dig(shipped, path...)
			if want == nil || !reflect.DeepEqual(got, want) {
				t.Errorf("the chart's %s is not otelcol-config.yaml's:\n got %v\nwant %v", strings.Join(path, "::"), got, want)
			}
		}
		// The endpoint is the Pod's address, as for the collector's own
		// metrics on 8888.
		got, _ := dig(cfg, "exporters", "prometheus").(map[string]any)
		want, _ := dig(shipped, "exporters", "prometheus").(map[string]any)
		if got["endpoint"] != "${env:POD_IP}:8889" || want == nil {
			t.Errorf("exporters::prometheus::endpoint %v, want ${env:POD_IP}:8889", got["endpoint"])
		}
		delete(want, "endpoint")
		delete(got, "endpoint")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("the chart's exporters::prometheus is not otelcol-config.yaml's (but the endpoint):\n got %v\nwant %v", got, want)
		}
		c := only[*appsv1.Deployment](t, defaults).Spec.Template.Spec.Containers[0]
		if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "event-metrics" && p.ContainerPort == 8889 }) {
			t.Errorf("the container's ports %v lack event-metrics 8889", c.Ports)
		}
	})

	t.Run("Off", func(t *testing.T) {
		objs, _ := decodeManifest(t, h.template(t, withEndpoint, "--set=alerts.receiverRules.enabled=false", "--set=eventMetrics.enabled=false", "--set=serviceMonitor.enabled=true"))
		off := renderedConfig(t, objs)
		for _, path := range [][]string{
			{"receivers", "k8sevents", "rules"},
			{"receivers", "k8sevents", "severity_text"},
			{"processors", "transform/count"},
			{"processors", "groupbyattrs/count"},
			{"processors", "delta_to_cumulative"},
			{"connectors"},
			{"exporters", "prometheus"},
			{"service", "pipelines", "logs/count"},
			{"service", "pipelines", "metrics"},
		} {
			if got := dig(off, path...); got != nil {
				t.Errorf("%s is %v with alerts.receiverRules and eventMetrics off", strings.Join(path, "::"), got)
			}
		}
		if got := dig(off, "service", "pipelines", "logs/otlp"); got == nil {
			t.Errorf("the pipeline logs/otlp is gone with eventMetrics off")
		}
		if err := validateConfig(t, configText(t, objs)); err != nil {
			t.Errorf("the configuration without rules and metrics does not validate: %v", err)
		}
		c := only[*appsv1.Deployment](t, objs).Spec.Template.Spec.Containers[0]
		svc := only[*corev1.Service](t, objs)
		if len(c.Ports) != 2 || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8888 {
			t.Errorf("with eventMetrics off: container ports %v, Service ports %v; want health and metrics, and 8888 only", c.Ports, svc.Spec.Ports)
		}
	})

	t.Run("RuleFilesAreAlerts", func(t *testing.T) {
		// Byte for byte: the ConfigMap carries the Loki file as text, its
		// comments included, and a copy that differs in any way is one that
		// was not refreshed.
		root := moduleRoot(t)
		copies, err := filepath.Glob(filepath.Join(root, chartDir, "files", "*"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range copies {
			names = append(names, filepath.Base(c))
		}
		if !slices.Equal(names, chartRuleFiles) {
			t.Errorf("%s/files holds %v, want the copies of alerts/ %v", chartDir, names, chartRuleFiles)
		}
		for _, name := range chartRuleFiles {
			orig, cp := readRoot(t, "alerts/"+name), readRoot(t, chartDir+"/files/"+name)
			if !bytes.Equal(orig, cp) {
				t.Errorf("%s/files/%s differs from alerts/%s; copy it: cp alerts/%s %s/files/", chartDir, name, name, name, chartDir)
			}
		}
	})

	t.Run("PrometheusRule", func(t *testing.T) {
		_, unknown := decodeManifest(t, h.template(t, withEndpoint, "--set=alerts.prometheusRule.enabled=true", "--set=alerts.prometheusRule.labels.release=prometheus"))
		rule := prometheusRuleOf(t, unknown)
		if rule.Metadata.Name != deployName || rule.Metadata.Namespace != deployNamespace || rule.Metadata.Labels["release"] != "prometheus" ||
			rule.Metadata.Labels["app.kubernetes.io/instance"] != deployName {
			t.Errorf("PrometheusRule metadata %+v, want %s/%s with the release's labels and release: prometheus", rule.Metadata, deployNamespace, deployName)
		}
		checkPrometheusRuleGroups(t, rule.Spec)
	})

	t.Run("LokiRules", func(t *testing.T) {
		want := string(readRoot(t, "alerts/loki-rules.yaml"))
		for _, tc := range []struct {
			name        string
			set         []string
			label, val  string
			annotations map[string]string
		}{
			{"the Loki chart's label", []string{"alerts.lokiRules.enabled=true"}, "loki_rule", "1", nil},
			{"another label, a tenant", []string{"alerts.lokiRules.enabled=true", "alerts.lokiRules.label=example.com/loki-rules", "alerts.lokiRules.labelValue=k8s-events",
				"alerts.lokiRules.annotations.k8s-sidecar-target-directory=fake"}, "example.com/loki-rules", "k8s-events", map[string]string{"k8s-sidecar-target-directory": "fake"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				args := []string{withEndpoint}
				for _, s := range tc.set {
					args = append(args, "--set", s)
				}
				objs, _ := decodeManifest(t, h.template(t, args...))
				cm := lokiRulesConfigMap(t, objs)
				if cm.Labels[tc.label] != tc.val || cm.Labels["app.kubernetes.io/instance"] != deployName || !reflect.DeepEqual(cm.Annotations, tc.annotations) {
					t.Errorf("ConfigMap %s: labels %v, annotations %v; want %s=%s beside the release's, annotations %v", cm.Name, cm.Labels, cm.Annotations, tc.label, tc.val, tc.annotations)
				}
				if got := slices.Collect(maps.Keys(cm.Data)); len(got) != 1 || cm.Data[deployName+".yaml"] != want {
					t.Errorf("ConfigMap %s: keys %v; want %s.yaml holding alerts/loki-rules.yaml as it is", cm.Name, got, deployName)
				}
			})
		}
	})
}

// renderedPrometheusRule is the PrometheusRule the chart renders, decoded
// with no field left over.
type renderedPrometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec ruleFile `json:"spec"`
}

// prometheusRuleOf finds the one PrometheusRule among the documents of
// kinds the client does not know.
func prometheusRuleOf(t *testing.T, docs []string) renderedPrometheusRule {
	t.Helper()
	var found []renderedPrometheusRule
	for _, doc := range docs {
		if !strings.Contains(doc, "\nkind: PrometheusRule") {
			continue
		}
		var r renderedPrometheusRule
		if err := sigsyaml.UnmarshalStrict([]byte(doc), &r); err != nil {
			t.Fatalf("decode the PrometheusRule: %v\n%s", err, doc)
		}
		found = append(found, r)
	}
	if len(found) != 1 {
		t.Fatalf("%d PrometheusRules rendered, want one", len(found))
	}
	if r := found[0]; r.APIVersion != "monitoring.coreos.com/v1" || r.Kind != "PrometheusRule" {
		t.Errorf("%s %s, want a monitoring.coreos.com/v1 PrometheusRule", r.APIVersion, r.Kind)
	}
	return found[0]
}

// checkPrometheusRuleGroups holds the groups of a rendered PrometheusRule to
// those of alerts/prometheusrule.yaml, which TestAlerts loads into a real
// Prometheus (as alerts/prometheus-rules.yaml, whose groups
// TestPrometheusRuleIsTheRuleFile holds equal).
func checkPrometheusRuleGroups(t *testing.T, got ruleFile) {
	t.Helper()
	var want struct {
		Spec ruleFile `json:"spec"`
	}
	if err := sigsyaml.Unmarshal(readRoot(t, "alerts/prometheusrule.yaml"), &want); err != nil {
		t.Fatal(err)
	}
	if len(want.Spec.Groups) == 0 || !reflect.DeepEqual(got, want.Spec) {
		t.Errorf("the PrometheusRule's groups are not those of alerts/prometheusrule.yaml:\n got %+v\nwant %+v", got, want.Spec)
	}
}

// lokiRulesConfigMap is the ConfigMap of alerts.lokiRules.
func lokiRulesConfigMap(t *testing.T, objs []runtime.Object) *corev1.ConfigMap {
	t.Helper()
	for _, cm := range objectsOf[*corev1.ConfigMap](objs) {
		if cm.Name == deployName+"-loki-rules" {
			return cm
		}
	}
	t.Fatalf("no ConfigMap %s-loki-rules rendered", deployName)
	return nil
}
