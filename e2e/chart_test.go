package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
)

// chartExamples are the example values files of the chart, relative to the
// module root.
func chartExamples(t *testing.T) []string {
	t.Helper()
	root := moduleRoot(t)
	paths, err := filepath.Glob(filepath.Join(root, chartDir, "examples", "*.yaml"))
	if err != nil || len(paths) < 5 {
		t.Fatalf("chart examples: %v %v", paths, err)
	}
	for i, p := range paths {
		paths[i] = filepath.Join(chartDir, "examples", filepath.Base(p))
	}
	return paths
}

// withEndpoint is the one value the chart needs besides its defaults.
const withEndpoint = "--set=presets.otlp.endpoint=http://otel-gateway.observability.svc.cluster.local:4318"

// renderedConfig is the collector configuration in the rendered ConfigMap,
// parsed.
func renderedConfig(t *testing.T, objs []runtime.Object) map[string]any {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(configText(t, objs)), &cfg); err != nil {
		t.Fatalf("parse the rendered config.yaml: %v", err)
	}
	return cfg
}

// configText is the collector configuration: config.yaml of the ConfigMap
// named as the release (alerts.lokiRules adds another).
func configText(t *testing.T, objs []runtime.Object) string {
	t.Helper()
	for _, cm := range objectsOf[*corev1.ConfigMap](objs) {
		if cm.Name != deployName {
			continue
		}
		text, ok := cm.Data["config.yaml"]
		if !ok {
			t.Fatalf("ConfigMap %s has no config.yaml: %v", cm.Name, cm.Data)
		}
		return text
	}
	t.Fatalf("no ConfigMap %s rendered", deployName)
	return ""
}

// validateConfig runs the collector's validate on the configuration text,
// with the environment the chart's Pods have.
func validateConfig(t *testing.T, text string) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), collectortest.Binary(t), "validate", "--config", path)
	cmd.Env = append(os.Environ(), "POD_IP=10.1.2.3", "POD_NAME=otelcol-k8sevents-abc", "POD_NAMESPACE="+deployNamespace,
		"ELASTIC_API_KEY=key", "GATEWAY_TOKEN=token")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

