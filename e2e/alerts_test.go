package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/k8sevents/otelcol-k8sevents/internal/amtest"
	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/lokitest"
	"github.com/k8sevents/otelcol-k8sevents/internal/promtest"
)

// Names of the objects TestAlerts makes Events about, besides
// kubetest.TroublePods.
const (
	alertsNamespace  = "alerting"
	podUnschedulable = "unschedulable" // asks for more memory than any Node has: FailedScheduling
	podNoImage       = "noimage"       // an image that is not there, never pulled: Failed
	podPast          = "past"          // a Warning that happened 9 minutes ago: its alert resolves soon
	nodeGone         = "gone-node"     // a Node without a kubelet: NodeNotReady
)

// pastAge is how long before its creation the Warning about podPast last
// happened: its alert fires, and resolves when the rules' range (10m) has
// passed since then, 10m - pastAge after the Event was created. The one
// deadline of the test: the alert must reach Alertmanager within those 60s,
// where it takes about 10s (the shipped poll interval, 10s, is most of it).
// It saves waiting the whole range for an alert to resolve.
const pastAge = 9 * time.Minute

// wantAlert is an alert TestAlerts waits for in Alertmanager.
type wantAlert struct {
	// route is "loki" or "prometheus".
	route     string
	alertname string
	// labels the alert must have (more are allowed).
	labels   map[string]string
	receiver string
}

// key names the alert in logs and maps.
func (w wantAlert) key() string {
	keys := slices.Sorted(maps.Keys(w.labels))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+w.labels[k])
	}
	return w.alertname + "{" + strings.Join(parts, ",") + "}"
}

// eventMatch says whether an eventKey is of the Events behind the alert:
// its namespace, kind and reason, and for the Loki route its object.
func (w wantAlert) eventMatch(key string) bool {
	parts := strings.Split(key, "/") // namespace, kind, name, reason
	return parts[0] == w.labels["k8s_namespace_name"] && parts[1] == w.labels["k8s_object_kind"] &&
		parts[3] == w.labels["k8s_event_reason"] && (w.route == "prometheus" || parts[2] == w.labels["k8s_object_name"])
}

func lokiAlert(alertname, severity, kind, name, reason string) wantAlert {
	labels := map[string]string{
		"severity": severity, "k8s_cluster_name": "e2e",
		"k8s_object_kind": kind, "k8s_object_name": name, "k8s_event_reason": reason,
	}
	if kind != "Node" {
		labels["k8s_namespace_name"] = alertsNamespace
	}
	return wantAlert{route: "loki", alertname: alertname, labels: labels, receiver: receiverOf(severity)}
}

func promAlert(alertname, severity, kind, reason string) wantAlert {
	labels := map[string]string{"severity": severity, "k8s_cluster_name": "e2e", "k8s_object_kind": kind, "k8s_event_reason": reason}
	if kind != "Node" {
		labels["k8s_namespace_name"] = alertsNamespace
	}
	return wantAlert{route: "prometheus", alertname: alertname, labels: labels, receiver: receiverOf(severity)}
}

// receiverOf is where alerts/alertmanager.yaml routes a severity.
func receiverOf(severity string) string {
	if severity == "critical" {
		return "pager"
	}
	return "chat"
}

// wantAlerts are the alerts the workload of TestAlerts must raise.
var wantAlerts = []wantAlert{
	// The receiver's rule of each (otelcol-config.yaml) in the comment.
	lokiAlert("KubernetesEventWarningIsError", "critical", "Pod", kubetest.PodCrashLoop, "BackOff"), // warning-is-error
	lokiAlert("KubernetesEventWarningIsError", "critical", "Pod", kubetest.PodOOM, "BackOff"),       // warning-is-error
	lokiAlert("KubernetesEventOOMKilled", "critical", "Node", kubetest.NodeName, "OOMKilling"),      // oom-killed
	lokiAlert("KubernetesEventPodFailed", "critical", "Pod", podNoImage, "Failed"),                  // pod-failed
	lokiAlert("KubernetesEventFailedScheduling", "warning", "Pod", podUnschedulable, "FailedScheduling"),
	lokiAlert("KubernetesEventWarning", "warning", "Pod", kubetest.PodLiveness, "Unhealthy"), // warning
	lokiAlert("KubernetesEventWarning", "warning", "Pod", podPast, "Unhealthy"),              // warning
	promAlert("KubernetesPodBackOff", "critical", "Pod", "BackOff"),
	promAlert("KubernetesOOMKills", "critical", "Node", "OOMKilling"),
	promAlert("KubernetesFailedScheduling", "warning", "Pod", "FailedScheduling"),
	promAlert("KubernetesNodeNotReady", "warning", "Node", "NodeNotReady"),
}

