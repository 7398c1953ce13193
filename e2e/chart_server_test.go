package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// EnvCRDs names the environment variable that points at the directory of
// the Prometheus Operator's CRDs; `make test` sets it to what `make crds`
// generates (_build/crds).
const EnvCRDs = "K8SEVENTS_CRDS"

// The CRDs of `make crds`: file names in $K8SEVENTS_CRDS and object names.
var operatorCRDs = map[string]string{
	"monitoring.coreos.com_servicemonitors.yaml": "servicemonitors.monitoring.coreos.com",
	"monitoring.coreos.com_prometheusrules.yaml": "prometheusrules.monitoring.coreos.com",
}

// TestChartServerDryRun renders the chart with each example values file
// and applies the whole manifest to a real API server with `kubectl apply
// --dry-run=server`: the server validates every object (strict field
// validation, admission) without keeping it. The release's namespace
// enforces Pod Security restricted and warns about it, so a Pod template
// that is not restricted would be reported. The Prometheus Operator's CRDs
// of the ServiceMonitor and the PrometheusRule (generated from the
// operator's Go types by `make crds`) are installed first, so the server
// holds those two to the operator's schema as well; checkCustomResources
// also checks what they say (the Service the ServiceMonitor scrapes, the
// groups of alerts/prometheusrule.yaml). The shipped
// alerts/prometheusrule.yaml is applied the same way, and a subtest proves
// the schema is enforced: a misspelled field and a bad interval are refused.
func TestChartServerDryRun(t *testing.T) {
	t.Parallel()
	h := newHelm(t, "")
	crds := testbin.Find(t, EnvCRDs, "_build/crds", "run `make crds`")
	cp := startControlPlane(t, kubeOptions())
	c := cp.Client()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: deployNamespace, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	}}}
	if _, err := c.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createNamespaces(t, c, "my-app", "my-db") // examples/namespaced.yaml reads them
	installOperatorCRDs(t, cp, crds)

	for _, args := range append([][]string{{withEndpoint}}, examplesArgs(chartExamples(t))...) {
		name := "defaults"
		if args[0] == "-f" {
			name = strings.TrimSuffix(filepath.Base(args[1]), ".yaml")
		}
		t.Run(name, func(t *testing.T) {
			manifest := h.template(t, args...)
			objs, unknown := decodeManifest(t, manifest)
			checkCustomResources(t, unknown, objs, exampleValues(t, args))
			path := filepath.Join(t.TempDir(), "manifest.yaml")
			if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
				t.Fatal(err)
			}
			out := kubectl(t, cp, "apply", "--dry-run=server", "-f", path)
			if strings.Contains(out, "Warning:") {
				t.Errorf("the API server warned:\n%s", out)
			}
			var refs []string
			for _, o := range objs {
				gvr, _, objName, err := objectRef(o)
				if err != nil {
					t.Fatal(err)
				}
				kinds, _, _ := scheme.Scheme.ObjectKinds(o)
				ref := strings.ToLower(kinds[0].Kind)
				if gvr.Group != "" {
					ref += "." + gvr.Group
				}
				refs = append(refs, ref+"/"+objName)
			}
			for _, doc := range unknown {
				refs = append(refs, customResourceRef(t, doc))
			}
			for _, ref := range refs {
				if want := ref + " created (server dry run)"; !strings.Contains(out, want) {
					t.Errorf("kubectl did not report %q", want)
				}
			}
		})
	}

	t.Run("shipped-prometheusrule", func(t *testing.T) {
		out := kubectl(t, cp, "apply", "--dry-run=server", "-f", "alerts/prometheusrule.yaml")
		if want := "prometheusrule.monitoring.coreos.com/k8s-events created (server dry run)"; !strings.Contains(out, want) {
			t.Errorf("kubectl did not report %q", want)
		}
	})

	// The schema is enforced: a copy of alerts/prometheusrule.yaml whose first
	// rule misspells expr, and the chart's ServiceMonitor with an interval
	// that is no duration, are refused with the field named.
	t.Run("refused", func(t *testing.T) {
		rule := string(readRoot(t, "alerts/prometheusrule.yaml"))
		badRule := strings.Replace(rule, "\n          expr: ", "\n          expresion: ", 1)
		if badRule == rule {
			t.Fatal("no expr in the first rule of alerts/prometheusrule.yaml")
		}
		checkRefused(t, cp, badRule, `unknown field "spec.groups[0].rules[0].expresion"`)

		_, unknown := decodeManifest(t, h.template(t, "-f", filepath.Join(chartDir, "examples", "servicemonitor.yaml")))
		var monitor string
		for _, doc := range unknown {
			if strings.Contains(doc, "\nkind: ServiceMonitor") {
				monitor = doc
			}
		}
		badMonitor := strings.Replace(monitor, "interval: 15s", "interval: often", 1)
		if badMonitor == monitor {
			t.Fatalf("no ServiceMonitor with interval: 15s rendered from examples/servicemonitor.yaml:\n%v", unknown)
		}
		checkRefused(t, cp, badMonitor, `spec.endpoints[0].interval: Invalid value: "often"`)
	})
}

