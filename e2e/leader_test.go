package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

const leaseDuration = 6 * time.Second

// TestLeaderFailover runs two replicas with leader election and the shared
// ConfigMap resume point. Only the leader emits; when it is killed, the other
// takes over after the Lease expires and resumes where the leader stopped.
func TestLeaderFailover(t *testing.T) {
	t.Parallel()
	eachMode(t, testLeaderFailover)
}

func testLeaderFailover(t *testing.T, mode string) {
	c, sinks, cols, s := startReplicas(t, mode)
	leader := waitForLeader(t, sinks)
	follower := 1 - leader
	sinks[leader].Wait(t, waitLong, "300 records from the leader", func(r []otlpsink.Record) bool { return len(r) >= 300 })
	holder := leaseHolder(t, c, collectorNamespace)
	cols[leader].Kill()
	killed := time.Now()
	// The follower will resume from what the dead leader last wrote.
	resumeFrom := readCheckpoint(t, c)

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
	// What the leader delivered after its last checkpoint write is what
	// the follower may deliver again.
	bound := countWhere(sinks[leader].Records(), func(r otlpsink.Record) bool { return !resumeFrom.covers(r) })
	t.Logf("%s: failover from %q to %q: follower's first record %.1fs after the kill (lease_duration %v); %d Events, %d lost, %d repeated (bound %d)",
		mode, holder, newHolder, first.Sub(killed).Seconds(), leaseDuration, len(want), lost, repeated, bound)
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

// checkpoint is the resume point as the receiver keeps it in the ConfigMap
// (positions.json): per scope, the revision up to which every Event was
// delivered, and the steps of a list that stopped part way (Events with
// keys up to Key were delivered up to Rev).
type checkpoint struct {
	Scopes map[string]struct {
		Mark  uint64 `json:"mark"`
		Steps []struct {
			Key string `json:"key"`
			Rev uint64 `json:"rev"`
		} `json:"steps"`
	} `json:"scopes"`
}

func readCheckpoint(t *testing.T, c kubernetes.Interface) checkpoint {
	t.Helper()
	cm, err := c.CoreV1().ConfigMaps(collectorNamespace).Get(context.Background(), "k8sevents-checkpoint", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get the checkpoint ConfigMap: %v", err)
	}
	var cp checkpoint
	if err := json.Unmarshal([]byte(cm.Data["positions.json"]), &cp); err != nil {
		t.Fatalf("decode the checkpoint %q: %v", cm.Data["positions.json"], err)
	}
	return cp
}

// covers reports whether a replica resuming from the checkpoint of the
// cluster-wide scope ("*") skips the record's change.
func (cp checkpoint) covers(r otlpsink.Record) bool {
	s, ok := cp.Scopes["*"]
	if !ok {
		return false
	}
	rev, err := strconv.ParseUint(r.Str("k8s.event.resource_version"), 10, 64)
	if err != nil {
		return false
	}
	key := r.Str("k8s.event.namespace") + "/" + r.Str("k8s.event.name")
	upTo := s.Mark
	for _, st := range s.Steps {
		if key <= st.Key {
			upTo = st.Rev
			break
		}
	}
	return rev <= upTo
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

// TestLeaseTakenAway: another holder takes the Lease over (as a replica
// would after the leader's renewals failed). The leader stops emitting: no
// Event created after it logged the loss reaches its exporter. When the
// Lease is free again, a replica resumes and nothing is lost.
func TestLeaseTakenAway(t *testing.T) {
	t.Parallel()
	eachMode(t, testLeaseTakenAway)
}

func testLeaseTakenAway(t *testing.T, mode string) {
	c, sinks, cols, s := startReplicas(t, mode)
	leader := waitForLeader(t, sinks)
	sinks[leader].Wait(t, waitLong, "100 records from the leader", func(r []otlpsink.Record) bool { return len(r) >= 100 })

	// The Lease goes to a holder that is none of the replicas, for long.
	// The leader renews it meanwhile: on a conflict, read it again.
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		lease, err := c.CoordinationV1().Leases(collectorNamespace).Get(ctx, "k8sevents", metav1.GetOptions{})
		if err != nil {
			return err
		}
		intruder, long := "intruder", int32(3600)
		now := metav1.NewMicroTime(time.Now())
		lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds = &intruder, &long
		lease.Spec.AcquireTime, lease.Spec.RenewTime = &now, &now
		_, err = c.CoordinationV1().Leases(collectorNamespace).Update(ctx, lease, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("take the lease: %v", err)
	}
	cols[leader].WaitOutput("Lost leadership; stopped emitting Kubernetes events", waitLong)
	afterLoss := s.count()
	time.Sleep(10 * time.Second) // the stream goes on; no replica may emit it
	created := s.Created()
	late := map[string]bool{}
	for _, id := range created[afterLoss:] {
		late[id] = true
	}
	for i, sink := range sinks {
		if n := countWhere(sink.Records(), func(r otlpsink.Record) bool { return late[recordID(r)] }); n > 0 {
			t.Errorf("replica %d emitted %d Events created after the leader lost the Lease to another holder", i, n)
		}
	}
	if len(late) == 0 {
		t.Fatal("no Events were created after the loss: the test checked nothing")
	}

	// The Lease is free again: a replica takes over and resumes.
	if err := c.CoordinationV1().Leases(collectorNamespace).Delete(ctx, "k8sevents", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete lease: %v", err)
	}
	s.waitCount(s.count() + 100)
	s.Stop()
	want := s.Created()
	all := func() []otlpsink.Record { return append(sinks[0].Records(), sinks[1].Records()...) }
	sinks[0].Wait(t, waitLong, fmt.Sprintf("%d records in all", len(want)), func([]otlpsink.Record) bool { return len(tally(all())) >= len(want) })
	time.Sleep(3 * time.Second)
	lost, repeated := lostAndRepeated(all(), want)
	t.Logf("%d Events, %d created while the Lease was held by another: %d lost, %d repeated", len(want), len(late), lost, repeated)
	if lost != 0 {
		t.Errorf("%d Events lost", lost)
	}
	for i, col := range cols {
		if exited, err := col.Exited(); exited {
			t.Errorf("replica %d exited: %v", i, err)
		}
	}
}

// startReplicas starts a control plane, two collectors with leader
// election and a shared ConfigMap checkpoint (each exporting to its own
// sink, with exactly the documented RBAC rules), and a stream of Events.
func startReplicas(t *testing.T, mode string) (kubernetes.Interface, []*otlpsink.Sink, []*collectortest.Collector, *stream) {
	t.Helper()
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "busy")
	kubeconfig := clusterReaderKubeconfig(t, cp, mode)
	grantCheckpoint(t, cp)
	grantLease(t, cp)
	p := configMapPipeline(mode, fmt.Sprintf(`leader_election:
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
	return c, sinks, cols, startStream(t, c, "busy", "ev", 20*time.Millisecond, 0)
}

// waitForLeader returns the index of the first sink that receives a record:
// the leader's.
func waitForLeader(t *testing.T, sinks []*otlpsink.Sink) int {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		for i, sink := range sinks {
			if len(sink.Records()) > 0 {
				return i
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no replica emitted anything")
	return -1
}
