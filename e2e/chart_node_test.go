package e2e

import (
	"bufio"
	"context"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// chartNodeValues is what the chart tests add to the documented commands:
// only where the test's node differs from a cluster.
const chartNodeValues = "e2e/testdata/chart-node.yaml"

// docCommands are the commands of the ```sh blocks under the Markdown
// heading (up to the next heading of its level or above), a line ending in
// a backslash joined with the next.
func docCommands(t *testing.T, file, heading string) []string {
	t.Helper()
	data := readRoot(t, file)
	level := strings.Index(heading, " ")
	var (
		out            []string
		in, sh         bool
		line           strings.Builder
		headingPattern = regexp.MustCompile(`^#{1,` + strconv.Itoa(level) + `} `)
	)
	s := bufio.NewScanner(strings.NewReader(string(data)))
	for s.Scan() {
		text := s.Text()
		switch {
		case text == heading:
			in = true
			continue
		case in && !sh && headingPattern.MatchString(text):
			in = false
		}
		if !in {
			continue
		}
		switch trimmed := strings.TrimSpace(text); {
		case trimmed == "```sh":
			sh = true
		case sh && trimmed == "```":
			sh = false
		case sh:
			if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
				line.WriteString(cont)
				continue
			}
			line.WriteString(trimmed)
			out = append(out, line.String())
			line.Reset()
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no commands under %q", file, heading)
	}
	return out
}

// docRunner runs documented kubectl and helm commands as written, against
// the test's cluster.
type docRunner struct {
	cp   *kubetest.ControlPlane
	helm *helmCLI
}

// run runs one documented command; helm gets extra arguments after the
// documented ones. Commands are plain words: what a shell would do with
// quotes or variables is not redone here.
func (d docRunner) run(t *testing.T, line string, extra ...string) string {
	t.Helper()
	if strings.ContainsAny(line, "\"'$|&;<>`") {
		t.Fatalf("documented command %q is not plain words", line)
	}
	words := strings.Fields(line)
	switch words[0] {
	case "kubectl":
		return kubectl(t, d.cp, words[1:]...)
	case "helm":
		args := append(words[1:], extra...)
		out := d.helm.mustRun(t, args...)
		t.Logf("helm %s:\n%s", strings.Join(args, " "), out)
		return out
	}
	t.Fatalf("documented command %q: neither kubectl nor helm", line)
	return ""
}

// notesCommands are the kubectl commands of the notes helm printed: the
// lines indented by two spaces that start with kubectl.
func notesCommands(out string) []string {
	_, notes, _ := strings.Cut(out, "NOTES:")
	var cmds []string
	for line := range strings.SplitSeq(notes, "\n") {
		if strings.HasPrefix(line, "  kubectl ") {
			cmds = append(cmds, strings.TrimSpace(line))
		}
	}
	return cmds
}

// shell runs a command line as a user would in bash, with the test's
// kubectl first in PATH and the cluster's kubeconfig.
func shell(t *testing.T, cp *kubetest.ControlPlane, line string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "bash", "-o", "pipefail", "-c", line)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cp.Kubeconfig(), "PATH="+cp.BinDir()+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	t.Logf("%s\n%s", line, strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return string(out)
}

// TestChartOnNode installs the chart as the README says (its commands as
// written, plus e2e/testdata/chart-node.yaml and the test's OTLP sink as
// the endpoint) onto a real node, and checks: kubelet Events arrive once,
// with their time and attributes; the commands the notes print show the
// leader, its exported records and its log; the collector's token may do
// nothing beyond the documented rules; the README's `helm upgrade`, which
// changes the configuration, rolls both replicas while Events keep coming
// and loses none; and the README's `helm uninstall` removes every object the
// chart made, leaving the checkpoint and the Lease, which the README's
// kubectl commands then delete.
func TestChartOnNode(t *testing.T) {
	t.Parallel()
	cp, sink := startNode(t)
	c := cp.Client()
	d := docRunner{cp: cp, helm: newHelm(t, cp.Kubeconfig())}

	install := docCommands(t, "README.md", "## Deploy to a cluster")
	if chartInstall := docCommands(t, chartDir+"/README.md", "## Install"); len(install) < len(chartInstall) || !slices.Equal(install[:len(chartInstall)], chartInstall) {
		t.Fatalf("the README's first commands %q are not the chart README's install commands %q", install, chartInstall)
	}
	var notes, cluster string
	for _, line := range install {
		if !strings.HasPrefix(line, "kubectl ") && !strings.HasPrefix(line, "helm ") {
			break // the kustomize way follows
		}
		if !strings.HasPrefix(line, "helm install ") {
			d.run(t, line)
			continue
		}
		createEndpoints(t, cp, sink)
		notes = d.run(t, line, "-f", chartNodeValues, "--set", "presets.otlp.endpoint="+sink.Endpoint(), "--set", "alerts.lokiRules.enabled=true")
		if m := regexp.MustCompile(`--set clusterName=(\S+)`).FindStringSubmatch(line); m != nil {
			cluster = m[1]
		}
	}
	if notes == "" {
		t.Fatalf("no helm install among the README's commands %q", install)
	}
	ns, err := c.CoreV1().Namespaces().Get(t.Context(), deployNamespace, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Fatalf("namespace %s: labels %v; want Pod Security restricted enforced (the Pods run under it)", deployNamespace, ns.Labels)
	}
	waitDeployment(t, c)
	pods := collectorPods(t, c)
	for _, p := range pods {
		if p.Spec.NodeName != kubetest.NodeName || !strings.Contains(podLog(t, c, deployNamespace, p.Name), "Everything is ready") {
			t.Fatalf("collector pod %s: node %q; want it running on %s", p.Name, p.Spec.NodeName, kubetest.NodeName)
		}
	}

	t.Run("KubeletEvents", func(t *testing.T) {
		runWorkload(t, c)
		for _, name := range []string{kubetest.PodStarted, kubetest.PodCrashLoop, kubetest.PodOOM, kubetest.PodLiveness} {
			if err := c.CoreV1().Pods(workloadNamespace).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
				t.Fatalf("delete pod %s: %v", name, err)
			}
		}
		poll(t, "the workload pods gone", func(ctx context.Context) (bool, error) {
			l, err := c.CoreV1().Pods(workloadNamespace).List(ctx, metav1.ListOptions{})
			return err == nil && len(l.Items) == 0, err
		})
		events := settleAll(t, c, sink, deployInterval)
		recs := sink.Records()
		var repeated []string
		for id, n := range tally(recs) {
			if n > 1 {
				repeated = append(repeated, id)
			}
		}
		t.Logf("%d records of %d Events, %d repeated", len(recs), len(events), len(repeated))
		if len(repeated) > 0 {
			t.Errorf("changes that arrived more than once: %v", head(repeated))
		}
		// alerts.receiverRules is on by default.
		checkRecords(t, recs, events, cluster, seedRules)
	})

	t.Run("Notes", func(t *testing.T) {
		cmds := notesCommands(notes)
		if len(cmds) != 4 || !strings.Contains(cmds[1], ":8888/") || !strings.Contains(cmds[2], ":8889/") {
			t.Fatalf("the notes show the kubectl commands %q, want 4 (leader, metrics, event metrics, logs):\n%s", cmds, notes)
		}
		leader := strings.TrimSpace(shell(t, cp, cmds[0]))
		if !slices.ContainsFunc(collectorPods(t, c), func(p corev1.Pod) bool { return p.Name == holderPod(leader) }) {
			t.Fatalf("the leader %q is none of the collector's pods", leader)
		}
		metrics := shell(t, cp, cmds[1])
		m := regexp.MustCompile(`(?m)^otelcol_exporter_sent_log_records\{[^}]*exporter="otlp_http"[^}]*\} (\d+)$`).FindStringSubmatch(metrics)
		if m == nil {
			t.Fatalf("no otelcol_exporter_sent_log_records of otlp_http in the leader's metrics")
		}
		sent, _ := strconv.Atoi(m[1])
		var ip string
		for _, p := range collectorPods(t, c) {
			if p.Name == holderPod(leader) {
				ip = p.Status.PodIP
			}
		}
		// The counter moves once the sink has answered: never past what the
		// sink holds from the leader.
		fromLeader := countWhere(sink.Records(), func(r otlpsink.Record) bool { return r.From == ip })
		t.Logf("the leader %s has sent %d records; the sink holds %d from its address %s", leader, sent, fromLeader, ip)
		if sent == 0 || sent > fromLeader {
			t.Errorf("the leader's metrics show %d records sent by otlp_http; the sink holds %d from it", sent, fromLeader)
		}
		// eventMetrics (on by default): the leader counts each record it
		// emits, so that the workload's count is the sink's, the Events
		// having settled.
		counts, err := parseEventCounts(strings.NewReader(shell(t, cp, cmds[2])))
		if err != nil {
			t.Fatal(err)
		}
		got, want := map[seriesKey]int{}, map[seriesKey]int{}
		for k, n := range counts {
			if k.namespace == workloadNamespace {
				got[k] = n
			}
		}
		for _, r := range sink.Records() {
			if r.From == ip && r.Str("k8s.namespace.name") == workloadNamespace {
				want[seriesKey{workloadNamespace, r.Str("k8s.object.kind"), r.Str("k8s.event.reason"), r.Str("k8s.event.type")}]++
			}
		}
		t.Logf("k8s_events_total of namespace %s on the leader's port 8889: %v", workloadNamespace, got)
		if len(want) == 0 || !maps.Equal(got, want) {
			t.Errorf("k8s_events_total of namespace %s on the leader: %v; the sink holds from the leader %v", workloadNamespace, got, want)
		}
		if logs := shell(t, cp, cmds[3]); !strings.Contains(logs, "Everything is ready") {
			t.Errorf("the replicas' logs lack \"Everything is ready\"")
		}
	})

	// alerts.lokiRules: the ConfigMap that the Loki chart's sidecar selects
	// by its default label, with alerts/loki-rules.yaml as it is.
	t.Run("LokiRules", func(t *testing.T) {
		l, err := c.CoreV1().ConfigMaps(deployNamespace).List(t.Context(), metav1.ListOptions{LabelSelector: "loki_rule"})
		if err != nil {
			t.Fatal(err)
		}
		want := string(readRoot(t, "alerts/loki-rules.yaml"))
		if len(l.Items) != 1 || l.Items[0].Data[deployName+".yaml"] != want {
			t.Errorf("%d ConfigMaps with the label loki_rule in %s; want one with %s.yaml holding alerts/loki-rules.yaml", len(l.Items), deployNamespace, deployName)
		}
	})

	t.Run("RBAC", func(t *testing.T) { checkCollectorRules(t, cp, c) })

	// The chart README's upgrade: a changed configuration (the cluster's
	// name) rolls both replicas while Events keep coming.
	upgrade := docCommands(t, chartDir+"/README.md", "## Upgrade")
	t.Run("Upgrade", func(t *testing.T) {
		m := regexp.MustCompile(`--set clusterName=(\S+)`).FindStringSubmatch(upgrade[0])
		if len(upgrade) != 1 || !strings.HasPrefix(upgrade[0], "helm upgrade ") || m == nil || m[1] == cluster {
			t.Fatalf("the chart README's upgrade %q: want one helm upgrade that sets another clusterName", upgrade)
		}
		recs := rollUnderLoad(t, c, sink, "helm upgrade of the chart", func() { d.run(t, upgrade[0]) })
		// The stream's last Events came after the rollout: the new configuration.
		if len(recs) == 0 {
			t.Fatal("no record of the stream")
		}
		if last := recs[len(recs)-1]; last.Str("k8s.cluster.name") != m[1] {
			t.Errorf("the last record after the upgrade has k8s.cluster.name %q, want %q", last.Str("k8s.cluster.name"), m[1])
		}
	})

	t.Run("Uninstall", func(t *testing.T) {
		made, _ := decodeManifest(t, d.helm.mustRun(t, "get", "manifest", deployName, "--namespace", deployNamespace))
		if len(made) < 8 {
			t.Fatalf("helm get manifest: %d objects", len(made))
		}
		commands := docCommands(t, chartDir+"/README.md", "## Uninstall")
		if !strings.HasPrefix(commands[0], "helm uninstall ") {
			t.Fatalf("the chart README's uninstall commands %q do not start with helm uninstall", commands)
		}
		d.run(t, commands[0])
		checkUninstalled(t, cp, made)
		for _, line := range commands[1:] {
			d.run(t, line) // fails when what it deletes is not there
		}
		cms, err := c.CoreV1().ConfigMaps(deployNamespace).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, cm := range cms.Items {
			if cm.Name != "kube-root-ca.crt" && cm.Name != "e2e-endpoints" {
				left = append(left, cm.Name)
			}
		}
		leases, err := c.CoordinationV1().Leases(deployNamespace).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(left)+len(leases.Items) > 0 {
			t.Errorf("after the README's commands, ConfigMaps %v and %d Leases are left in %s", left, len(leases.Items), deployNamespace)
		}
	})
}