// installOperatorCRDs creates the CRDs of `make crds` in the control plane
// and waits until they are established and the API server's discovery
// serves their resources.
func installOperatorCRDs(t *testing.T, cp *kubetest.ControlPlane, dir string) {
	t.Helper()
	args := []string{"create"}
	var names []string
	for file, name := range operatorCRDs {
		args = append(args, "-f", filepath.Join(dir, file))
		names = append(names, "crd/"+name)
	}
	out := kubectl(t, cp, args...)
	for _, name := range operatorCRDs {
		if want := "customresourcedefinition.apiextensions.k8s.io/" + name + " created"; !strings.Contains(out, want) {
			t.Errorf("kubectl did not report %q", want)
		}
	}
	// The timeout only bounds a hang.
	kubectl(t, cp, append([]string{"wait", "--for", "condition=established", "--timeout", "5m"}, names...)...)
	poll(t, "discovery of monitoring.coreos.com/v1", func(context.Context) (bool, error) {
		list, err := cp.Client().Discovery().ServerResourcesForGroupVersion("monitoring.coreos.com/v1")
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		found := map[string]bool{}
		for _, r := range list.APIResources {
			found[r.Name] = true
		}
		return found["servicemonitors"] && found["prometheusrules"], nil
	})
}

// customResourceRef is what kubectl calls the object of a rendered document
// of a kind the client does not know: kind.group/name.
func customResourceRef(t *testing.T, doc string) string {
	t.Helper()
	var o struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
	}
	if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
		t.Fatalf("decode %v\n%s", err, doc)
	}
	group, _, ok := strings.Cut(o.APIVersion, "/")
	if !ok || o.Kind == "" || o.Metadata.Name == "" {
		t.Fatalf("a document without apiVersion group/version, kind or name:\n%s", doc)
	}
	return strings.ToLower(o.Kind) + "." + group + "/" + o.Metadata.Name
}

// checkRefused applies manifest with --dry-run=server and fails t unless the
// API server refuses it with an error that contains want.
func checkRefused(t *testing.T, cp *kubetest.ControlPlane, manifest, want string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "refused.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := tryKubectl(t, cp, "apply", "--dry-run=server", "-f", path)
	if err == nil || !strings.Contains(out, want) || strings.Contains(out, "created") {
		t.Errorf("kubectl apply (error %v):\n%s\nwant a refusal that says %s", err, out, want)
	}
}

// exampleValues parses the values file of helm arguments "-f file" (nil
// for other arguments).
func exampleValues(t *testing.T, args []string) map[string]any {
	t.Helper()
	if len(args) != 2 || args[0] != "-f" {
		return nil
	}
	var v map[string]any
	if err := yaml.Unmarshal(readRoot(t, args[1]), &v); err != nil {
		t.Fatalf("parse %s: %v", args[1], err)
	}
	return v
}

