package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// deployInterval is the receiver's interval in deploy/base/config.yaml.
const deployInterval = 10 * time.Second

// workloadNamespace holds the Pods whose kubelet Events the test follows.
const workloadNamespace = "workload"

// kubeletEvent is a kubelet Event that one of the test's Pods must cause.
type kubeletEvent struct {
	pod, reason string
	message     string // a part of it
}

// wantKubeletEvents are what kubetest.TroublePods make the kubelet report.
var wantKubeletEvents = []kubeletEvent{
	{kubetest.PodStarted, "Pulled", "already present on machine"},
	{kubetest.PodStarted, "Created", "Container created"},
	{kubetest.PodStarted, "Started", "Container started"},
	{kubetest.PodCrashLoop, "BackOff", "Back-off restarting failed container main"},
	{kubetest.PodOOM, "Started", "Container started"},
	{kubetest.PodOOM, "BackOff", "Back-off restarting failed container main"},
	{kubetest.PodLiveness, "Unhealthy", "Liveness probe failed"},
	{kubetest.PodLiveness, "Killing", "Container main failed liveness probe, will be restarted"},
}

// noRules is what the receiver makes of an Event without rules: no alert,
// and the severity of its type.
func noRules(ev corev1.Event) (rule string, severity plog.SeverityNumber) {
	if ev.Type == corev1.EventTypeWarning {
		return "", plog.SeverityNumberWarn
	}
	return "", plog.SeverityNumberInfo
}

// seedRules is what the receiver's rules of otelcol-config.yaml (the
// chart's alerts.receiverRules) make of an Event: the alert rule that
// matches it first (empty: none) and the record's severity.
func seedRules(ev corev1.Event) (rule string, severity plog.SeverityNumber) {
	_, typed := noRules(ev)
	warning := ev.Type == corev1.EventTypeWarning
	switch {
	case ev.Reason == "OOMKilling" || ev.Reason == "OOMKilled":
		return "oom-killed", plog.SeverityNumberError
	case ev.InvolvedObject.Kind == "Pod" && ev.Reason == "Failed":
		return "pod-failed", plog.SeverityNumberError
	case warning && (ev.Reason == "BackOff" || ev.Reason == "FailedMount"):
		return "warning-is-error", plog.SeverityNumberError
	case ev.Reason == "FailedScheduling":
		return "failed-scheduling", typed
	case warning:
		return "warning", typed
	}
	return "", typed
}

