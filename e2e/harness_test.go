// Package e2e tests the otelcol-k8sevents binary built by `make build`
// against a real control plane started by kubetest. The collector exports
// over OTLP/HTTP to an otlpsink inside the test.
package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// waitLong bounds waits that depend on polls and controllers. It is not a
// performance limit: it only stops a broken test from hanging.
const waitLong = 3 * time.Minute

// collectorNamespace and collectorSA are where the collector's
// ServiceAccount lives.
const (
	collectorNamespace = "observability"
	collectorSA        = "otelcol-k8sevents"
)

// startControlPlane starts etcd and kube-apiserver (and the controllers when
// asked) for one test.
func startControlPlane(t *testing.T, opts kubetest.Options) *kubetest.ControlPlane {
	t.Helper()
	return kubetest.StartForTest(t, opts)
}

// fastClient is an admin client without client-side rate limits, for
// creating many Events quickly.
func fastClient(t *testing.T, cp *kubetest.ControlPlane) kubernetes.Interface {
	t.Helper()
	cfg := cp.RESTConfig()
	cfg.QPS, cfg.Burst = -1, 0
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("create client: %v", err)
	}
	return c
}

// The receiver's modes. The fault tests run in both: every guarantee in
// the README's table holds whichever reads the Events.
const (
	modePoll  = "poll"
	modeWatch = "watch"
)

// eachMode runs f once per mode, as subtests named after the modes.
func eachMode(t *testing.T, f func(t *testing.T, mode string)) {
	for _, mode := range []string{modePoll, modeWatch} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f(t, mode)
		})
	}
}

// eventVerbs are the verbs on events that the receiver's README documents
// for a mode: poll lists; watch lists (when it has no cursor to watch from)
// and watches.
func eventVerbs(mode string) []string {
	if mode == modeWatch {
		return []string{"list", "watch"}
	}
	return []string{"list"}
}

// getRule grants get on resource of group, as the receiver's README
// documents for extract.
func getRule(group, resource string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: []string{resource}, Verbs: []string{"get"}}
}

// ownersRules are the rules the receiver's README documents for
// extract::owners.
var ownersRules = []rbacv1.PolicyRule{getRule("", "pods"), getRule("apps", "replicasets"), getRule("batch", "jobs")}

// clusterReaderKubeconfig returns a kubeconfig for a ServiceAccount that has
// exactly the rules the receiver's README documents for reading Events in all
// namespaces in the given mode, cluster-wide, plus extra (those of extract).
func clusterReaderKubeconfig(t *testing.T, cp *kubetest.ControlPlane, mode string, extra ...rbacv1.PolicyRule) string {
	t.Helper()
	ctx := context.Background()
	c := cp.Client()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "otelcol-k8sevents"},
		Rules:      append([]rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: eventVerbs(mode)}}, extra...),
	}
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create clusterrole: %v", err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "otelcol-k8sevents"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: collectorNamespace, Name: collectorSA}},
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create clusterrolebinding: %v", err)
	}
	return serviceAccountKubeconfig(t, cp)
}

