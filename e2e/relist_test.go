package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestExpiredContinueToken makes a real API server expire a list's continue
// token: the first page is delivered to a backend that takes 20 seconds to
// answer while etcd is compacted every 5 seconds, so the next page's token
// points at a compacted revision (410 Gone). The receiver lists again and
// delivers every Event once.
func TestExpiredContinueToken(t *testing.T) {
	t.Parallel()
	eachMode(t, testExpiredContinueToken)
}

// In watch mode the same list runs before the first watch.
func testExpiredContinueToken(t *testing.T, mode string) {
	opts := kubeOptions()
	opts.EtcdCompactionInterval = 5 * time.Second
	cp := startControlPlane(t, opts)
	c := fastClient(t, cp)
	createNamespaces(t, c, "paged", "churn")
	var want []string
	for _, ev := range createEvents(t, c, "paged", "ev", 300) {
		want = append(want, eventID(ev))
	}

	sink := newSink(t)
	sink.DelayNext(1, 20*time.Second)
	// Synchronous delivery: no batch processor and no sending queue, so the
	// slow export holds the list between its pages.
	p := pipeline{
		mode:     mode,
		receiver: "interval: 1s\nstart_at: beginning\npage_size: 50\nnamespaces: [paged]",
		exporter: "sending_queue:\n  enabled: false\ntimeout: 60s",
		noBatch:  true,
	}
	col := startCollectorPipeline(t, clusterReaderKubeconfig(t, cp, mode), sink, p)
	// Writes elsewhere move etcd's revision on, so compaction passes the
	// revision of the first page.
	churn := startStream(t, c, "churn", "churn", 50*time.Millisecond, 0)
	col.WaitOutput("Continue token expired; listing again from the start", waitLong)
	churn.Stop()

	expectExactlyOnce(t, sink, want)
	if n := strings.Count(col.Output(), "Continue token expired"); n == 0 {
		t.Errorf("no relist logged")
	}
}