// TestDeployed deploys the collector the way the README says, with kubectl
// apply -k of deploy/ (through e2e/testdata/deploy, which changes only what
// the test's node needs), onto a real node: two replicas in Pods, reading
// Events with the ServiceAccount token and CA that the kubelet mounts. It
// checks that kubelet Events about Pods that start, crash-loop, are
// OOM-killed and fail a liveness probe arrive exactly once, with their
// severity, Pod and container, and time; that deleting the leader makes the
// other replica take over from the shared checkpoint with nothing lost or
// repeated; that the collector's token may do nothing beyond the
// documented rules; and that `kubectl rollout restart`, which replaces both
// replicas while Events keep coming, loses none (see rollUnderLoad).
func TestDeployed(t *testing.T) {
	t.Parallel()
	cp, sink := startNode(t)
	c := cp.Client()
	ctx := t.Context()
	applyDeploy(t, cp, sink, "e2e/testdata/deploy")

	pods := collectorPods(t, c)
	if len(pods) != 2 {
		t.Fatalf("%d collector pods, want 2", len(pods))
	}
	for _, p := range pods {
		if p.Spec.NodeName != kubetest.NodeName || p.Spec.HostNetwork || !strings.Contains(podLog(t, c, deployNamespace, p.Name), "Everything is ready") {
			t.Fatalf("collector pod %s: node %q, hostNetwork %v; want it running on %s in its own network", p.Name, p.Spec.NodeName, p.Spec.HostNetwork, kubetest.NodeName)
		}
	}
	var holder string
	poll(t, "a replica holding the Lease", func(ctx context.Context) (bool, error) {
		l, err := c.CoordinationV1().Leases(deployNamespace).Get(ctx, "k8sevents", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return false, err
		}
		holder = *l.Spec.HolderIdentity
		return holder != "", nil
	})
	t.Logf("leader: %s", holder)

	t.Run("KubeletEvents", func(t *testing.T) { runWorkload(t, c) })

	// Failover while Events keep coming: the crash loops go on, and a
	// stream of Events is created.
	createNamespaces(t, c, "stream")
	s := startStream(t, c, "stream", "ev", 50*time.Millisecond, 0)
	s.waitCount(40)
	leaderPod := holderPod(holder)
	if err := c.CoreV1().Pods(deployNamespace).Delete(ctx, leaderPod, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete the leader pod %s: %v", leaderPod, err)
	}
	deleted := time.Now()
	var newHolder string
	poll(t, "another replica taking the Lease", func(ctx context.Context) (bool, error) {
		l, err := c.CoordinationV1().Leases(deployNamespace).Get(ctx, "k8sevents", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return false, err
		}
		newHolder = *l.Spec.HolderIdentity
		return newHolder != "" && holderPod(newHolder) != leaderPod, nil
	})
	t.Logf("the Lease went from %s to %s %.1fs after the leader pod was deleted", holder, newHolder, time.Since(deleted).Seconds())
	if log := podLog(t, c, deployNamespace, holderPod(newHolder)); !strings.Contains(log, "Became leader; resuming from the checkpoint") {
		t.Errorf("the new leader %s did not log resuming from the checkpoint:\n%s", holderPod(newHolder), log)
	}
	s.waitCount(s.count() + 40)
	s.Stop()

	// The workload stops; then every Event must be in the sink once.
	for _, name := range []string{kubetest.PodStarted, kubetest.PodCrashLoop, kubetest.PodOOM, kubetest.PodLiveness} {
		if err := c.CoreV1().Pods(workloadNamespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete pod %s: %v", name, err)
		}
	}
	poll(t, "the workload pods gone", func(ctx context.Context) (bool, error) {
		l, err := c.CoreV1().Pods(workloadNamespace).List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 0, err
	})
	events := settleAll(t, c, sink, deployInterval)
	recs := sink.Records()

	t.Run("ExactlyOnce", func(t *testing.T) {
		var repeated []string
		for id, n := range tally(recs) {
			if n > 1 {
				repeated = append(repeated, fmt.Sprintf("%s x%d", id, n))
			}
		}
		// The stream's Events are never updated: each must be there once.
		lost, streamRepeats := lostAndRepeated(recs, s.Created())
		t.Logf("%d records of %d Events; %d streamed during the failover: %d lost, %d repeated; %d changes repeated in all",
			len(recs), len(events), len(s.Created()), lost, streamRepeats, len(repeated))
		if lost > 0 {
			t.Errorf("%d streamed Events lost", lost)
		}
		if len(repeated) > 0 {
			t.Errorf("changes that arrived more than once (the leader stopped gracefully: none may repeat): %v", head(repeated))
		}
	})

	t.Run("TimeAndAttributes", func(t *testing.T) { checkRecords(t, recs, events, "e2e-node", noRules) })

	// extract: owners, with the ClusterRole's get on pods and replicasets:
	// the Events of the collector's own Pods name its Deployment.
	t.Run("Owners", func(t *testing.T) {
		var checked int
		for _, p := range collectorPods(t, c) {
			rs := metav1.GetControllerOf(&p)
			if rs == nil {
				t.Fatalf("collector pod %s has no controller", p.Name)
			}
			for _, r := range recs {
				if r.Str("k8s.pod.uid") != string(p.UID) {
					continue
				}
				checked++
				if r.Str("k8s.replicaset.name") != rs.Name || r.Str("k8s.deployment.name") != deployName {
					t.Errorf("%s of collector pod %s: k8s.replicaset.name %q, k8s.deployment.name %q; want %s, %s",
						r.Str("k8s.event.reason"), p.Name, r.Str("k8s.replicaset.name"), r.Str("k8s.deployment.name"), rs.Name, deployName)
				}
			}
		}
		t.Logf("%d records about the collector's Pods checked for their owners", checked)
		if checked == 0 {
			t.Error("no record about the collector's Pods")
		}
		for _, p := range collectorPods(t, c) {
			if log := podLog(t, c, deployNamespace, p.Name); strings.Contains(log, "RBAC: grant") {
				t.Errorf("collector pod %s lacks a rule:\n%s", p.Name, log)
			}
		}
	})

	t.Run("RBAC", func(t *testing.T) { checkCollectorRules(t, cp, c) })

	// Last, as it may repeat what the checks above allow no repeat of.
	t.Run("RolloutRestart", func(t *testing.T) {
		rollUnderLoad(t, c, sink, "kubectl rollout restart of deploy/", func() {
			kubectl(t, cp, "rollout", "restart", "deployment/"+deployName, "--namespace", deployNamespace)
		})
	})
}

