package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// The fault tests run in both modes (eachMode; TestGracefulRestart checks
// that watch mode resumes without a list); these test what only watch mode
// does: survive the API server ending its watches.

// TestWatchEndedByAPIServer restarts kube-apiserver in the middle of a
// stream: the server ends every watch, the collector watches again from its
// cursor when the server is back, and nothing is lost or repeated.
func TestWatchEndedByAPIServer(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "stream")
	sink := newSink(t)
	port := collectortest.FreePort(t)
	col := collectortest.Start(t, withMetrics(pipeline{mode: modeWatch, receiver: "interval: 1s"}.config(sink), port),
		"KUBECONFIG="+clusterReaderKubeconfig(t, cp, modeWatch))
	col.WaitOutput("start_at end: skipped the Events already stored", waitLong)

	s := startStream(t, c, "stream", "s", 20*time.Millisecond, 0)
	sink.Wait(t, waitLong, "the first streamed events", func(r []otlpsink.Record) bool { return len(r) >= 50 })
	for range 2 {
		if err := cp.StopAPIServer(); err != nil {
			t.Fatal(err)
		}
		if err := cp.StartAPIServer(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.waitCount(s.count() + 50)
	}
	s.Stop()
	expectExactlyOnce(t, sink, s.Created())

	m := scrape(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	restarts := m[`otelcol_receiver_k8sevents_watch_restarts{cause="error",receiver="k8sevents"}`]
	t.Logf("watch restarts: %v", receiverSeries(m))
	if restarts < 2 {
		t.Errorf("watch_restarts{cause=error} = %v, want at least 2 (one per API server restart)", restarts)
	}
	if exited, err := col.Exited(); exited {
		t.Errorf("collector exited: %v", err)
	}
}

// TestFieldSelector: field_selector reaches the API server on every list and
// watch, together with exclude_namespaces; a selector the server refuses is
// reported with the key's name.
func TestFieldSelector(t *testing.T) {
	t.Parallel()
	eachMode(t, testFieldSelector)
}

func testFieldSelector(t *testing.T, mode string) {
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "app", "noisy")
	kubeconfig := clusterReaderKubeconfig(t, cp, mode)

	warnings := newSink(t)
	startCollector(t, kubeconfig, warnings, mode, "interval: 1s\nexclude_namespaces: [noisy]\nfield_selector: type=Warning,reason!=Ignored")
	refused := collectortest.Start(t, pipeline{mode: mode, receiver: "interval: 1s\nfield_selector: involvedObject.color=blue"}.config(newSink(t)),
		"KUBECONFIG="+kubeconfig)

	var want []string
	for _, spec := range []struct {
		ns, name, typ, reason string
		kept                  bool
	}{
		{"app", "warn-1", "Warning", "BackOff", true},
		{"app", "warn-2", "Warning", "FailedMount", true},
		{"app", "normal-1", "Normal", "Pulled", false},
		{"app", "ignored", "Warning", "Ignored", false},
		{"noisy", "warn-noisy", "Warning", "BackOff", false},
	} {
		ev := newEvent(eventSpec{namespace: spec.ns, name: spec.name, reason: spec.reason, message: spec.name})
		ev.Type = spec.typ
		created, err := c.CoreV1().Events(spec.ns).Create(context.Background(), ev, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s: %v", spec.name, err)
		}
		if spec.kept {
			want = append(want, eventID(created))
		}
	}
	expectExactlyOnce(t, warnings, want)
	refused.WaitOutput(`field_selector: the API server refused \"involvedObject.color=blue\"`, waitLong)
	if !strings.Contains(refused.Output(), "field label not supported") {
		t.Errorf("the refusal does not carry the API server's reason")
	}
}