// dig walks a parsed YAML document by keys.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// TestChartRender checks what `helm template` makes of the chart: it passes
// `helm lint --strict` with every example; bad values fail with a message
// naming the value; the default rendering has the RBAC and security
// settings of deploy/; the RBAC follows mode and namespaces with exactly the
// documented verbs; a changed configuration changes the Pods' checksum; the
// Loki preset is otelcol-config.yaml's transform/loki; and every example's
// configuration passes the collector's validate.
func TestChartRender(t *testing.T) {
	t.Parallel()
	h := newHelm(t, "")
	examples := chartExamples(t)

	t.Run("HelmVersion", func(t *testing.T) {
		// make helm stamps the version tools/helm/go.mod pins.
		gomod := readRoot(t, filepath.Join("tools", "helm", "go.mod"))
		m := regexp.MustCompile(`(?m)^require helm\.sh/helm/v4 (v\S+)$`).FindSubmatch(gomod)
		if m == nil {
			t.Fatal("tools/helm/go.mod requires no helm.sh/helm/v4")
		}
		if got := strings.TrimSpace(h.mustRun(t, "version", "--template", "{{.Version}}")); got != string(m[1]) {
			t.Errorf("helm version %q, want %s (tools/helm/go.mod); run make helm", got, m[1])
		}
	})

	t.Run("Lint", func(t *testing.T) {
		for _, args := range append([][]string{{withEndpoint}}, examplesArgs(examples)...) {
			out, err := h.run(t, append([]string{"lint", "--strict", chartDir}, args...)...)
			if err != nil || !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
				t.Errorf("helm lint --strict %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})

	t.Run("BadValues", func(t *testing.T) {
		for _, tc := range []struct {
			set  []string
			want string
		}{
			{nil, "presets.otlp.endpoint: required when presets.otlp.enabled is true"},
			{[]string{"mode=push"}, "at '/mode': value must be one of 'watch', 'poll'"},
			{[]string{"replicas=0"}, "at '/replicas': minimum: got 0, want 1"},
			{[]string{"replica=3"}, "additional properties 'replica' not allowed"},
			{[]string{"namespaces[0]=Bad_NS"}, "at '/namespaces/0': 'Bad_NS' does not match pattern"},
			{[]string{"image.pullPolicy=Sometimes"}, "at '/image/pullPolicy': value must be one of 'IfNotPresent', 'Always', 'Never'"},
			{[]string{"presets.loki.enabled=true"}, "presets.loki.endpoint: required when presets.loki.enabled is true"},
			{[]string{"presets.otlp.endpoint=gateway:4318"}, "at '/presets/otlp/endpoint': 'gateway:4318' does not match pattern"},
			{[]string{"serviceMonitor.interval=30"}, "at '/serviceMonitor/interval': got number, want string"},
			{[]string{"checkpoint.name=Checkpoint"}, "at '/checkpoint/name': 'Checkpoint' does not match pattern"},
			{[]string{"namespaces[0]=a", "excludeNamespaces[0]=b"}, "excludeNamespaces: only applies when namespaces is empty"},
			{[]string{"podDisruptionBudget.minAvailable=1"}, "podDisruptionBudget: set maxUnavailable or minAvailable, not both"},
			{[]string{"presets.otlp.enabled=false"}, "presets: no pipeline sends the Events anywhere"},
			{[]string{"serviceAccount.create=false"}, "serviceAccount.name: name the ServiceAccount to use when serviceAccount.create is false"},
			{[]string{"alerts.rules=true"}, "at '/alerts': additional properties 'rules' not allowed"},
			{[]string{"eventMetrics.enabled=yes"}, "at '/eventMetrics/enabled': got string, want boolean"},
			{[]string{"alerts.lokiRules.label=loki rule"}, "at '/alerts/lokiRules/label': 'loki rule' does not match pattern"},
			{[]string{"alerts.prometheusRule.enabled=true", "eventMetrics.enabled=false"}, "alerts.prometheusRule.enabled: its rules count k8s_events_total, which eventMetrics serves"},
			{[]string{"alerts.lokiRules.enabled=true", "alerts.receiverRules.enabled=false"}, "alerts.lokiRules.enabled: its rules select the records that the receiver's rules mark as alerts"},
			// The count pipeline sends nowhere but to Prometheus.
			{[]string{"presets.otlp.enabled=false", "eventMetrics.enabled=true"}, "presets: no pipeline sends the Events anywhere"},
		} {
			args := []string{"template", deployName, chartDir}
			if len(tc.set) > 0 && !strings.HasPrefix(tc.set[0], "presets.otlp.") {
				args = append(args, withEndpoint)
			}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := h.run(t, args...)
			if err == nil {
				t.Errorf("helm %s: rendered, want an error", strings.Join(args, " "))
				continue
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("helm %s: the error lacks %q:\n%s", strings.Join(args, " "), tc.want, out)
			}
		}
	})

	t.Run("LikeDeploy", func(t *testing.T) {
		chart, _ := decodeManifest(t, h.template(t, withEndpoint))
		deploy := kustomize(t, "deploy")
		checkDeployment(t, only[*appsv1.Deployment](t, chart))
		compareWithDeploy(t, chart, deploy)
	})

	t.Run("Scope", func(t *testing.T) { checkChartScopes(t, h) })

	t.Run("ConfigChecksum", func(t *testing.T) {
		checksum := func(args ...string) (annotation, config string) {
			objs, _ := decodeManifest(t, h.template(t, append([]string{withEndpoint}, args...)...))
			d := only[*appsv1.Deployment](t, objs)
			sum := sha256.Sum256([]byte(strings.TrimSuffix(configText(t, objs), "\n")))
			return d.Spec.Template.Annotations["checksum/config"], hex.EncodeToString(sum[:])
		}
		base, cfg := checksum()
		if base != cfg {
			t.Errorf("checksum/config %q is not the sha256 of the rendered config.yaml (%s)", base, cfg)
		}
		if other, _ := checksum("--set=clusterName=other"); other == base {
			t.Errorf("checksum/config did not change with the configuration (clusterName)")
		}
		if other, _ := checksum("--set=config.receivers.k8sevents.page_size=100"); other == base {
			t.Errorf("checksum/config did not change with the configuration (config)")
		}
		if same, _ := checksum("--set=podAnnotations.a=b", "--set=replicas=3"); same != base {
			t.Errorf("checksum/config changed with values that are not the configuration: %q, was %q", same, base)
		}
	})

	t.Run("LokiLikeShipped", func(t *testing.T) {
		objs, _ := decodeManifest(t, h.template(t, "-f", filepath.Join(chartDir, "examples", "loki.yaml")))
		cfg := renderedConfig(t, objs)
		var shipped map[string]any
		if err := yaml.Unmarshal([]byte(shippedConfig(t)), &shipped); err != nil {
			t.Fatal(err)
		}
		got, want := dig(cfg, "processors", "transform/loki"), dig(shipped, "processors", "transform/loki")
		if want == nil || !reflect.DeepEqual(got, want) {
			t.Errorf("the chart's transform/loki is not otelcol-config.yaml's:\n got %v\nwant %v", got, want)
		}
		pipeline := dig(cfg, "service", "pipelines", "logs/loki")
		if want := map[string]any{"receivers": []any{"k8sevents"}, "processors": []any{"memory_limiter", "transform/loki"}, "exporters": []any{"otlp_http/loki"}}; !reflect.DeepEqual(pipeline, want) {
			t.Errorf("pipeline logs/loki %v, want %v", pipeline, want)
		}
		if got := dig(cfg, "exporters", "otlp_http/loki", "headers"); !reflect.DeepEqual(got, map[string]any{"X-Scope-OrgID": "platform"}) {
			t.Errorf("otlp_http/loki headers %v, want the example's X-Scope-OrgID", got)
		}
		if got := dig(cfg, "receivers", "k8sevents", "severity_text"); got != "level" {
			t.Errorf("severity_text %v, want level (alerts.receiverRules, on by default): Loki's detected_level", got)
		}
		if dig(cfg, "exporters", "otlp_http") != nil {
			t.Errorf("presets.otlp.enabled=false left the otlp_http exporter in")
		}
	})

	t.Run("ConfigMerge", func(t *testing.T) {
		objs, _ := decodeManifest(t, h.template(t, "-f", filepath.Join(chartDir, "examples", "config-override.yaml")))
		cfg := renderedConfig(t, objs)
		for _, c := range []struct {
			path []string
			want any
		}{
			{[]string{"receivers", "k8sevents", "field_selector"}, "type=Warning"},
			{[]string{"receivers", "k8sevents", "exclude_namespaces"}, []any{"kube-system"}},
			{[]string{"receivers", "k8sevents", "leader_election", "lease_duration"}, "10s"},
			{[]string{"receivers", "k8sevents", "leader_election", "lease_name"}, "k8sevents"}, // kept beside the merged keys
			{[]string{"receivers", "k8sevents", "mode"}, "watch"},
			{[]string{"processors", "memory_limiter"}, nil},                        // null removes
			{[]string{"service", "pipelines", "logs/otlp", "processors"}, []any{}}, // a list replaces
			{[]string{"service", "pipelines", "logs/otlp", "exporters"}, []any{"otlp_http"}},
			{[]string{"exporters", "otlp_http", "headers", "Authorization"}, "Bearer ${env:GATEWAY_TOKEN}"},
			{[]string{"exporters", "otlp_http", "sending_queue", "enabled"}, false},
		} {
			if got := dig(cfg, c.path...); !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s: %#v, want %#v", strings.Join(c.path, "::"), got, c.want)
			}
		}
		env := only[*appsv1.Deployment](t, objs).Spec.Template.Spec.Containers[0].Env
		if !slices.ContainsFunc(env, func(e corev1.EnvVar) bool {
			return e.Name == "GATEWAY_TOKEN" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "gateway-token"
		}) {
			t.Errorf("extraEnv GATEWAY_TOKEN missing from the container's env: %v", env)
		}
	})

	t.Run("ExamplesValidate", func(t *testing.T) {
		for _, args := range append([][]string{{withEndpoint}}, examplesArgs(examples)...) {
			objs, _ := decodeManifest(t, h.template(t, args...))
			if err := validateConfig(t, configText(t, objs)); err != nil {
				t.Errorf("the configuration of helm template %s does not validate: %v", strings.Join(args, " "), err)
			}
		}
	})

	t.Run("Scheduling", func(t *testing.T) {
		objs, _ := decodeManifest(t, h.template(t, "-f", filepath.Join(chartDir, "examples", "scheduling.yaml")))
		d := only[*appsv1.Deployment](t, objs)
		spec := d.Spec.Template.Spec
		c := spec.Containers[0]
		for _, check := range []struct {
			what string
			ok   bool
		}{
			{"replicas 3", *d.Spec.Replicas == 3},
			{"image from the registry, tag appVersion", c.Image == "registry.example.com/observability/otelcol-k8sevents:"+distVersion(t) && c.ImagePullPolicy == corev1.PullAlways},
			{"pull secret", len(spec.ImagePullSecrets) == 1 && spec.ImagePullSecrets[0].Name == "registry-example-com"},
			{"priority class", spec.PriorityClassName == "observability-critical"},
			{"node selector", spec.NodeSelector["node-role.example.com/observability"] == "true"},
			{"toleration", len(spec.Tolerations) == 1 && spec.Tolerations[0].Key == "dedicated"},
			{"affinity replaced", spec.Affinity != nil && spec.Affinity.NodeAffinity != nil && spec.Affinity.PodAntiAffinity == nil},
			{"spread with the Pods' labels filled in", len(spec.TopologySpreadConstraints) == 1 &&
				spec.TopologySpreadConstraints[0].LabelSelector != nil &&
				reflect.DeepEqual(spec.TopologySpreadConstraints[0].LabelSelector.MatchLabels, d.Spec.Selector.MatchLabels)},
			{"pod annotation beside the checksum", d.Spec.Template.Annotations["sidecar.istio.io/inject"] == "false" && d.Spec.Template.Annotations["checksum/config"] != ""},
			{"pod label", d.Spec.Template.Labels["team"] == "platform"},
			{"memory limit", c.Resources.Limits.Memory().String() == "512Mi"},
			{"service account annotation", only[*corev1.ServiceAccount](t, objs).Annotations["example.com/owner"] == "platform"},
		} {
			if !check.ok {
				t.Errorf("scheduling.yaml: %s not rendered", check.what)
			}
		}
		pdb := only[*policyv1.PodDisruptionBudget](t, objs)
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 || pdb.Spec.MaxUnavailable != nil {
			t.Errorf("PodDisruptionBudget %+v, want minAvailable 2 only", pdb.Spec)
		}
	})
}

func examplesArgs(examples []string) [][]string {
	var out [][]string
	for _, e := range examples {
		out = append(out, []string{"-f", e})
	}
	return out
}

// compareWithDeploy holds the chart's objects to deploy/'s: the same RBAC
// rules bound to the same ServiceAccount, the same security settings,
// replicas, probes, ports and resources.
func compareWithDeploy(t *testing.T, chart, deploy []runtime.Object) {
	t.Helper()
	if got, want := only[*rbacv1.ClusterRole](t, chart).Rules, only[*rbacv1.ClusterRole](t, deploy).Rules; !slices.EqualFunc(got, want, ruleEqual) {
		t.Errorf("ClusterRole rules %v, deploy/ has %v", got, want)
	}
	if got, want := only[*rbacv1.Role](t, chart).Rules, only[*rbacv1.Role](t, deploy).Rules; !slices.EqualFunc(got, want, ruleEqual) {
		t.Errorf("Role rules %v, deploy/ has %v", got, want)
	}
	if got := only[*rbacv1.Role](t, chart); got.Namespace != deployNamespace || !slices.EqualFunc(got.Rules, readmeRole(t).Rules, ruleEqual) {
		t.Errorf("Role %s/%s is not the one of receiver/k8sevents/README.md#rbac", got.Namespace, got.Name)
	}
	crb, role := only[*rbacv1.ClusterRoleBinding](t, chart), only[*rbacv1.ClusterRole](t, chart)
	if !reflect.DeepEqual(crb.Subjects, only[*rbacv1.ClusterRoleBinding](t, deploy).Subjects) || crb.RoleRef.Name != role.Name || crb.RoleRef.Kind != "ClusterRole" {
		t.Errorf("ClusterRoleBinding %s: subjects %v, roleRef %v; want deploy/'s subjects and the chart's ClusterRole", crb.Name, crb.Subjects, crb.RoleRef)
	}
	rb := only[*rbacv1.RoleBinding](t, chart)
	if !reflect.DeepEqual(rb.Subjects, only[*rbacv1.RoleBinding](t, deploy).Subjects) || rb.RoleRef.Name != only[*rbacv1.Role](t, chart).Name {
		t.Errorf("RoleBinding %s: subjects %v, roleRef %v; want deploy/'s subjects and the chart's Role", rb.Name, rb.Subjects, rb.RoleRef)
	}
	if sa := only[*corev1.ServiceAccount](t, chart); sa.Name != only[*corev1.ServiceAccount](t, deploy).Name || sa.Namespace != deployNamespace {
		t.Errorf("ServiceAccount %s/%s, deploy/ has %s", sa.Namespace, sa.Name, only[*corev1.ServiceAccount](t, deploy).Name)
	}

	got, want := only[*appsv1.Deployment](t, chart), only[*appsv1.Deployment](t, deploy)
	gs, ws := got.Spec.Template.Spec, want.Spec.Template.Spec
	gc, wc := gs.Containers[0], ws.Containers[0]
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"replicas", got.Spec.Replicas, want.Spec.Replicas},
		{"the Pod's securityContext", gs.SecurityContext, ws.SecurityContext},
		{"the container's securityContext", gc.SecurityContext, wc.SecurityContext},
		{"hostNetwork", gs.HostNetwork, ws.HostNetwork},
		{"serviceAccountName", gs.ServiceAccountName, ws.ServiceAccountName},
		{"image", gc.Image, wc.Image},
		{"args", gc.Args, wc.Args},
		{"ports (but eventMetrics')", slices.DeleteFunc(slices.Clone(gc.Ports), func(p corev1.ContainerPort) bool { return p.Name == "event-metrics" }), wc.Ports},
		{"readinessProbe", gc.ReadinessProbe, wc.ReadinessProbe},
		{"livenessProbe", gc.LivenessProbe, wc.LivenessProbe},
		{"resources", gc.Resources, wc.Resources},
		{"volumeMounts", gc.VolumeMounts, wc.VolumeMounts},
		{"the anti-affinity's topology key", topologyKey(gs.Affinity), topologyKey(ws.Affinity)},
	} {
		if !equality.Semantic.DeepEqual(c.got, c.want) {
			t.Errorf("the chart's %s is %+v; deploy/'s is %+v", c.what, c.got, c.want)
		}
	}
	for _, name := range []string{"POD_NAME", "POD_NAMESPACE", "POD_IP"} {
		if !slices.ContainsFunc(gc.Env, func(e corev1.EnvVar) bool { return e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil }) {
			t.Errorf("the container has no %s from the downward API", name)
		}
	}
	if ru := got.Spec.Strategy.RollingUpdate; ru == nil || *ru.MaxUnavailable != intstr.FromInt32(0) || *ru.MaxSurge != intstr.FromInt32(1) {
		t.Errorf("rolling update %+v, want maxSurge 1 and maxUnavailable 0 (a new replica is ready before an old one stops)", got.Spec.Strategy.RollingUpdate)
	}
}

// rulesOf lists the rules of roles (nil roles give none).
func rulesOf[R interface {
	*rbacv1.Role | *rbacv1.ClusterRole
}](roles []R) [][]rbacv1.PolicyRule {
	var out [][]rbacv1.PolicyRule
	for _, r := range roles {
		switch r := any(r).(type) {
		case *rbacv1.Role:
			if r != nil {
				out = append(out, r.Rules)
			}
		case *rbacv1.ClusterRole:
			out = append(out, r.Rules)
		}
	}
	return out
}

func topologyKey(a *corev1.Affinity) string {
	if a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		return ""
	}
	return a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey
}