func serviceAccountKubeconfig(t *testing.T, cp *kubetest.ControlPlane) string {
	t.Helper()
	path, err := cp.ServiceAccountKubeconfig(context.Background(), collectorNamespace, collectorSA)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// pipeline is a collector configuration in parts.
type pipeline struct {
	// mode is the receiver's mode; empty leaves the default (poll).
	mode     string
	receiver string // YAML under receivers::k8sevents, after auth_type and mode
	// extensions is YAML under extensions:, each named in service::extensions.
	extensions map[string]string
	// exporter is extra YAML under the otlp_http exporter.
	exporter string
	// noBatch leaves the batch processor out, so that an exporter error
	// reaches the receiver (the batch processor answers before it exports).
	noBatch bool
}

func indent(yaml, prefix string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(strings.TrimSpace(yaml), "\n") {
		if line != "" {
			b.WriteString(prefix + line + "\n")
		}
	}
	return b.String()
}

func (p pipeline) config(sink *otlpsink.Sink) string {
	return p.configFor(sink.Endpoint())
}

// configFor is the configuration with the otlp_http exporter sending to
// endpoint.
func (p pipeline) configFor(endpoint string) string {
	var b strings.Builder
	var extNames []string
	if len(p.extensions) > 0 {
		b.WriteString("extensions:\n")
		for _, name := range slices.Sorted(maps.Keys(p.extensions)) {
			b.WriteString("  " + name + ":\n" + indent(p.extensions[name], "    "))
			extNames = append(extNames, name)
		}
	}
	b.WriteString("receivers:\n  k8sevents:\n    auth_type: kubeConfig\n")
	if p.mode != "" {
		b.WriteString("    mode: " + p.mode + "\n")
	}
	b.WriteString(indent(p.receiver, "    "))
	exporter := p.exporter
	if !strings.Contains(exporter, "retry_on_failure:") {
		exporter += "\nretry_on_failure:\n  initial_interval: 100ms\n  max_interval: 1s"
	}
	processors := "[batch]"
	if p.noBatch {
		processors = "[]"
	}
	fmt.Fprintf(&b, `processors:
  batch:
    timeout: 100ms
exporters:
  otlp_http:
    endpoint: %s
    compression: none
%sservice:
  extensions: [%s]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
  pipelines:
    logs:
      receivers: [k8sevents]
      processors: %s
      exporters: [otlp_http]
`, endpoint, indent(exporter, "    "), strings.Join(extNames, ", "), processors)
	return b.String()
}

// startCollector runs the collector in mode with the receiver
// configuration given and waits until it has started.
func startCollector(t *testing.T, kubeconfig string, sink *otlpsink.Sink, mode, receiverYAML string) *collectortest.Collector {
	t.Helper()
	return startCollectorPipeline(t, kubeconfig, sink, pipeline{mode: mode, receiver: receiverYAML})
}

// startCollectorPipeline runs the collector with a pipeline and waits
// until it has started and, with start_at end, until its first poll has
// marked where the stored Events end: an Event created before that could
// count as already stored, and would rightly not be emitted.
func startCollectorPipeline(t *testing.T, kubeconfig string, sink *otlpsink.Sink, p pipeline) *collectortest.Collector {
	t.Helper()
	c := collectortest.Start(t, p.config(sink), "KUBECONFIG="+kubeconfig)
	c.WaitOutput("Everything is ready", time.Minute)
	if !strings.Contains(p.receiver, "start_at: beginning") {
		c.WaitOutput("start_at end: skipped the Events already stored", waitLong)
	}
	return c
}

// testSource is the source component of every Event the tests create.
const testSource = "e2e-test"

// newSink is an OTLP endpoint that keeps only the records of Events the
// test created: the control plane reports Events of its own (a repaired
// ClusterIP, for one) that a collector reading all namespaces also sees.
func newSink(t *testing.T) *otlpsink.Sink {
	return otlpsink.StartFiltered(t, func(r otlpsink.Record) bool {
		return r.Str("k8s.event.source.component") == testSource
	})
}

// eventSpec describes an Event the test creates directly.
type eventSpec struct {
	namespace string
	name      string
	reason    string
	message   string
	kind      string // involved object kind, default Pod
}

func newEvent(s eventSpec) *corev1.Event {
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	kind := s.kind
	if kind == "" {
		kind = "Pod"
	}
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.namespace},
		InvolvedObject: corev1.ObjectReference{
			Kind: kind, APIVersion: "v1", Namespace: s.namespace, Name: s.name + "-obj", UID: types.UID("uid-" + s.name),
		},
		Reason:         s.reason,
		Message:        s.message,
		Type:           corev1.EventTypeNormal,
		Count:          1,
		FirstTimestamp: now,
		LastTimestamp:  now,
		Source:         corev1.EventSource{Component: testSource},
	}
}

// createNamespaces creates the namespaces, ignoring those that exist.
func createNamespaces(t *testing.T, c kubernetes.Interface, names ...string) {
	t.Helper()
	for _, n := range names {
		_, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create namespace %s: %v", n, err)
		}
	}
}