// TestAlerts takes the steps of the README's section "Alerts" on a real
// node: the collector runs otelcol-config.yaml as shipped, Loki's ruler
// evaluates alerts/loki-rules.yaml, Prometheus scrapes the collector and
// evaluates alerts/prometheus-rules.yaml, and both send to an Alertmanager
// configured with alerts/alertmanager.yaml, whose webhooks are the test's.
// Intervals are the test's (1s for scrapes, evaluations and Alertmanager's
// grouping); the rules are as shipped.
//
// Real Events: a crash loop (BackOff), an OOM-killed container (the
// kubelet sends no Event for the kill itself: its restarts make BackOff),
// an image that is not there (Failed), a failing liveness probe (Unhealthy,
// a plain Warning), a Pod that cannot be scheduled (FailedScheduling), a
// Node without a kubelet (NodeNotReady), and Normal Events of all of them.
// Created by the test: an OOMKilling Event as node-problem-detector sends
// it, with the kernel's line about the OOM kill, and a Warning that
// happened 9 minutes ago. It checks that every alert of wantAlerts reaches
// Alertmanager with its labels, the seed's title and message verbatim,
// routed by severity to the right webhook; that the Normal Events of the
// Pods (Scheduled, Pulled, Created, Started, Killing) raise none (the one
// Normal Event that alerts is NodeNotReady, by the Prometheus rule made for
// it); and that the old Warning's alert resolves. It logs the time from
// each Event to its alert in Alertmanager.
func TestAlerts(t *testing.T) {
	t.Parallel()
	doc := readAlertsDoc(t)
	opts := kubeOptions()
	opts.Node = true
	cp := startControlPlane(t, opts)
	c := fastClient(t, cp)
	ctx := t.Context()
	events := watchEvents(t, c)
	// A Node no kubelet renews: NodeNotReady after the controller's grace
	// period, while the rest starts. Unschedulable: no Pod goes there.
	gone := kubetest.ReadyNode(nodeGone, "1", "1Gi")
	gone.Spec.Unschedulable = true
	if _, err := c.CoreV1().Nodes().Create(ctx, gone, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", nodeGone, err)
	}

	pager, chat := amtest.NewWebhook(t), amtest.NewWebhook(t)
	am := amtest.Start(t, amtest.Options{Config: doc.alertmanagerConfig(t, map[string]string{"pager": pager.URL(), "chat": chat.URL()})})
	amAlerts := watchAlerts(t, am)
	loki := lokitest.Start(t, lokitest.Options{AlertmanagerURL: doc.lokiAlertmanagerURL(t, am.URL())})
	doc.installLokiRules(t, loki.RulesDirectory())
	promEndpoint := fmt.Sprintf("127.0.0.1:%d", collectortest.FreePort(t))
	prom := promtest.Start(t, promtest.Options{
		Config: doc.prometheusConfig(t, promEndpoint, am.URL()),
		Flags:  doc.prometheusFlags(t),
	})
	col := collectortest.Start(t, shippedConfig(t),
		"KUBECONFIG="+clusterReaderKubeconfig(t, cp, modeWatch, ownersRules...), "K8SEVENTS_AUTH_TYPE=kubeConfig", "CLUSTER_NAME=e2e",
		"LOKI_OTLP_ENDPOINT="+loki.OTLPEndpoint(), "STORAGE_DIR="+t.TempDir(),
		fmt.Sprintf("HEALTH_CHECK_ENDPOINT=127.0.0.1:%d", collectortest.FreePort(t)),
		"PROMETHEUS_ENDPOINT="+promEndpoint)
	col.WaitOutput("start_at end: skipped the Events already stored", waitLong)
	waitRulesLoaded(t, "loki", loki.Rules, 5)
	waitRulesLoaded(t, "prometheus", prom.Rules, 4)

	// The workload.
	createNamespaces(t, c, alertsNamespace)
	noImage := kubetest.BusyboxPod(alertsNamespace, podNoImage, "true")
	noImage.Spec.Containers[0].Image = "example.invalid/not-there:1"
	unschedulable := kubetest.BusyboxPod(alertsNamespace, podUnschedulable, "true")
	unschedulable.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Ti")}
	for _, p := range append(kubetest.TroublePods(alertsNamespace), noImage, unschedulable) {
		if _, err := c.CoreV1().Pods(alertsNamespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s: %v", p.Name, err)
		}
	}
	pastHappened := createPastWarning(t, c)
	sendOOMKilling(t, c, events)

	alerts := waitAlerts(t, amAlerts, events)
	t.Run("LabelsAndText", func(t *testing.T) { checkAlertText(t, alerts, events) })
	t.Run("Routing", func(t *testing.T) { checkRouting(t, alerts, pager, chat) })
	t.Run("NormalEventsRaiseNone", func(t *testing.T) { checkNoNormalAlerts(t, am, loki, events) })
	t.Run("Documented", func(t *testing.T) { checkDocumentedChecks(t, doc, am, prom, loki) })
	t.Run("Resolves", func(t *testing.T) { checkResolves(t, am, amAlerts, chat, events, pastHappened) })
}