// runWorkload runs Pods that make the kubelet report the Events of
// wantKubeletEvents, and waits until it has (and until the OOM kill shows
// in the Pod's status).
func runWorkload(t *testing.T, c kubernetes.Interface) {
	createNamespaces(t, c, workloadNamespace)
	for _, p := range kubetest.TroublePods(workloadNamespace) {
		if _, err := c.CoreV1().Pods(workloadNamespace).Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s: %v", p.Name, err)
		}
	}
	for _, w := range wantKubeletEvents {
		waitEvent(t, c, workloadNamespace, "Pod", w.pod, w.reason)
	}
	waitOOMKilled(t, c, workloadNamespace)
}

// checkRecords checks every record against the Event it came from: the
// time it happened, severity and resource attributes (k8s.cluster.name is
// cluster); and that the kubelet's Events of the workload and the Node are
// there.
func checkRecords(t *testing.T, recs []otlpsink.Record, events []corev1.Event, cluster string, rules func(corev1.Event) (string, plog.SeverityNumber)) {
	byUID := map[string]corev1.Event{}
	for _, ev := range events {
		byUID[string(ev.UID)] = ev
	}
	found := map[kubeletEvent]bool{}
	alerts := map[string]int{}
	nodeReasons := map[string]bool{}
	checked := 0
	for _, r := range recs {
		ev, ok := byUID[r.Str("k8s.event.uid")]
		if !ok || r.Str("k8s.event.resource_version") != ev.ResourceVersion {
			continue // an earlier version of an Event: its time and count were others
		}
		checked++
		id := fmt.Sprintf("%s %s %s/%s/%s", ev.Type, ev.Reason, ev.InvolvedObject.Kind, ev.Namespace, ev.InvolvedObject.Name)
		if want := eventTime(ev); !r.Timestamp.Equal(want) {
			t.Errorf("%s: timestamp %v, want %v", id, r.Timestamp, want)
		}
		rule, severity := rules(ev)
		if r.Severity != severity {
			t.Errorf("%s: severity %v, want %v", id, r.Severity, severity)
		}
		if got := r.Str("k8s.event.alert.rule"); got != rule {
			t.Errorf("%s: k8s.event.alert.rule %q, want %q", id, got, rule)
		} else if title := ev.InvolvedObject.Kind + " " + ev.Reason; rule != "" && r.Str("k8s.event.alert.title") != title {
			t.Errorf("%s: k8s.event.alert.title %q, want %q", id, r.Str("k8s.event.alert.title"), title)
		}
		if rule != "" {
			alerts[rule]++
		}
		if r.Str("k8s.cluster.name") != cluster {
			t.Errorf("%s: k8s.cluster.name %q, want %s", id, r.Str("k8s.cluster.name"), cluster)
		}
		if ev.Source.Component != "kubelet" {
			continue
		}
		if got := r.Str("k8s.node.name"); got != kubetest.NodeName {
			t.Errorf("%s: k8s.node.name %q, want %s", id, got, kubetest.NodeName)
		}
		switch ev.InvolvedObject.Kind {
		case "Node":
			nodeReasons[ev.Reason] = true
		case "Pod":
			attrs := map[string]string{
				"k8s.pod.name": ev.InvolvedObject.Name, "k8s.pod.uid": string(ev.InvolvedObject.UID),
				"k8s.namespace.name": ev.InvolvedObject.Namespace,
			}
			if ev.InvolvedObject.FieldPath != "" {
				attrs["k8s.container.name"] = strings.TrimSuffix(strings.TrimPrefix(ev.InvolvedObject.FieldPath, "spec.containers{"), "}")
			}
			for k, v := range attrs {
				if r.Str(k) != v {
					t.Errorf("%s: %s %q, want %q", id, k, r.Str(k), v)
				}
			}
			if ev.Namespace != workloadNamespace {
				continue
			}
			for _, w := range wantKubeletEvents {
				if w.pod == ev.InvolvedObject.Name && w.reason == ev.Reason && strings.Contains(r.Body, w.message) &&
					r.Str("k8s.container.name") == "main" {
					found[w] = true
				}
			}
		}
	}
	t.Logf("checked %d records (the current version of each Event); alerts by rule: %v", checked, alerts)
	for _, w := range wantKubeletEvents {
		if !found[w] {
			t.Errorf("no record of the kubelet's %s Event about pod %s (%q, container main)", w.reason, w.pod, w.message)
		}
	}
	nodeWant := []string{"Starting", "NodeReady"}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); errors.Is(err, os.ErrNotExist) {
		nodeWant = append(nodeWant, "CgroupV1") // the kubelet warns on cgroup v1
	}
	for _, reason := range nodeWant {
		if !nodeReasons[reason] {
			t.Errorf("no record of the kubelet's %s Event about Node %s", reason, kubetest.NodeName)
		}
	}
}