// stringMap is a parsed YAML map of strings.
func stringMap(v any) map[string]string {
	out := map[string]string{}
	m, _ := v.(map[string]any)
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// checkCustomResources checks the documents of kinds the client does not
// know (the Prometheus Operator's) against the values that made them: a ServiceMonitor when serviceMonitor.enabled, a PrometheusRule
// with the groups of alerts/prometheusrule.yaml when
// alerts.prometheusRule.enabled, and nothing else.
func checkCustomResources(t *testing.T, unknown []string, objs []runtime.Object, values map[string]any) {
	t.Helper()
	var monitors, rules []string
	for _, doc := range unknown {
		switch {
		case strings.Contains(doc, "\nkind: ServiceMonitor"):
			monitors = append(monitors, doc)
		case strings.Contains(doc, "\nkind: PrometheusRule"):
			rules = append(rules, doc)
		default:
			t.Errorf("an object of a kind the client does not know:\n%s", doc)
		}
	}
	if len(monitors) > 0 || dig(values, "serviceMonitor", "enabled") == true {
		checkServiceMonitor(t, monitors, objs, values)
	}
	if len(rules) > 0 || dig(values, "alerts", "prometheusRule", "enabled") == true {
		rule := prometheusRuleOf(t, rules)
		checkPrometheusRuleGroups(t, rule.Spec)
		for k, v := range stringMap(dig(values, "alerts", "prometheusRule", "labels")) {
			if rule.Metadata.Labels[k] != v {
				t.Errorf("PrometheusRule labels %v, want %s=%s (alerts.prometheusRule.labels)", rule.Metadata.Labels, k, v)
			}
		}
		if rule.Metadata.Namespace != deployNamespace {
			t.Errorf("PrometheusRule in namespace %q, want %s", rule.Metadata.Namespace, deployNamespace)
		}
	}
}

// checkServiceMonitor checks the one ServiceMonitor against the Service
// rendered with it and the values that made it: it selects the Service by
// its labels, carries serviceMonitor.labels, and scrapes at
// serviceMonitor.interval the Service's ports by name: the collector's own
// metrics (8888) and k8s_events_total (8889, eventMetrics: on by default).
func checkServiceMonitor(t *testing.T, docs []string, objs []runtime.Object, values map[string]any) {
	t.Helper()
	if len(docs) != 1 {
		t.Fatalf("%d ServiceMonitors rendered, want one", len(docs))
	}
	var sm struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name      string            `yaml:"name"`
			Namespace string            `yaml:"namespace"`
			Labels    map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Endpoints []struct {
				Port     string `yaml:"port"`
				Interval string `yaml:"interval"`
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(strings.NewReader(docs[0]))
	dec.KnownFields(true)
	if err := dec.Decode(&sm); err != nil {
		t.Fatalf("decode the ServiceMonitor: %v\n%s", err, docs[0])
	}
	svc := only[*corev1.Service](t, objs)
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s; the Service's labels are %v", k, v, svc.Labels)
		}
	}
	for k, v := range stringMap(dig(values, "serviceMonitor", "labels")) {
		if sm.Metadata.Labels[k] != v {
			t.Errorf("ServiceMonitor labels %v, want %s=%s (serviceMonitor.labels)", sm.Metadata.Labels, k, v)
		}
	}
	interval, _ := dig(values, "serviceMonitor", "interval").(string)
	if interval == "" {
		interval = "30s"
	}
	wantPorts := map[string]int32{"metrics": 8888, "event-metrics": 8889}
	if dig(values, "eventMetrics", "enabled") == false {
		delete(wantPorts, "event-metrics")
	}
	var endpoints, wantEndpoints []string
	for _, e := range sm.Spec.Endpoints {
		endpoints = append(endpoints, e.Port+" every "+e.Interval)
	}
	for _, name := range []string{"metrics", "event-metrics"} {
		if _, ok := wantPorts[name]; ok {
			wantEndpoints = append(wantEndpoints, name+" every "+interval)
		}
	}
	got := fmt.Sprintf("%s %s ns=%s endpoints=%q", sm.APIVersion, sm.Kind, sm.Metadata.Namespace, endpoints)
	want := fmt.Sprintf("monitoring.coreos.com/v1 ServiceMonitor ns=%s endpoints=%q", deployNamespace, wantEndpoints)
	if got != want || len(sm.Spec.Selector.MatchLabels) == 0 {
		t.Errorf("ServiceMonitor %s, want %s with a selector", got, want)
	}
	ports := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.String() == p.Name {
			ports[p.Name] = p.Port
		}
	}
	if !reflect.DeepEqual(ports, wantPorts) || len(svc.Spec.Ports) != len(wantPorts) {
		t.Errorf("the metrics Service's ports %+v, want %v, each to the container's port of its name", svc.Spec.Ports, wantPorts)
	}
}