// eventLog follows every Event of the control plane: when each was first
// seen (about when it was made) and every message and type it had.
type eventLog struct {
	mu    sync.Mutex
	first map[string]time.Time // eventKey -> first seen
	msgs  map[string][]string  // eventKey -> messages, in order, without repeats
	types map[string][]string  // eventKey -> types
}

// eventKey names the Events about one object with one reason:
// namespace/kind/name/reason, the namespace empty for cluster-scoped objects.
func eventKey(namespace, kind, name, reason string) string {
	return namespace + "/" + kind + "/" + name + "/" + reason
}

func watchEvents(t *testing.T, c kubernetes.Interface) *eventLog {
	t.Helper()
	l := &eventLog{first: map[string]time.Time{}, msgs: map[string][]string{}, types: map[string][]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := c.CoreV1().Events("").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		t.Fatalf("watch events: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.ResultChan() {
			ev, ok := e.Object.(*corev1.Event)
			if !ok || (e.Type != watch.Added && e.Type != watch.Modified) {
				continue
			}
			l.add(ev, time.Now())
		}
	}()
	t.Cleanup(func() {
		w.Stop()
		cancel()
		<-done
	})
	return l
}

func (l *eventLog) add(ev *corev1.Event, seen time.Time) {
	k := eventKey(ev.InvolvedObject.Namespace, ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Reason)
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.first[k]; !ok {
		l.first[k] = seen
	}
	if !slices.Contains(l.msgs[k], ev.Message) {
		l.msgs[k] = append(l.msgs[k], ev.Message)
	}
	if !slices.Contains(l.types[k], ev.Type) {
		l.types[k] = append(l.types[k], ev.Type)
	}
}

// firstSeen is when the first Event whose key matches was seen.
func (l *eventLog) firstSeen(match func(key string) bool) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for k, at := range l.first {
		if match(k) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first, !first.IsZero()
}

func (l *eventLog) messages(key string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.msgs[key])
}

func (l *eventLog) typesOf(key string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.types[key])
}

// keys are the keys of every Event seen.
func (l *eventLog) keys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.first))
}

// createPastWarning creates a Warning about podPast that last happened
// pastAge ago, as an Event reported late (or read after a restart) has, and
// returns that time as the API server keeps it (whole seconds).
func createPastWarning(t *testing.T, c kubernetes.Interface) time.Time {
	t.Helper()
	at := metav1.NewTime(time.Now().Add(-pastAge).Truncate(time.Second))
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: alertsNamespace, Name: podPast + ".readiness"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: alertsNamespace, Name: podPast, APIVersion: "v1", FieldPath: "spec.containers{main}"},
		Reason:         "Unhealthy",
		Message:        "Readiness probe failed: HTTP probe failed with statuscode: 503",
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "kubelet", Host: kubetest.NodeName},
		FirstTimestamp: at, LastTimestamp: at, Count: 1,
	}
	if _, err := c.CoreV1().Events(alertsNamespace).Create(t.Context(), ev, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the past Warning: %v", err)
	}
	return at.Time
}

// oomLine matches the kernel's line about an OOM kill (Linux 4.19 and
// later), which node-problem-detector's kernel monitor reports.
var oomLine = regexp.MustCompile(`Memory cgroup out of memory: Killed process (\d+) \(([^)]+)\) total-vm:\d+kB, anon-rss:\d+kB, file-rss:\d+kB.*`)