// createEvents creates n Events named prefix-0..n-1 in namespace, with
// parallel workers, and returns them as the server stored them.
func createEvents(t *testing.T, c kubernetes.Interface, namespace, prefix string, n int) []*corev1.Event {
	t.Helper()
	out := make([]*corev1.Event, n)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	const workers = 8
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				ev := newEvent(eventSpec{namespace: namespace, name: fmt.Sprintf("%s-%d", prefix, i), reason: "E2ECreated", message: fmt.Sprintf("%s event %d", prefix, i)})
				got, err := c.CoreV1().Events(namespace).Create(context.Background(), ev, metav1.CreateOptions{})
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, fmt.Errorf("create event %s/%s: %w", namespace, ev.Name, err))
					mu.Unlock()
					continue
				}
				out[i] = got
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	return out
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// recordID identifies one change of one Event.
func recordID(r otlpsink.Record) string {
	return r.Str("k8s.event.uid") + "@" + r.Str("k8s.event.resource_version")
}

func eventID(ev *corev1.Event) string {
	return string(ev.UID) + "@" + ev.ResourceVersion
}

// tally counts the records by recordID.
func tally(recs []otlpsink.Record) map[string]int {
	m := make(map[string]int, len(recs))
	for _, r := range recs {
		m[recordID(r)]++
	}
	return m
}

// lostAndRepeated counts the changes in want that did not arrive, and the
// extra copies of those that arrived more than once.
func lostAndRepeated(recs []otlpsink.Record, want []string) (lost, repeated int) {
	got := tally(recs)
	for _, id := range want {
		if got[id] == 0 {
			lost++
		}
		repeated += max(0, got[id]-1)
	}
	return lost, repeated
}

// settle waits until records of at least n distinct changes have arrived,
// then lets a few more polls pass so that anything arriving late (a repeat,
// or something unexpected) is in the sink before the caller counts.
func settle(t *testing.T, sink *otlpsink.Sink, n int) []otlpsink.Record {
	t.Helper()
	sink.Wait(t, waitLong, fmt.Sprintf("%d distinct changes", n), func(r []otlpsink.Record) bool { return len(tally(r)) >= n })
	time.Sleep(3 * time.Second)
	return sink.Records()
}

// expectExactlyOnce settles the sink on len(want) changes and checks that
// each arrived exactly once and nothing else did.
func expectExactlyOnce(t *testing.T, sink *otlpsink.Sink, want []string) {
	t.Helper()
	checkExactlyOnce(t, settle(t, sink, len(want)), want)
}

// checkExactlyOnce fails t unless every id in want arrived exactly once and
// nothing else arrived whose event name starts with one of prefixes.
func checkExactlyOnce(t *testing.T, recs []otlpsink.Record, want []string) {
	t.Helper()
	got := tally(recs)
	var missing, repeated []string
	for _, id := range want {
		switch n := got[id]; {
		case n == 0:
			missing = append(missing, id)
		case n > 1:
			repeated = append(repeated, fmt.Sprintf("%s x%d", id, n))
		}
	}
	wantSet := make(map[string]bool, len(want))
	for _, id := range want {
		wantSet[id] = true
	}
	var unexpected []string
	for id := range got {
		if !wantSet[id] {
			unexpected = append(unexpected, id)
		}
	}
	t.Logf("expected %d changes: %d missing, %d repeated, %d unexpected (of %d records)", len(want), len(missing), len(repeated), len(unexpected), len(recs))
	if len(missing)+len(repeated)+len(unexpected) > 0 {
		t.Errorf("missing %d: %v\nrepeated %d: %v\nunexpected %d: %v", len(missing), head(missing), len(repeated), head(repeated), len(unexpected), head(unexpected))
	}
}

func head(s []string) []string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// countWhere counts records for which f holds.
func countWhere(recs []otlpsink.Record, f func(otlpsink.Record) bool) int {
	n := 0
	for _, r := range recs {
		if f(r) {
			n++
		}
	}
	return n
}
