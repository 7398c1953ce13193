package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// TestEveryChangeOnce creates 2,000 Events over several polls and updates
// 200 of them: exactly 2,200 records arrive, none missing, none repeated.
func TestEveryChangeOnce(t *testing.T) {
	t.Parallel()
	eachMode(t, testEveryChangeOnce)
}

func testEveryChangeOnce(t *testing.T, mode string) {
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "alpha", "beta")
	sink := newSink(t)
	startCollector(t, clusterReaderKubeconfig(t, cp, mode), sink, mode, `
interval: 1s
page_size: 100
`)

	var want []string
	var created []string
	for batch := range 4 {
		ns := []string{"alpha", "beta"}[batch%2]
		for _, ev := range createEvents(t, c, ns, fmt.Sprintf("batch%d", batch), 500) {
			want = append(want, eventID(ev))
			created = append(created, ev.Namespace+"/"+ev.Name)
		}
		time.Sleep(1500 * time.Millisecond) // let a poll or two pass between batches
	}

	// A poller sees an Event that changes twice between two polls once, in
	// its latest state (the README says so): wait until every creation has
	// been collected, so that each update is a change of its own.
	settle(t, sink, len(want))

	// Update 200 of them: a higher count and a later lastTimestamp, as the
	// event recorder does when an event repeats.
	ctx := context.Background()
	for i := 0; i < 2000; i += 10 {
		ns, name := splitKey(created[i])
		ev, err := c.CoreV1().Events(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get event %s: %v", created[i], err)
		}
		ev.Count++
		ev.LastTimestamp = metav1.NewTime(ev.LastTimestamp.Add(time.Minute))
		updated, err := c.CoreV1().Events(ns).Update(ctx, ev, metav1.UpdateOptions{})
		if err != nil {
			t.Fatalf("update event %s: %v", created[i], err)
		}
		want = append(want, eventID(updated))
	}
	if len(want) != 2200 {
		t.Fatalf("test setup: %d changes, want 2200", len(want))
	}

	recs := settle(t, sink, len(want))
	checkExactlyOnce(t, recs, want)

	// The updated Events carry their new count.
	counts := countWhere(recs, func(r otlpsink.Record) bool { return r.Int("k8s.event.count") == 2 })
	if counts != 200 {
		t.Errorf("records with k8s.event.count 2: %d, want 200", counts)
	}
}

// TestWatchEveryUpdateOnce updates one Event 30 times as fast as the API
// server takes it: watch mode delivers each change, where a poller sees only
// the states that happen to be stored when it lists (the README says so).
func TestWatchEveryUpdateOnce(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "hot")
	sink := newSink(t)
	startCollector(t, clusterReaderKubeconfig(t, cp, modeWatch), sink, modeWatch, "interval: 1s")

	ctx := context.Background()
	ev := createEvents(t, c, "hot", "flapping", 1)[0]
	want := []string{eventID(ev)}
	started := time.Now()
	for range 30 {
		ev.Count++
		ev.LastTimestamp = metav1.NewTime(time.Now())
		updated, err := c.CoreV1().Events("hot").Update(ctx, ev, metav1.UpdateOptions{})
		if err != nil {
			t.Fatalf("update %s: %v", ev.Name, err)
		}
		want = append(want, eventID(updated))
		ev = updated
	}
	t.Logf("31 changes of one Event in %v", time.Since(started).Round(time.Millisecond))
	recs := settle(t, sink, len(want))
	checkExactlyOnce(t, recs, want)
	// Each state once: counts 1 to 31.
	for count := int64(1); count <= 31; count++ {
		if got := countWhere(recs, func(r otlpsink.Record) bool { return r.Int("k8s.event.count") == count }); got != 1 {
			t.Errorf("records with k8s.event.count %d: %d, want 1", count, got)
		}
	}
}

func splitKey(key string) (namespace, name string) {
	for i := range len(key) {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return "", key
}