// sendOOMKilling waits until the OOM pod's container was OOM-killed, logs
// which Events the kubelet sent about it, and creates the Event that
// node-problem-detector's kernel monitor sends for the kill: a Warning
// OOMKilling about the Node, from source kernel-monitor, whose message is
// the kernel's line, read from /dev/kmsg.
func sendOOMKilling(t *testing.T, c kubernetes.Interface, events *eventLog) {
	t.Helper()
	waitOOMKilled(t, c, alertsNamespace)
	var line string
	poll(t, "the kernel's line about the OOM kill in /dev/kmsg", func(context.Context) (bool, error) {
		lines, err := kernelLog()
		if err != nil {
			return false, err
		}
		for _, l := range lines {
			if m := oomLine.FindString(l); m != "" && strings.Contains(m, "(dd)") {
				line = m
			}
		}
		return line != "", nil
	})
	var kubelet []string
	for _, k := range events.keys() {
		if ns, rest, _ := strings.Cut(k, "/"); ns == alertsNamespace && strings.HasPrefix(rest, "Pod/"+kubetest.PodOOM+"/") {
			kubelet = append(kubelet, strings.TrimPrefix(rest, "Pod/"+kubetest.PodOOM+"/"))
		}
	}
	t.Logf("OOM kill: the kernel wrote %q; the Events about pod %s until then: %v", line, kubetest.PodOOM, kubelet)
	for _, reason := range kubelet {
		if strings.Contains(strings.ToLower(reason), "oom") {
			t.Errorf("the kubelet sent %s about pod %s: the README says it sends no Event for an OOM kill", reason, kubetest.PodOOM)
		}
	}
	now := metav1.Now()
	ev := &corev1.Event{
		// node-problem-detector's recorder names Events as client-go does:
		// <object>.<hex time>, in the default namespace for a Node.
		ObjectMeta:     metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: fmt.Sprintf("%s.%x", kubetest.NodeName, now.UnixNano())},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: kubetest.NodeName, UID: types.UID(kubetest.NodeName)},
		Reason:         "OOMKilling",
		Message:        line,
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "kernel-monitor", Host: kubetest.NodeName},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if _, err := c.CoreV1().Events(metav1.NamespaceDefault).Create(t.Context(), ev, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the OOMKilling Event: %v", err)
	}
}

// kernelLog reads the kernel's log buffer from /dev/kmsg: the text of each
// record.
func kernelLog() ([]string, error) {
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/kmsg: %w", err)
	}
	defer func() { _ = syscall.Close(fd) }() // read only: a failed close loses nothing
	var out []string
	buf := make([]byte, 8192)
	for {
		// One record per read: "<prio>,<seq>,<usec>,<flags>;<text>\n".
		n, err := syscall.Read(fd, buf)
		if err == syscall.EPIPE { // a record was overwritten while reading
			continue
		}
		if err != nil || n <= 0 {
			return out, nil // EAGAIN: the end of the buffer
		}
		rec := string(buf[:n])
		if _, text, ok := strings.Cut(rec, ";"); ok {
			first, _, _ := strings.Cut(text, "\n")
			out = append(out, first)
		}
	}
}

// waitRulesLoaded waits until the server (Loki or Prometheus) has loaded n
// rules and evaluated each without error.
func waitRulesLoaded(t *testing.T, server string, rules func(context.Context) ([]promtest.RuleGroup, error), n int) {
	t.Helper()
	var got []string
	poll(t, fmt.Sprintf("%s to evaluate %d rules", server, n), func(ctx context.Context) (bool, error) {
		groups, err := rules(ctx)
		if err != nil {
			return false, err
		}
		got = got[:0]
		ok := 0
		for _, g := range groups {
			for _, r := range g.Rules {
				got = append(got, r.Name+":"+r.Health+":"+r.LastError)
				if r.Health == "ok" {
					ok++
				}
			}
		}
		return ok == n && len(got) == n, nil
	})
	t.Logf("%s evaluates %v", server, got)
}

// seenAlert is an alert of Alertmanager and when the test first saw it.
type seenAlert struct {
	amtest.Alert
	firstSeen, lastSeen time.Time
}

// alertLog polls Alertmanager every 100ms from the start of the test, so
// that the time an alert first shows is known within that.
type alertLog struct {
	mu   sync.Mutex
	seen map[string]seenAlert // by fingerprint
	err  error                // the last error of a poll
}

func watchAlerts(t *testing.T, am *amtest.Alertmanager) *alertLog {
	t.Helper()
	l := &alertLog{seen: map[string]seenAlert{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			alerts, err := am.Alerts(ctx)
			now := time.Now()
			l.mu.Lock()
			l.err = err
			for _, a := range alerts {
				s, ok := l.seen[a.Fingerprint]
				if !ok {
					s.firstSeen = now
				}
				s.Alert, s.lastSeen = a, now
				l.seen[a.Fingerprint] = s
			}
			l.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l
}

// all is every alert seen so far, by alertID.
func (l *alertLog) all() map[string]seenAlert {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]seenAlert, len(l.seen))
	for _, s := range l.seen {
		out[alertID(s.Labels)] = s
	}
	return out
}

