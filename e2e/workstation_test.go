package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/lokitest"
)

// workstationCommand is the README's command that runs the shipped
// configuration from a workstation: the one with examples/workstation.yaml.
func workstationCommand(t *testing.T, root string) command {
	t.Helper()
	var found []command
	for _, c := range documentedCommands(t, root) {
		if strings.HasPrefix(c.where, "README.md:") && slices.Contains(c.configs(), "examples/workstation.yaml") {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		t.Fatalf("README.md has %d commands with examples/workstation.yaml, want 1: %v", len(found), found)
	}
	return found[0]
}

// startWorkstation runs the workstation command cmd as written, from
// root, with its environment (LOKI_OTLP_ENDPOINT pointed at loki) plus
// KUBECONFIG, HOME and free ports for the listeners, and waits until it has
// marked where the stored Events end.
func startWorkstation(t *testing.T, root string, cmd command, loki *lokitest.Loki, kubeconfig, home string) *collectortest.Collector {
	t.Helper()
	env := append(cmd.withEnv(t, "LOKI_OTLP_ENDPOINT", loki.OTLPEndpoint()),
		"KUBECONFIG="+kubeconfig, "HOME="+home,
		// Other tests and other collectors on this machine hold the default
		// ports.
		fmt.Sprintf("HEALTH_CHECK_ENDPOINT=127.0.0.1:%d", collectortest.FreePort(t)),
		fmt.Sprintf("PROMETHEUS_ENDPOINT=127.0.0.1:%d", collectortest.FreePort(t)),
		fmt.Sprintf("METRICS_PORT=%d", collectortest.FreePort(t)))
	col := collectortest.StartArgs(t, root, cmd.args, env...)
	col.WaitOutput("Everything is ready", time.Minute)
	col.WaitOutput("start_at end: skipped the Events already stored", waitLong)
	return col
}

// TestWorkstationCommand runs the README's workstation command as written:
// its arguments, from the repository's root, with the environment it sets
// (LOKI_OTLP_ENDPOINT pointed at a real Loki) plus KUBECONFIG, HOME and free
// ports for the listeners. Events about many Pods in a few namespaces and
// about a Node must arrive in Loki once each, in one stream per namespace
// and one for the Node (the shipped transform/loki), under
// service_name="k8s-events", with the Pod, container and workload names
// (the Pods' Deployment too, found by extract: owners) as structured
// metadata; the resume point must be under HOME.
func TestWorkstationCommand(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := workstationCommand(t, root)
	clusterName, _ := cmd.getenv("CLUSTER_NAME")
	if clusterName == "" {
		t.Fatalf("%s: the workstation command sets no CLUSTER_NAME", cmd.where)
	}
	t.Logf("%s: %s otelcol-k8sevents %s", cmd.where, strings.Join(cmd.env, " "), strings.Join(cmd.args, " "))

	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	namespaces := []string{"shop", "payments", "ci"}
	createNamespaces(t, c, namespaces...)
	// The shipped configuration watches, with extract: owners.
	kubeconfig := clusterReaderKubeconfig(t, cp, modeWatch, ownersRules...)
	loki := lokitest.Start(t, lokitest.Options{})

	home := t.TempDir()
	col := startWorkstation(t, root, cmd, loki, kubeconfig, home)
	from := time.Now().Add(-time.Hour)

	// Per namespace, the Pods of a Deployment pulling the same image in the
	// same second: the same line at the same time in one stream, which Loki
	// must keep apart by their structured metadata. And the Deployment's
	// own Event. The Deployment, its ReplicaSet and its Pods exist (there
	// are no controllers: they are stored as created), so extract: owners
	// names the Deployment on the Pods' Events.
	const podsPerNamespace = 8
	ctx := context.Background()
	at := metav1.NewTime(time.Now().Truncate(time.Second))
	create := func(ns string, ev *corev1.Event) {
		t.Helper()
		if _, err := c.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create event %s/%s: %v", ns, ev.Name, err)
		}
	}
	const pulling = `Pulling image "nginx:1.27"`
	podUIDs := map[string]types.UID{}
	deployUIDs := map[string]types.UID{}
	for _, ns := range namespaces {
		w := createWorkload(t, c, ns, "web", "web-7d4", podsPerNamespace)
		deployUIDs[ns] = w.deployment
		for i, pod := range w.pods {
			podUIDs[ns+"/"+pod.Name] = pod.UID
			ev := newEvent(eventSpec{namespace: ns, name: fmt.Sprintf("web-%d", i), reason: "Pulling", message: pulling})
			ev.InvolvedObject.Name, ev.InvolvedObject.UID = pod.Name, pod.UID
			ev.InvolvedObject.FieldPath = "spec.containers{app}"
			ev.FirstTimestamp, ev.LastTimestamp = at, at
			create(ns, ev)
		}
		ev := newEvent(eventSpec{namespace: ns, name: "web", reason: "ScalingReplicaSet", kind: "Deployment",
			message: fmt.Sprintf("Scaled up replica set web-7d4 from 0 to %d", podsPerNamespace)})
		ev.InvolvedObject.APIVersion, ev.InvolvedObject.Name, ev.InvolvedObject.UID = "apps/v1", "web", w.deployment
		create(ns, ev)
	}
	// A Warning, which the shipped rules mark as an alert.
	warning := newEvent(eventSpec{namespace: "payments", name: "web-0.fs", reason: "FailedScheduling",
		message: "0/3 nodes are available: 3 Insufficient memory."})
	warning.Type = corev1.EventTypeWarning
	warning.InvolvedObject.Name, warning.InvolvedObject.UID = "web-0", podUIDs["payments/web-0"]
	create("payments", warning)
	// A Node has no namespace; its Events are stored in default.
	node := newEvent(eventSpec{namespace: "default", name: "node-1", reason: "NodeNotReady", kind: "Node",
		message: "Node node-1 status is now: NodeNotReady"})
	node.InvolvedObject.Namespace, node.InvolvedObject.Name, node.InvolvedObject.UID = "", "node-1", ""
	create("default", node)
	total := len(namespaces)*(podsPerNamespace+1) + 2

	const all = `{service_name="k8s-events"}`
	waitForLoki(t, loki, all, from, total)
	time.Sleep(3 * time.Second) // a line too many would have arrived by now

	query := func(logql string) []lokitest.Entry {
		t.Helper()
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		entries, err := loki.QueryRange(qctx, logql, from, time.Now().Add(time.Minute), 1000)
		if err != nil {
			t.Fatal(err)
		}
		return entries
	}

	t.Run("once each, labels bounded", func(t *testing.T) {
		entries := query(all)
		perUID := map[string]int{}
		pods := map[string]bool{}
		for _, e := range entries {
			perUID[e.StructuredMetadata["k8s_event_uid"]]++
			if p := e.StructuredMetadata["k8s_pod_name"]; p != "" {
				pods[e.Labels["k8s_namespace_name"]+"/"+p] = true
			}
			for name := range e.Labels {
				if !slices.Contains([]string{"k8s_cluster_name", "k8s_namespace_name", "service_name"}, name) {
					t.Errorf("%q: index label %s=%q; want only k8s_cluster_name, k8s_namespace_name, service_name", e.Line, name, e.Labels[name])
				}
			}
			if e.Labels["service_name"] != "k8s-events" || e.Labels["k8s_cluster_name"] != clusterName {
				t.Errorf("%q: labels %v, want service_name=k8s-events and k8s_cluster_name=%s", e.Line, e.Labels, clusterName)
			}
			for _, k := range []string{"k8s_namespace_name", "k8s_cluster_name", "service_name"} {
				if v, ok := e.StructuredMetadata[k]; ok {
					t.Errorf("%q: %s=%q also in structured metadata", e.Line, k, v)
				}
			}
		}
		if len(entries) != total || len(perUID) != total {
			t.Errorf("%d lines of %d Events in Loki, want %d, one each: %v", len(entries), len(perUID), total, perUID)
		}
		if want := len(namespaces) * podsPerNamespace; len(pods) != want {
			t.Errorf("k8s_pod_name of %d Pods in structured metadata, want %d", len(pods), want)
		}

		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		series, err := loki.Series(qctx, all, from, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range series {
			got = append(got, fmt.Sprint(s))
		}
		slices.Sort(got)
		var want []string
		for _, ns := range namespaces {
			want = append(want, fmt.Sprint(map[string]string{"k8s_cluster_name": clusterName, "k8s_namespace_name": ns, "service_name": "k8s-events"}))
		}
		want = append(want, fmt.Sprint(map[string]string{"k8s_cluster_name": clusterName, "service_name": "k8s-events"}))
		slices.Sort(want)
		t.Logf("%d Events about %d Pods, %d Deployments and a Node in %d namespaces: %d streams: %v",
			len(entries), len(pods), len(namespaces), len(namespaces), len(series), got)
		if len(entries) > 0 {
			t.Logf("index labels: %v; structured metadata: %v", entries[0].Labels, entries[0].StructuredMetadata)
		}
		if !slices.Equal(got, want) {
			t.Errorf("streams %v, want one per namespace and one without: %v", got, want)
		}
	})

	t.Run("structured metadata", func(t *testing.T) {
		for _, tc := range []struct {
			logql string
			n     int
			want  map[string]string
		}{
			{`{k8s_namespace_name="payments"} | k8s_pod_name="web-3"`, 1, map[string]string{
				"k8s_object_kind": "Pod", "k8s_object_name": "web-3", "k8s_pod_uid": string(podUIDs["payments/web-3"]),
				"k8s_container_name": "app", "k8s_object_fieldpath": "spec.containers{app}", "k8s_event_reason": "Pulling",
				// extract: owners
				"k8s_replicaset_name": "web-7d4", "k8s_deployment_name": "web", "k8s_deployment_uid": string(deployUIDs["payments"]),
			}},
			// Every Event of Deployment web: its own and its Pods'.
			{`{k8s_namespace_name="shop"} | k8s_deployment_name="web"`, podsPerNamespace + 1, map[string]string{
				"k8s_deployment_uid": string(deployUIDs["shop"]),
			}},
			{`{k8s_namespace_name="shop"} | k8s_deployment_name="web" | k8s_object_kind="Deployment"`, 1, map[string]string{
				"k8s_object_api_version": "apps/v1", "k8s_event_reason": "ScalingReplicaSet",
			}},
			{`{k8s_namespace_name="ci"} | k8s_event_reason="Pulling"`, podsPerNamespace, map[string]string{
				"k8s_object_kind": "Pod", "k8s_container_name": "app",
			}},
			// Events about Nodes: the stream without a namespace, or a
			// filter on the kind.
			{`{service_name="k8s-events", k8s_namespace_name=""}`, 1, map[string]string{
				"k8s_object_kind": "Node", "k8s_node_name": "node-1", "k8s_event_reason": "NodeNotReady", "k8s_event_namespace": "default",
			}},
			{`{k8s_cluster_name="` + clusterName + `"} | k8s_object_kind="Node"`, 1, map[string]string{"k8s_node_name": "node-1"}},
		} {
			entries := query(tc.logql)
			if len(entries) != tc.n {
				t.Errorf("%s: %d lines, want %d: %v", tc.logql, len(entries), tc.n, lines(entries))
				continue
			}
			for _, e := range entries {
				for k, v := range tc.want {
					if e.StructuredMetadata[k] != v {
						t.Errorf("%s: %q: structured metadata %s=%q, want %q", tc.logql, e.Line, k, e.StructuredMetadata[k], v)
					}
				}
			}
		}
	})

	// The LogQL queries of the README and of docs/loki.md (queryRunners)
	// run as written: the command's CLUSTER_NAME, and the namespace and Pod
	// names of this test.
	t.Run("printed queries", func(t *testing.T) {
		for _, q := range printedQueriesOf(t, root, "TestWorkstationCommand") {
			if metricQuery.MatchString(q.text) {
				samples := instant(t, loki, q.text)
				t.Logf("%s: %s: %v", q.where, q.text, samples)
				if len(samples) == 0 {
					t.Errorf("%s: %s: no series", q.where, q.text)
				}
				continue
			}
			entries := query(q.text)
			t.Logf("%s: %s: %d lines", q.where, q.text, len(entries))
			if len(entries) == 0 {
				t.Errorf("%s: %s: no line", q.where, q.text)
			}
		}
	})

	t.Run("resume point under HOME", func(t *testing.T) {
		dir := filepath.Join(home, ".local", "state", "otelcol-k8sevents")
		files, err := os.ReadDir(dir)
		if err != nil || len(files) == 0 {
			t.Errorf("storage directory %s: %d files, error %v; want the file_storage files", dir, len(files), err)
		}
		var names []string
		for _, f := range files {
			names = append(names, f.Name())
		}
		t.Logf("%s: %v", dir, names)
	})

	if out := col.Output(); strings.Contains(out, "cluster_name is not set") {
		t.Errorf("the collector warns about cluster_name although the command sets CLUSTER_NAME=%s", clusterName)
	}
}

// metricQuery matches a LogQL metric query, which QueryInstant runs.
var metricQuery = regexp.MustCompile(`^(sum|count|avg|max|min|rate|count_over_time|sum_over_time)\b`)

// storedWorkload is a Deployment, its ReplicaSet and its Pods as
// createWorkload stored them.
type storedWorkload struct {
	deployment types.UID
	pods       []*corev1.Pod
}

// createWorkload stores a Deployment name, its ReplicaSet rsName and n Pods
// name-0 .. name-(n-1) of that ReplicaSet, with the owner references the
// controllers would give them, on a control plane without controllers
// (nothing runs; the objects stay as created).
func createWorkload(t *testing.T, c kubernetes.Interface, ns, name, rsName string, n int) storedWorkload {
	t.Helper()
	ctx := t.Context()
	// A Pod needs its namespace's default ServiceAccount, which only the
	// controllers create.
	_, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create serviceaccount %s/default: %v", ns, err)
	}
	d, err := c.AppsV1().Deployments(ns).Create(ctx, kubetest.Deployment(ns, name, int32(n), "10m", "16Mi"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create deployment %s/%s: %v", ns, name, err)
	}
	controller := func(kind, name string, uid types.UID) []metav1.OwnerReference {
		yes := true
		return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: &yes, BlockOwnerDeletion: &yes}}
	}
	rs, err := c.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: rsName, Labels: d.Spec.Template.Labels, OwnerReferences: controller("Deployment", d.Name, d.UID)},
		Spec:       appsv1.ReplicaSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create replicaset %s/%s: %v", ns, rsName, err)
	}
	w := storedWorkload{deployment: d.UID}
	for i := range n {
		p, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, i), Labels: d.Spec.Template.Labels, OwnerReferences: controller("ReplicaSet", rs.Name, rs.UID)},
			Spec:       d.Spec.Template.Spec,
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create pod %s/%s-%d: %v", ns, name, i, err)
		}
		w.pods = append(w.pods, p)
	}
	return w
}
