package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

const leaseDuration = 6 * time.Second

// TestLeaderFailover runs two replicas with leader election and the shared
// ConfigMap resume point. Only the leader emits; when it is killed, the other
// takes over after the Lease expires and resumes where the leader stopped.
func TestLeaderFailover(t *testing.T) {
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "busy")
	kubeconfig := clusterReaderKubeconfig(t, cp)
	grantCheckpoint(t, cp)
	grantLease(t, cp)
	p := configMapPipeline(fmt.Sprintf(`leader_election:
  lease_name: k8sevents
  lease_namespace: %s
  lease_duration: %v
  renew_deadline: 4s
  retry_period: 1s`, collectorNamespace, leaseDuration))

	sinks := []*otlpsink.Sink{newSink(t), newSink(t)}
	cols := []*collectortest.Collector{
		collectortest.Start(t, p.config(sinks[0]), "KUBECONFIG="+kubeconfig),
		collectortest.Start(t, p.config(sinks[1]), "KUBECONFIG="+kubeconfig),
	}
	s := startStream(t, c, "busy", "ev", 20*time.Millisecond, 0)

	// Whichever sink receives first belongs to the leader.
	leader := -1
	deadline := time.Now().Add(waitLong)
	for leader < 0 {
		for i, sink := range sinks {
			if len(sink.Records()) > 0 {
				leader = i
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no replica emitted anything")
		}
		time.Sleep(100 * time.Millisecond)
	}
	follower := 1 - leader
	sinks[leader].Wait(t, waitLong, "300 records from the leader", func(r []otlpsink.Record) bool { return len(r) >= 300 })
	holder := leaseHolder(t, c, collectorNamespace)
	cols[leader].Kill()
	killed := time.Now()

	first := sinks[follower].Wait(t, waitLong, "the follower taking over", func(r []otlpsink.Record) bool { return len(r) > 0 })[0].Received
	s.waitCount(s.count() + 200)
	s.Stop()
	want := s.Created()
	all := func() []otlpsink.Record { return append(sinks[0].Records(), sinks[1].Records()...) }
	sinks[follower].Wait(t, waitLong, fmt.Sprintf("%d records in all", len(want)), func([]otlpsink.Record) bool { return len(tally(all())) >= len(want) })
	time.Sleep(3 * time.Second)

	// One at a time: the follower emitted nothing before the leader died,
	// and the leader (dead) nothing after.
	for _, r := range sinks[follower].Records() {
		if r.Received.Before(killed) {
			t.Errorf("the follower emitted %s before the leader was killed", recordID(r))
			break
		}
	}
	newHolder := leaseHolder(t, c, collectorNamespace)
	if newHolder == holder {
		t.Errorf("lease holder is still %q after the failover", holder)
	}
	recs := all()
	lost, repeated := lostAndRepeated(recs, want)
	window := checkpointInterval + time.Second
	bound := countWhere(sinks[leader].Records(), func(r otlpsink.Record) bool { return r.Received.After(killed.Add(-window)) })
	t.Logf("failover from %q to %q: follower's first record %.1fs after the kill (lease_duration %v); %d Events, %d lost, %d repeated (bound %d)",
		holder, newHolder, first.Sub(killed).Seconds(), leaseDuration, len(want), lost, repeated, bound)
	if lost != 0 {
		t.Errorf("%d Events lost", lost)
	}
	if repeated > bound {
		t.Errorf("%d repeated, more than the bound %d", repeated, bound)
	}
	if exited, err := cols[follower].Exited(); exited {
		t.Errorf("the follower exited: %v", err)
	}
}

func leaseHolder(t *testing.T, c kubernetes.Interface, namespace string) string {
	t.Helper()
	lease, err := c.CoordinationV1().Leases(namespace).Get(context.Background(), "k8sevents", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get lease: %v", err)
	}
	if lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}
