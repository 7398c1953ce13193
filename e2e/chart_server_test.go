package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
)

// TestChartServerDryRun renders the chart with each example values file
// and applies the manifest to a real API server with `kubectl apply
// --dry-run=server`: the server validates every object (strict field
// validation, admission) without keeping it. The release's namespace
// enforces Pod Security restricted and warns about it, so a Pod template
// that is not restricted would be reported. The ServiceMonitor's CRD is
// not on the test's server; its fields are checked against the Service it
// scrapes instead.
func TestChartServerDryRun(t *testing.T) {
	t.Parallel()
	h := newHelm(t, "")
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

	for _, args := range append([][]string{{withEndpoint}}, examplesArgs(chartExamples(t))...) {
		name := "defaults"
		if args[0] == "-f" {
			name = strings.TrimSuffix(filepath.Base(args[1]), ".yaml")
		}
		t.Run(name, func(t *testing.T) {
			manifest := h.template(t, args...)
			objs, unknown := decodeManifest(t, manifest)
			var docs []string
			for doc := range strings.SplitSeq(manifest, "\n---") {
				if !strings.Contains(doc, "kind: ServiceMonitor") {
					docs = append(docs, doc)
				}
			}
			if len(unknown) > 0 {
				checkServiceMonitor(t, unknown, objs)
			}
			path := filepath.Join(t.TempDir(), "manifest.yaml")
			if err := os.WriteFile(path, []byte(strings.Join(docs, "\n---")), 0o600); err != nil {
				t.Fatal(err)
			}
			out := kubectl(t, cp, "apply", "--dry-run=server", "-f", path)
			if strings.Contains(out, "Warning:") {
				t.Errorf("the API server warned:\n%s", out)
			}
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
				if want := ref + "/" + objName + " created (server dry run)"; !strings.Contains(out, want) {
					t.Errorf("kubectl did not report %q", want)
				}
			}
		})
	}
}

// checkServiceMonitor checks the one ServiceMonitor against the Service
// rendered with it: it selects the Service by its labels and scrapes the
// Service's port by name.
func checkServiceMonitor(t *testing.T, docs []string, objs []runtime.Object) {
	t.Helper()
	if len(docs) != 1 {
		t.Fatalf("%d objects of kinds the client does not know, want one ServiceMonitor", len(docs))
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
	got := fmt.Sprintf("%s %s ns=%s release=%s endpoints=%+v", sm.APIVersion, sm.Kind, sm.Metadata.Namespace, sm.Metadata.Labels["release"], sm.Spec.Endpoints)
	want := fmt.Sprintf("monitoring.coreos.com/v1 ServiceMonitor ns=%s release=prometheus endpoints=[{Port:%s Interval:15s}]", deployNamespace, svc.Spec.Ports[0].Name)
	if got != want || len(sm.Spec.Selector.MatchLabels) == 0 {
		t.Errorf("ServiceMonitor %s, want %s with a selector", got, want)
	}
	if p := svc.Spec.Ports[0]; p.Port != 8888 || p.TargetPort.String() != "metrics" {
		t.Errorf("the metrics Service's port %+v, want 8888 to the container's port metrics", p)
	}
}
