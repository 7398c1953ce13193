package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// TestAPIServerGoesAway stops kube-apiserver for 20 seconds in the middle of
// a stream of Events: the collector stays up, logs the outage and the
// recovery, and every Event created before and after arrives once.
func TestAPIServerGoesAway(t *testing.T) {
	t.Parallel()
	eachMode(t, testAPIServerGoesAway)
}

func testAPIServerGoesAway(t *testing.T, mode string) {
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "stream")
	sink := newSink(t)
	col := startCollector(t, clusterReaderKubeconfig(t, cp, mode), sink, mode, "interval: 1s")

	// A stream of Events, one every 50ms; creations that fail while the
	// server is away are not part of the expectation.
	s := startStream(t, c, "stream", "s", 50*time.Millisecond, 0)

	sink.Wait(t, waitLong, "the first streamed events", func(r []otlpsink.Record) bool { return len(r) >= 20 })
	beforeOutage := s.count()
	if err := cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Second)
	if exited, err := col.Exited(); exited {
		t.Fatalf("collector exited during the outage: %v", err)
	}
	if err := cp.StartAPIServer(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Let the stream go on for a while after the server is back.
	s.waitCount(s.count() + 40)
	s.Stop()
	want := s.Created()
	t.Logf("created %d events before the outage, %d in all", beforeOutage, len(want))
	expectExactlyOnce(t, sink, want)

	if exited, err := col.Exited(); exited {
		t.Fatalf("collector exited: %v", err)
	}
	out := col.Output()
	what := map[string]string{modePoll: "Polling", modeWatch: "Watching"}[mode]
	failed := strings.Count(out, what+" Kubernetes events failed")
	if failed == 0 {
		t.Errorf("the collector did not log the outage")
	}
	// Back-off and de-duplication: not one warning per failed try.
	if tries := 20; failed >= tries {
		t.Errorf("the outage was logged %d times for a 20s outage with retries up to 1s apart; want it logged once per distinct error", failed)
	}
	if !strings.Contains(out, what+" Kubernetes events works again") {
		t.Errorf("the collector did not log the recovery")
	}
}