// ownerRules are the rules of the receiver's extract::owners
// (receiver/k8sevents/README.md#rbac), on by default in the chart.
var ownerRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
	{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: []string{"get"}},
	{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"get"}},
}

// labelRules are the rules of extract::labels and ::annotations: every
// kind of involved object and top-level owner; nodes only cluster-wide.
func labelRules(clusterWide bool) []rbacv1.PolicyRule {
	core := []string{"pods"}
	if clusterWide {
		core = append(core, "nodes")
	}
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: core, Verbs: []string{"get"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets", "statefulsets", "daemonsets"}, Verbs: []string{"get"}},
		{APIGroups: []string{"batch"}, Resources: []string{"jobs", "cronjobs"}, Verbs: []string{"get"}},
	}
}

// checkChartScopes renders the RBAC for each mode and scope: exactly the
// documented verbs on events (poll: list; watch: list, watch) and the get
// rules of extract (owners by default; labels and annotations), cluster-wide
// with a ClusterRole or in each of namespaces with a Role and nothing
// cluster-wide, and what the receiver is configured to read.
func checkChartScopes(t *testing.T, h *helmCLI) {
	t.Helper()
	for _, tc := range []struct {
		name       string
		set        []string
		namespaces []string // empty: cluster-wide
		verbs      []string
		extract    []rbacv1.PolicyRule // the rules of extract, after those on events
	}{
		{"watch all", nil, nil, []string{"list", "watch"}, ownerRules},
		{"poll all", []string{"mode=poll"}, nil, []string{"list"}, ownerRules},
		{"poll all but kube-system", []string{"mode=poll", "excludeNamespaces={kube-system}"}, nil, []string{"list"}, ownerRules},
		{"watch two", []string{"namespaces={my-app,my-db}"}, []string{"my-app", "my-db"}, []string{"list", "watch"}, ownerRules},
		{"poll one", []string{"mode=poll", "namespaces={my-app}"}, []string{"my-app"}, []string{"list"}, ownerRules},
		{"poll its own", []string{"mode=poll", "namespaces={" + deployNamespace + "}"}, []string{deployNamespace}, []string{"list"}, ownerRules},
		{"watch all without owners", []string{"extract.owners=false"}, nil, []string{"list", "watch"}, nil},
		{"poll one without owners", []string{"mode=poll", "extract.owners=false", "namespaces={my-app}"}, []string{"my-app"}, []string{"list"}, nil},
		{"watch all with labels", []string{"extract.labels={team}"}, nil, []string{"list", "watch"}, labelRules(true)},
		{"watch one with annotations", []string{"extract.annotations={owner}", "namespaces={my-app}"}, []string{"my-app"}, []string{"list", "watch"}, labelRules(false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{withEndpoint}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			objs, _ := decodeManifest(t, h.template(t, args...))
			want := append([]rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: tc.verbs}}, tc.extract...)
			clusterRoles, crbs := objectsOf[*rbacv1.ClusterRole](objs), objectsOf[*rbacv1.ClusterRoleBinding](objs)
			eventRoles := map[string]*rbacv1.Role{}
			for _, r := range objectsOf[*rbacv1.Role](objs) {
				if r.Name != deployName { // the checkpoint's and Lease's Role
					eventRoles[r.Namespace] = r
				}
			}
			if len(tc.namespaces) == 0 {
				if len(clusterRoles) != 1 || len(crbs) != 1 || !slices.EqualFunc(clusterRoles[0].Rules, want, ruleEqual) {
					t.Errorf("%d ClusterRoles (rules %v) with %d bindings, want one with only %v", len(clusterRoles), rulesOf(clusterRoles), len(crbs), want)
				}
				if len(eventRoles) != 0 {
					t.Errorf("Roles for Events %v beside the ClusterRole", eventRoles)
				}
			} else {
				if len(clusterRoles)+len(crbs) != 0 {
					t.Errorf("cluster-wide RBAC when reading the namespaces %v: ClusterRoles with rules %v", tc.namespaces, rulesOf(clusterRoles))
				}
				for _, ns := range tc.namespaces {
					if r := eventRoles[ns]; r == nil || !slices.EqualFunc(r.Rules, want, ruleEqual) {
						t.Errorf("Role in %s: %v, want one with only %v", ns, rulesOf([]*rbacv1.Role{r}), want)
					}
				}
				if len(eventRoles) != len(tc.namespaces) {
					t.Errorf("Roles for Events in %v, want only in %v", slices.Sorted(maps.Keys(eventRoles)), tc.namespaces)
				}
				bound := 0
				for _, rb := range objectsOf[*rbacv1.RoleBinding](objs) {
					if r := eventRoles[rb.Namespace]; r != nil && rb.RoleRef.Name == r.Name &&
						len(rb.Subjects) == 1 && rb.Subjects[0].Name == deployName && rb.Subjects[0].Namespace == deployNamespace {
						bound++
					}
				}
				if bound != len(tc.namespaces) {
					t.Errorf("%d of the %d Roles for Events bound to the ServiceAccount %s/%s", bound, len(tc.namespaces), deployNamespace, deployName)
				}
			}
			got := dig(renderedConfig(t, objs), "receivers", "k8sevents", "namespaces")
			var wantNS any
			if len(tc.namespaces) > 0 {
				var l []any
				for _, ns := range tc.namespaces {
					l = append(l, ns)
				}
				wantNS = l
			}
			if !reflect.DeepEqual(got, wantNS) {
				t.Errorf("receiver namespaces %v, want %v", got, wantNS)
			}
		})
	}

	t.Run("no rbac, an existing ServiceAccount", func(t *testing.T) {
		objs, _ := decodeManifest(t, h.template(t, withEndpoint, "--set=rbac.create=false", "--set=serviceAccount.create=false", "--set=serviceAccount.name=existing"))
		for _, o := range objs {
			switch o.(type) {
			case *rbacv1.Role, *rbacv1.RoleBinding, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding, *corev1.ServiceAccount:
				t.Errorf("rendered %T with rbac.create and serviceAccount.create false", o)
			}
		}
		if sa := only[*appsv1.Deployment](t, objs).Spec.Template.Spec.ServiceAccountName; sa != "existing" {
			t.Errorf("serviceAccountName %q, want existing", sa)
		}
	})
}