// lastErr is the error of the last poll, if it failed.
func (l *alertLog) lastErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// waitAlerts waits until every alert of wantAlerts has shown in
// Alertmanager, and logs the time from the first Event behind each to its
// alert. It returns every alert seen, by alertID.
func waitAlerts(t *testing.T, alerts *alertLog, events *eventLog) map[string]seenAlert {
	t.Helper()
	found := map[string]seenAlert{}
	var all map[string]seenAlert
	err := wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, waitLong, true, func(context.Context) (bool, error) {
		all = alerts.all()
		for _, w := range wantAlerts {
			for _, s := range all {
				if s.Labels["alertname"] == w.alertname && hasLabels(s.Labels, w.labels) {
					found[w.key()] = s
				}
			}
		}
		return len(found) == len(wantAlerts), nil
	})
	if err != nil {
		// Which end failed: the Event behind a missing alert was never made,
		// or it was and the alert did not follow.
		var missing []string
		for _, w := range wantAlerts {
			if _, ok := found[w.key()]; !ok {
				seen := "no Event behind it seen"
				if first, ok := events.firstSeen(w.eventMatch); ok {
					seen = "its first Event seen " + time.Since(first).Round(time.Second).String() + " before"
				}
				missing = append(missing, w.key()+" ("+seen+")")
			}
		}
		t.Fatalf("alerts not in Alertmanager within %v (last error: %v): %v; there: %v", waitLong, alerts.lastErr(), missing, slices.Sorted(maps.Keys(all)))
	}
	for _, w := range wantAlerts {
		a := found[w.key()]
		first, ok := events.firstSeen(w.eventMatch)
		if !ok {
			t.Errorf("%s: no Event behind it was seen", w.key())
			continue
		}
		t.Logf("event to alertmanager: %s route: %s %.1fs", w.route, w.key(), a.firstSeen.Sub(first).Seconds())
	}
	return all
}

