package e2e

import (
	"testing"
	"time"

	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// TestStartAt: Events stored before the collector starts arrive with
// start_at beginning and not with end; later ones arrive with both.
func TestStartAt(t *testing.T) {
	t.Parallel()
	eachMode(t, testStartAt)
}

func testStartAt(t *testing.T, mode string) {
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "app")
	kubeconfig := clusterReaderKubeconfig(t, cp, mode)

	var before []string
	for _, ev := range createEvents(t, c, "app", "before", 20) {
		before = append(before, eventID(ev))
	}

	fromBeginning, fromEnd := newSink(t), newSink(t)
	startCollector(t, kubeconfig, fromBeginning, mode, "interval: 1s\nstart_at: beginning")
	// startCollector waits until the first poll of start_at end has passed,
	// or the Events created next could count as already stored.
	startCollector(t, kubeconfig, fromEnd, mode, "interval: 1s\nstart_at: end")
	fromBeginning.Wait(t, waitLong, "the 20 stored events", func(r []otlpsink.Record) bool { return len(r) >= 20 })

	var after []string
	for _, ev := range createEvents(t, c, "app", "after", 20) {
		after = append(after, eventID(ev))
	}
	fromBeginning.Wait(t, waitLong, "40 events", func(r []otlpsink.Record) bool { return len(r) >= 40 })
	fromEnd.Wait(t, waitLong, "20 new events", func(r []otlpsink.Record) bool { return len(r) >= 20 })
	time.Sleep(3 * time.Second)

	t.Run("beginning", func(t *testing.T) { checkExactlyOnce(t, fromBeginning.Records(), append(before, after...)) })
	t.Run("end", func(t *testing.T) { checkExactlyOnce(t, fromEnd.Records(), after) })
}