// TestDeployedNamespaced deploys deploy/namespaced/ (through
// e2e/testdata/deploy-namespaced) onto a real node: the collector reads the
// Events of my-app, and only those, with no permission outside my-app and
// its own namespace.
func TestDeployedNamespaced(t *testing.T) {
	t.Parallel()
	const watched, other = "my-app", "other"
	cp, sink := startNode(t)
	c := cp.Client()
	createNamespaces(t, c, watched, other)
	applyDeploy(t, cp, sink, "e2e/testdata/deploy-namespaced")

	var want []string
	for _, ns := range []string{watched, other} {
		for _, ev := range createEvents(t, c, ns, "ev", 3) {
			if ns == watched {
				want = append(want, eventID(ev))
			}
		}
		p := kubetest.BusyboxPod(ns, "started", "exec sleep 3600")
		if _, err := c.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s/%s: %v", ns, p.Name, err)
		}
	}
	for _, ns := range []string{watched, other} {
		want = append(want, eventID(ptr(waitEvent(t, c, ns, "Pod", "started", "Started"))))
	}
	started := want[len(want)-1]
	want = want[:len(want)-1] // other's Started must not arrive
	sink.Wait(t, waitLong, "the Events of "+watched, func(r []otlpsink.Record) bool {
		got := tally(r)
		for _, id := range want {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * deployInterval) // anything from other would have come by now
	recs := sink.Records()
	for _, r := range recs {
		if ns := r.Str("k8s.event.namespace"); ns != watched {
			t.Errorf("record of an Event in namespace %q (%s %s): only %s is read", ns, r.Str("k8s.event.reason"), r.Body, watched)
		}
		if recordID(r) == started {
			t.Errorf("the Started Event of %s/started arrived", other)
		}
	}
	t.Logf("%d records, all from namespace %s", len(recs), watched)

	pod := collectorPods(t, c)[0]
	collector := tokenClient(t, cp, mountedToken(t, cp, pod))
	checkRules(t, collector, noBindingClient(t, cp, deployNamespace), map[string][]string{
		watched: {"/events list *", "/events watch *", "/pods get *", "apps/replicasets get *", "batch/jobs get *"},
		other:   nil,
		deployNamespace: {
			"/configmaps create *", "/configmaps get k8sevents-checkpoint", "/configmaps update k8sevents-checkpoint",
			"coordination.k8s.io/leases create *", "coordination.k8s.io/leases get k8sevents", "coordination.k8s.io/leases update k8sevents",
		},
	})
	if _, err := collector.CoreV1().Events("").List(t.Context(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list events in all namespaces with the collector's token: %v, want 403 Forbidden", err)
	}
}

func ptr[T any](v T) *T { return &v }