// checkUninstalled waits until every object in made is gone, and until no
// object of the kinds the chart makes carries the release's label.
func checkUninstalled(t *testing.T, cp *kubetest.ControlPlane, made []runtime.Object) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range made {
		gvr, ns, name, err := objectRef(o)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, gvr.Resource+" "+ns+"/"+name)
	}
	t.Logf("the release made: %s", strings.Join(names, ", "))
	kinds := []schema.GroupVersionResource{
		{Version: "v1", Resource: "pods"}, {Version: "v1", Resource: "configmaps"}, {Version: "v1", Resource: "serviceaccounts"},
		{Version: "v1", Resource: "services"}, {Version: "v1", Resource: "secrets"},
		{Group: "apps", Version: "v1", Resource: "deployments"}, {Group: "apps", Version: "v1", Resource: "replicasets"},
		{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	}
	poll(t, "nothing of the release left", func(ctx context.Context) (bool, error) {
		for _, o := range made {
			gvr, ns, name, err := objectRef(o)
			if err != nil {
				return false, err
			}
			if _, err = dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false, nil
			}
		}
		for _, gvr := range kinds {
			l, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + deployName})
			if err != nil {
				return false, err
			}
			if len(l.Items) > 0 {
				return false, nil
			}
		}
		return true, nil
	})
}

// objectRef names an object of the client's scheme: its resource (as
// the API names it), namespace and name.
func objectRef(o runtime.Object) (gvr schema.GroupVersionResource, namespace, name string, err error) {
	kinds, _, err := scheme.Scheme.ObjectKinds(o)
	if err != nil {
		return gvr, "", "", err
	}
	m, err := apimeta.Accessor(o)
	if err != nil {
		return gvr, "", "", err
	}
	gvk := kinds[0]
	gvr, _ = apimeta.UnsafeGuessKindToResource(gvk)
	return gvr, m.GetNamespace(), m.GetName(), nil
}
