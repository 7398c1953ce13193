package e2e

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// TestRealControllerEvents: a Deployment whose two pods together need more
// memory than the one Node has, then the Node, then a scale-down. The events
// come from the real kube-controller-manager and kube-scheduler.
func TestRealControllerEvents(t *testing.T) {
	t.Parallel()
	eachMode(t, testRealControllerEvents)
}

func testRealControllerEvents(t *testing.T, mode string) {
	opts := kubeOptions()
	opts.Controllers = true
	cp := startControlPlane(t, opts)
	c := cp.Client()
	ctx := context.Background()
	const ns = "shop"
	createNamespaces(t, c, ns)
	sink := otlpsink.Start(t)
	startCollector(t, clusterReaderKubeconfig(t, cp, mode), sink, mode, "interval: 2s\ncluster_name: e2e")

	dep := kubetest.Deployment(ns, "web", 2, "100m", "3Gi")
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	sink.Wait(t, waitLong, "FailedScheduling", hasReason("FailedScheduling", 1))
	if _, err := c.CoreV1().Nodes().Create(ctx, kubetest.ReadyNode("node-1", "4", "4Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node: %v", err)
	}
	// One pod fits on the Node; the other stays unschedulable (its series
	// goes on under the first message: the scheduler does not change it).
	sink.Wait(t, waitLong, "Scheduled and RegisteredNode", func(r []otlpsink.Record) bool {
		return hasReason("Scheduled", 1)(r) && hasReason("RegisteredNode", 1)(r)
	})

	scale, err := c.AppsV1().Deployments(ns).GetScale(ctx, dep.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get scale: %v", err)
	}
	scale.Spec.Replicas = 1
	if _, err := c.AppsV1().Deployments(ns).UpdateScale(ctx, dep.Name, scale, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("scale down: %v", err)
	}
	recs := sink.Wait(t, waitLong, "the scale-down events", func(r []otlpsink.Record) bool {
		return hasMessage("ScalingReplicaSet", "Scaled down")(r) && hasReason("SuccessfulDelete", 1)(r)
	})

	check := func(reason, kind string, sev plog.SeverityNumber, wantNamespace string) otlpsink.Record {
		t.Helper()
		for _, r := range recs {
			if r.Str("k8s.event.reason") != reason {
				continue
			}
			if got := r.Str("k8s.object.kind"); got != kind {
				t.Errorf("%s: k8s.object.kind %q, want %q", reason, got, kind)
			}
			if r.Severity != sev {
				t.Errorf("%s: severity %v, want %v", reason, r.Severity, sev)
			}
			if got := r.Str("k8s.namespace.name"); got != wantNamespace {
				t.Errorf("%s: k8s.namespace.name %q, want %q", reason, got, wantNamespace)
			}
			if r.Str("k8s.cluster.name") != "e2e" {
				t.Errorf("%s: k8s.cluster.name %q, want e2e", reason, r.Str("k8s.cluster.name"))
			}
			if r.Body == "" || r.Timestamp.IsZero() || r.Int("k8s.event.count") < 1 {
				t.Errorf("%s: body %q, timestamp %v, count %d: want all set", reason, r.Body, r.Timestamp, r.Int("k8s.event.count"))
			}
			return r
		}
		t.Errorf("no %s record", reason)
		return otlpsink.Record{}
	}
	scaling := check("ScalingReplicaSet", "Deployment", plog.SeverityNumberInfo, ns)
	if scaling.Str("k8s.deployment.name") != "web" || !strings.HasPrefix(scaling.Body, "Scaled up replica set web-") {
		t.Errorf("ScalingReplicaSet: k8s.deployment.name %q, body %q", scaling.Str("k8s.deployment.name"), scaling.Body)
	}
	if src := scaling.Str("k8s.event.source.component"); src != "deployment-controller" {
		t.Errorf("ScalingReplicaSet: k8s.event.source.component %q, want deployment-controller", src)
	}
	check("SuccessfulCreate", "ReplicaSet", plog.SeverityNumberInfo, ns)
	check("SuccessfulDelete", "ReplicaSet", plog.SeverityNumberInfo, ns)
	failed := check("FailedScheduling", "Pod", plog.SeverityNumberWarn, ns)
	if failed.Str("k8s.pod.name") == "" || failed.Body != "no nodes available to schedule pods" {
		t.Errorf("FailedScheduling: k8s.pod.name %q, body %q", failed.Str("k8s.pod.name"), failed.Body)
	}
	if src := failed.Str("k8s.event.source.component"); src != "default-scheduler" {
		t.Errorf("FailedScheduling: k8s.event.source.component %q, want default-scheduler", src)
	}
	sched := check("Scheduled", "Pod", plog.SeverityNumberInfo, ns)
	if !strings.Contains(sched.Body, "to node-1") {
		t.Errorf("Scheduled: body %q, want it to name node-1", sched.Body)
	}
	node := check("RegisteredNode", "Node", plog.SeverityNumberInfo, "")
	if node.Str("k8s.node.name") != "node-1" {
		t.Errorf("RegisteredNode: k8s.node.name %q, want node-1", node.Str("k8s.node.name"))
	}

	checkSchedulerTimestamps(t, cp, ns, recs)
}

// checkSchedulerTimestamps: the scheduler reports through events.k8s.io, so
// its Events have eventTime and series and no lastTimestamp. Each
// FailedScheduling record must carry series.lastObservedTime, else eventTime,
// of the Event version it was made from.
func checkSchedulerTimestamps(t *testing.T, cp *kubetest.ControlPlane, ns string, recs []otlpsink.Record) {
	t.Helper()
	list, err := cp.Client().CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=FailedScheduling"})
	if err != nil {
		t.Fatalf("list FailedScheduling events: %v", err)
	}
	byID := map[string]otlpsink.Record{}
	for _, r := range recs {
		byID[recordID(r)] = r
	}
	checked := 0
	for _, ev := range list.Items {
		r, ok := byID[eventID(&ev)]
		if !ok {
			continue // changed again after the records were taken
		}
		want, count := ev.EventTime.Time, int64(1)
		if ev.Series != nil {
			want, count = ev.Series.LastObservedTime.Time, int64(ev.Series.Count)
		}
		if !r.Timestamp.Equal(want) {
			t.Errorf("FailedScheduling %s: timestamp %v, want %v (eventTime %v, series %v)", ev.Name, r.Timestamp, want, ev.EventTime, ev.Series)
		}
		if r.Int("k8s.event.count") != count {
			t.Errorf("FailedScheduling %s: count %d, want %d", ev.Name, r.Int("k8s.event.count"), count)
		}
		checked++
	}
	if checked == 0 {
		t.Errorf("no FailedScheduling record matches a stored version of the event")
	}
}

func hasReason(reason string, n int) func([]otlpsink.Record) bool {
	return func(recs []otlpsink.Record) bool {
		return countWhere(recs, func(r otlpsink.Record) bool { return r.Str("k8s.event.reason") == reason }) >= n
	}
}

func hasMessage(reason, prefix string) func([]otlpsink.Record) bool {
	return func(recs []otlpsink.Record) bool {
		return countWhere(recs, func(r otlpsink.Record) bool {
			return r.Str("k8s.event.reason") == reason && strings.HasPrefix(r.Body, prefix)
		}) > 0
	}
}