// alertID is an alert's name and labels, as text.
func alertID(labels map[string]string) string {
	keys := slices.Sorted(maps.Keys(labels))
	var b strings.Builder
	b.WriteString(labels["alertname"])
	for _, k := range keys {
		if k != "alertname" {
			fmt.Fprintf(&b, " %s=%q", k, labels[k])
		}
	}
	return b.String()
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// lokiAlertNames are the alerts of alerts/loki-rules.yaml, by the receiver
// rule each alerts on.
var lokiAlertNames = map[string]string{
	"oom-killed":        "KubernetesEventOOMKilled",
	"pod-failed":        "KubernetesEventPodFailed",
	"warning-is-error":  "KubernetesEventWarningIsError",
	"failed-scheduling": "KubernetesEventFailedScheduling",
	"warning":           "KubernetesEventWarning",
}

// checkAlertText checks every alert of the Loki route against the Events
// behind it: the labels the rules set, summary = "<kind> <reason>" and
// description = "<kind> <name>: <message>" with a message the Event had.
// Prometheus' alerts carry the count.
func checkAlertText(t *testing.T, alerts map[string]seenAlert, events *eventLog) {
	for id, a := range alerts {
		l := a.Labels
		name := l["alertname"]
		switch {
		case strings.HasPrefix(name, "KubernetesEvent"):
			rule := l["k8s_event_alert_rule"]
			if lokiAlertNames[rule] != name {
				t.Errorf("%s: k8s_event_alert_rule %q, want the receiver rule of %s", id, rule, name)
			}
			for _, k := range []string{"severity", "k8s_cluster_name", "k8s_object_kind", "k8s_object_name", "k8s_event_reason", "k8s_event_alert_title", "k8s_event_alert_message"} {
				if l[k] == "" {
					t.Errorf("%s: no label %s", id, k)
				}
			}
			key := eventKey(l["k8s_namespace_name"], l["k8s_object_kind"], l["k8s_object_name"], l["k8s_event_reason"])
			if want := l["k8s_object_kind"] + " " + l["k8s_event_reason"]; a.Annotations["summary"] != want {
				t.Errorf("%s: summary %q, want %q", id, a.Annotations["summary"], want)
			}
			var descriptions []string
			for _, m := range events.messages(key) {
				descriptions = append(descriptions, l["k8s_object_kind"]+" "+l["k8s_object_name"]+": "+m)
			}
			if !slices.Contains(descriptions, a.Annotations["description"]) {
				t.Errorf("%s: description %q is none of the Event's messages %q", id, a.Annotations["description"], descriptions)
			}
			if len(a.Annotations) != 2 {
				t.Errorf("%s: annotations %v, want summary and description", id, a.Annotations)
			}
		case strings.HasPrefix(name, "Kubernetes"):
			if !regexp.MustCompile(`^[1-9]\d*( |$)`).MatchString(a.Annotations["description"]) {
				t.Errorf("%s: description %q does not start with the count", id, a.Annotations["description"])
			}
			if want := l["k8s_object_kind"] + " " + l["k8s_event_reason"]; a.Annotations["summary"] != want {
				t.Errorf("%s: summary %q, want %q", id, a.Annotations["summary"], want)
			}
		default:
			t.Errorf("%s: an alert of neither route", id)
		}
	}
	for _, w := range wantAlerts {
		if w.route != "loki" {
			continue
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == w.alertname && hasLabels(a.Labels, w.labels) {
				t.Logf("%s: summary %q, description %q", w.key(), a.Annotations["summary"], a.Annotations["description"])
				break
			}
		}
	}
}

// checkRouting checks that each alert went to the receiver of its severity,
// in Alertmanager and at the webhooks.
func checkRouting(t *testing.T, alerts map[string]seenAlert, pager, chat *amtest.Webhook) {
	for id, a := range alerts {
		if got, want := a.ReceiverNames(), []string{receiverOf(a.Labels["severity"])}; !slices.Equal(got, want) {
			t.Errorf("%s: receivers %v, want %v", id, got, want)
		}
	}
	hooks := map[string]*amtest.Webhook{"pager": pager, "chat": chat}
	for _, w := range wantAlerts {
		var got []string
		poll(t, fmt.Sprintf("%s at the %s webhook", w.key(), w.receiver), func(context.Context) (bool, error) {
			got = got[:0]
			for _, n := range hooks[w.receiver].Notifications() {
				if n.Receiver != w.receiver {
					return false, fmt.Errorf("notification for receiver %q at the %s webhook", n.Receiver, w.receiver)
				}
				for _, a := range n.Alerts {
					got = append(got, alertID(a.Labels))
					if a.Labels["alertname"] == w.alertname && hasLabels(a.Labels, w.labels) {
						return true, nil
					}
				}
			}
			return false, nil
		})
	}
	for name, h := range hooks {
		for _, n := range h.Notifications() {
			for _, a := range n.Alerts {
				if receiverOf(a.Labels["severity"]) != name {
					t.Errorf("%s notified of %s", name, alertID(a.Labels))
				}
			}
		}
	}
}

// checkNoNormalAlerts checks that the Normal Events of the workload reached
// Loki and raised no alert: every alert of the Loki route is about Events
// that were Warnings, and the Prometheus route alerts only on the reasons of
// its rules.
func checkNoNormalAlerts(t *testing.T, am *amtest.Alertmanager, loki *lokitest.Loki, events *eventLog) {
	normal, err := loki.QueryRange(t.Context(), `{k8s_cluster_name="e2e", k8s_namespace_name="`+alertsNamespace+`"} | k8s_event_type="Normal"`,
		time.Now().Add(-time.Hour), time.Now(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, e := range normal {
		reasons[e.StructuredMetadata["k8s_event_reason"]]++
		if r := e.StructuredMetadata["k8s_event_alert_rule"]; r != "" {
			t.Errorf("a Normal Event's record in Loki is an alert of rule %q: %s", r, e.Line)
		}
	}
	t.Logf("Normal Events in Loki, by reason: %v", reasons)
	for _, r := range []string{"Scheduled", "Pulled", "Created", "Started", "Killing"} {
		if reasons[r] == 0 {
			t.Errorf("no Normal %s Event in Loki: the check below would prove nothing", r)
		}
	}
	alerts, err := am.Alerts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	promReasons := []string{"OOMKilling", "OOMKilled", "BackOff", "FailedScheduling", "NodeNotReady"}
	for _, a := range alerts {
		l := a.Labels
		if !strings.HasPrefix(l["alertname"], "KubernetesEvent") {
			if !slices.Contains(promReasons, l["k8s_event_reason"]) {
				t.Errorf("%s: a Prometheus alert on a reason its rules do not name", alertID(l))
			}
			continue
		}
		key := eventKey(l["k8s_namespace_name"], l["k8s_object_kind"], l["k8s_object_name"], l["k8s_event_reason"])
		if types := events.typesOf(key); !slices.Equal(types, []string{corev1.EventTypeWarning}) {
			t.Errorf("%s: the Events behind it are of types %v, want Warning only", alertID(l), types)
		}
	}
}

// checkResolves waits until the alert about the Warning that happened
// pastAge ago resolves: it leaves Alertmanager, and the chat webhook is told.
func checkResolves(t *testing.T, am *amtest.Alertmanager, amAlerts *alertLog, chat *amtest.Webhook, events *eventLog, happened time.Time) {
	created, ok := events.firstSeen(func(k string) bool { return k == eventKey(alertsNamespace, "Pod", podPast, "Unhealthy") })
	if !ok {
		t.Fatal("the past Warning was not seen")
	}
	matcher := `k8s_object_name="` + podPast + `"`
	poll(t, "the past Warning's alert resolved in Alertmanager", func(ctx context.Context) (bool, error) {
		alerts, err := am.Alerts(ctx, matcher)
		return err == nil && len(alerts) == 0, err
	})
	var last time.Time
	for _, a := range amAlerts.all() {
		if a.Labels["k8s_object_name"] == podPast {
			last = a.lastSeen
		}
	}
	var (
		resolved amtest.NotificationAlert
		received time.Time
	)
	poll(t, "the resolved notification at the chat webhook", func(context.Context) (bool, error) {
		for _, n := range chat.Notifications() {
			for _, a := range n.Alerts {
				if a.Labels["k8s_object_name"] == podPast && a.Status == "resolved" {
					resolved, received = a, n.Received
					return true, nil
				}
			}
		}
		return false, nil
	})
	t.Logf("resolved: the alert about a Warning that happened %v before it was created ended %v after the Event happened (the rules' range is 10m), "+
		"%.1fs after it was created; Alertmanager listed it last %.1fs after, and told the chat webhook %.1fs after",
		pastAge, resolved.EndsAt.Sub(happened).Round(time.Second), resolved.EndsAt.Sub(created).Seconds(),
		last.Sub(created).Seconds(), received.Sub(created).Seconds())
	if d := resolved.EndsAt.Sub(happened); d < 10*time.Minute {
		t.Errorf("the alert ended %v after the Event happened, before the rules' range of 10m had passed", d)
	}
}

// checkDocumentedChecks runs the README's last step: the curl command, the
// PromQL and the LogQL, against the test's servers.
func checkDocumentedChecks(t *testing.T, doc alertsDoc, am *amtest.Alertmanager, prom *promtest.Prometheus, loki *lokitest.Loki) {
	var listed []amtest.Alert
	if err := json.Unmarshal(doc.runCurl(t, am.URL()), &listed); err != nil {
		t.Fatalf("curl's output: %v", err)
	}
	var crashLoop *amtest.Alert
	for i, a := range listed {
		if a.Labels["alertname"] == "KubernetesEventWarningIsError" && a.Labels["k8s_object_name"] == kubetest.PodCrashLoop {
			crashLoop = &listed[i]
		}
	}
	if crashLoop == nil {
		t.Errorf("curl lists %d alerts, without the crash loop's", len(listed))
	} else if got := crashLoop.ReceiverNames(); !slices.Equal(got, []string{"pager"}) {
		t.Errorf("curl: the crash loop's alert went to %v, want pager", got)
	}

	promql := strings.TrimSpace(doc.block(t, "promql", ""))
	firing, err := prom.Query(t.Context(), promql, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range firing {
		names = append(names, s.Labels["alertname"])
	}
	sort.Strings(names)
	for _, w := range wantAlerts {
		if w.route == "prometheus" && !slices.Contains(names, w.alertname) {
			t.Errorf("%s: %s is not among %v", promql, w.alertname, names)
		}
	}

	logql := strings.TrimSpace(doc.block(t, "logql", ""))
	records, err := loki.QueryRange(t.Context(), logql, time.Now().Add(-time.Hour), time.Now(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]bool{}
	for _, e := range records {
		rules[e.StructuredMetadata["k8s_event_alert_rule"]] = true
	}
	for rule := range lokiAlertNames {
		if !rules[rule] {
			t.Errorf("%s: no record of rule %s among %d", logql, rule, len(records))
		}
	}
}

// alertsDoc is what the README's section "Alerts" tells a user to run.
type alertsDoc struct {
	blocks []codeBlock
}

type codeBlock struct {
	lang, text string
}

// readAlertsDoc reads the code blocks of README.md's section "Alerts".
func readAlertsDoc(t *testing.T) alertsDoc {
	t.Helper()
	b := readRoot(t, "README.md")
	_, section, ok := strings.Cut(string(b), "\n## Alerts\n")
	if !ok {
		t.Fatal(`README.md has no section "## Alerts"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var doc alertsDoc
	var cur *codeBlock
	var indent string
	sc := bufio.NewScanner(strings.NewReader(section))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &codeBlock{lang: strings.TrimPrefix(trimmed, "```")}
			indent = line[:len(line)-len(trimmed)]
		case cur != nil && trimmed == "```":
			doc.blocks = append(doc.blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += strings.TrimPrefix(line, indent) + "\n"
		}
	}
	if len(doc.blocks) == 0 {
		t.Fatal(`README.md's section "Alerts" has no code blocks`)
	}
	return doc
}

// block is the one code block of the language whose text starts with
// prefix; it fails t unless there is exactly one.
func (d alertsDoc) block(t *testing.T, lang, prefix string) string {
	t.Helper()
	var found []string
	for _, b := range d.blocks {
		if b.lang == lang && strings.HasPrefix(b.text, prefix) {
			found = append(found, b.text)
		}
	}
	if len(found) != 1 {
		t.Fatalf("README.md, Alerts: %d %s blocks starting with %q, want 1", len(found), lang, prefix)
	}
	return found[0]
}

// command is the words of a one-line sh block that runs program.
func (d alertsDoc) command(t *testing.T, program string) []string {
	t.Helper()
	words := strings.Fields(d.block(t, "sh", program+" "))
	return words[1:]
}

// replace is s with old replaced by new; it fails t when s has no old, so
// that the test replaces only what a user must.
func replace(t *testing.T, what, s, old, with string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("README.md, Alerts: %s has no %q", what, old)
	}
	return strings.ReplaceAll(s, old, with)
}

// alertmanagerConfig is the file that the README's alertmanager command
// names, with the URL of each receiver's webhook replaced by the test's,
// and Alertmanager's grouping waits at the test's 1 second.
func (d alertsDoc) alertmanagerConfig(t *testing.T, urls map[string]string) string {
	t.Helper()
	args := d.command(t, "alertmanager")
	if len(args) != 1 || !strings.HasPrefix(args[0], "--config.file=") {
		t.Fatalf("README.md, Alerts: alertmanager %v, want only --config.file", args)
	}
	b := readRoot(t, strings.TrimPrefix(args[0], "--config.file="))
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", args[0], err)
	}
	receivers, _ := cfg["receivers"].([]any)
	if len(receivers) != len(urls) {
		t.Fatalf("%s: %d receivers, want %v", args[0], len(receivers), slices.Sorted(maps.Keys(urls)))
	}
	for _, r := range receivers {
		r := r.(map[string]any)
		url, ok := urls[r["name"].(string)]
		hooks, _ := r["webhook_configs"].([]any)
		if !ok || len(hooks) != 1 {
			t.Fatalf("%s: receiver %v, want one of %v with one webhook", args[0], r["name"], slices.Sorted(maps.Keys(urls)))
		}
		hooks[0].(map[string]any)["url"] = url
	}
	route := cfg["route"].(map[string]any)
	route["group_wait"], route["group_interval"] = "1s", "1s"
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// lokiAlertmanagerURL is the README's ruler configuration with the test's
// Alertmanager: the only key it may set is the one lokitest sets.
func (d alertsDoc) lokiAlertmanagerURL(t *testing.T, amURL string) string {
	t.Helper()
	var cfg struct {
		Ruler map[string]any `json:"ruler"`
	}
	if err := yaml.Unmarshal([]byte(d.block(t, "yaml", "ruler:")), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Ruler) != 1 || cfg.Ruler["alertmanager_url"] != "http://localhost:9093" {
		t.Fatalf("README.md, Alerts: ruler %v, want only alertmanager_url: http://localhost:9093", cfg.Ruler)
	}
	return amURL
}

// installLokiRules runs the README's mkdir and cp, into the rules directory
// of the test's Loki instead of /tmp/loki/rules, from the repository root.
func (d alertsDoc) installLokiRules(t *testing.T, rulesDir string) {
	t.Helper()
	line := strings.TrimSpace(d.block(t, "sh", "mkdir "))
	line = replace(t, "the mkdir command", line, "/tmp/loki/rules", rulesDir)
	root := moduleRoot(t)
	cmd := exec.CommandContext(t.Context(), "sh", "-c", line)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", line, err, out)
	}
}

// prometheusConfig is the README's prometheus.yml with the test's
// collector and Alertmanager, and the rule file's path from the
// repository root (Prometheus reads it relative to prometheus.yml, which the
// README puts next to alerts/).
func (d alertsDoc) prometheusConfig(t *testing.T, collector, amURL string) string {
	t.Helper()
	root := moduleRoot(t)
	cfg := d.block(t, "yaml", "rule_files:")
	cfg = replace(t, "prometheus.yml", cfg, "localhost:8889", collector)
	cfg = replace(t, "prometheus.yml", cfg, "localhost:9093", strings.TrimPrefix(amURL, "http://"))
	return replace(t, "prometheus.yml", cfg, "alerts/prometheus-rules.yaml", filepath.Join(root, "alerts", "prometheus-rules.yaml"))
}

// prometheusFlags are the README prometheus command's flags but
// --config.file, which promtest sets.
func (d alertsDoc) prometheusFlags(t *testing.T) []string {
	t.Helper()
	var flags []string
	for _, a := range d.command(t, "prometheus") {
		if a != "--config.file=prometheus.yml" {
			flags = append(flags, a)
		}
	}
	return flags
}

// runCurl runs the README's curl command against the test's Alertmanager
// and returns what it printed.
func (d alertsDoc) runCurl(t *testing.T, amURL string) []byte {
	t.Helper()
	args := d.command(t, "curl")
	for i := range args {
		args[i] = strings.ReplaceAll(args[i], "http://localhost:9093", amURL)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("the README's command needs curl: %v (Debian: apt-get install curl)", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), "curl", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %v: %v: %s", args, err, stderr.String())
	}
	return stdout.Bytes()
}
