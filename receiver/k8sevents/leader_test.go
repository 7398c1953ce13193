package k8sevents

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// withLeaderElection elects with the shortest timing client-go allows, and
// shares the resume point in a ConfigMap.
func withLeaderElection(cfg *Config) {
	cfg.Checkpoint = configoptional.Some(CheckpointConfig{Namespace: "observability", Name: "k8sevents-checkpoint"})
	cfg.CheckpointInterval = time.Millisecond
	cfg.LeaderElection = configoptional.Some(LeaderElectionConfig{
		LeaseName: "k8sevents", LeaseNamespace: "observability",
		LeaseDuration: time.Second, RenewDeadline: 500 * time.Millisecond, RetryPeriod: 100 * time.Millisecond,
	})
}

// electionClientset is a fakeAPI clientset whose ConfigMaps and Leases
// conflict like the API server's.
func electionClientset(api *fakeAPI) *fake.Clientset {
	cs := api.clientset()
	withOptimisticConcurrency(cs, "configmaps", "leases")
	return cs
}

// setLease writes the Lease as another replica would.
func setLease(t *testing.T, cs *fake.Clientset, holder string, renewed time.Time, seconds int32) {
	t.Helper()
	leases := cs.CoordinationV1().Leases("observability")
	require.Eventually(t, func() bool { // the receiver's renewals may conflict
		lease, err := leases.Get(context.Background(), "k8sevents", metav1.GetOptions{})
		require.NoError(t, err)
		rt := metav1.NewMicroTime(renewed)
		lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime = &holder, &seconds, &rt
		_, err = leases.Update(context.Background(), lease, metav1.UpdateOptions{})
		return err == nil
	}, time.Minute, time.Millisecond)
}

func leaderGauge(t *testing.T, tel *componenttest.Telemetry) int64 {
	t.Helper()
	m, err := tel.GetMetric("otelcol_receiver_k8sevents_leader")
	require.NoError(t, err)
	points := m.Data.(metricdata.Gauge[int64]).DataPoints
	require.Len(t, points, 1)
	return points[0].Value
}

// deliveredOnce checks that no record reached more than one sink, or one
// sink twice, and returns how many there are.
func deliveredOnce(t *testing.T, sinks ...*recordSink) int {
	t.Helper()
	all := make(map[string]int)
	for _, s := range sinks {
		s.mu.Lock()
		for id, n := range s.seen {
			all[id] += n
		}
		s.mu.Unlock()
	}
	for id, n := range all {
		assert.Equal(t, 1, n, "deliveries of %s", id)
	}
	return len(all)
}

// Of two replicas, only the leader polls; when it shuts down, the other one
// takes over from the checkpoint it wrote, and nothing is lost or repeated.
func TestLeaderElectionOnlyLeaderEmits(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 10)
	cs := electionClientset(api)
	a := newHarnessOn(t, api, cs, withLeaderElection)
	b := newHarnessOn(t, api, cs, withLeaderElection)
	a.start(t)
	b.start(t)

	require.Eventually(t, func() bool { return a.sink.count()+b.sink.count() >= 10 }, time.Minute, time.Millisecond)
	leader, follower := a, b
	if b.sink.count() > 0 {
		leader, follower = b, a
	}
	leader.settle(t)
	assert.Equal(t, 10, deliveredOnce(t, a.sink, b.sink))
	assert.Zero(t, follower.sink.count(), "the follower emits nothing")
	assert.Equal(t, 1, leader.logs.FilterMessage("Became leader; resuming from the checkpoint").Len())
	assert.Zero(t, follower.logs.FilterMessage("Became leader; resuming from the checkpoint").Len())
	require.Eventually(t, func() bool {
		return follower.logs.FilterMessage("Another replica is the leader").Len() > 0
	}, time.Minute, time.Millisecond)
	assert.Equal(t, leader.rcv.identity, follower.logs.FilterMessage("Another replica is the leader").All()[0].ContextMap()["leader"])
	assert.Equal(t, int64(1), leaderGauge(t, leader.tel))
	assert.Equal(t, int64(0), leaderGauge(t, follower.tel))

	// The leader leaves: it writes the checkpoint, then releases the Lease.
	leader.stop(t)
	assert.Equal(t, 1, leader.logs.FilterMessageSnippet("Shutting down as leader").Len())
	require.Eventually(t, func() bool {
		return follower.logs.FilterMessage("Became leader; resuming from the checkpoint").Len() == 1
	}, time.Minute, time.Millisecond)
	api.addN("default", "more", 5)
	require.Eventually(t, func() bool { return follower.sink.count() >= 5 }, time.Minute, time.Millisecond)
	follower.settle(t)
	assert.Equal(t, 15, deliveredOnce(t, a.sink, b.sink))
	assert.Equal(t, 5, follower.sink.count())
	resumed := follower.logs.FilterMessage("Resumed from checkpoint").All()
	require.Len(t, resumed, 1)
	assert.Equal(t, []any{"*"}, resumed[0].ContextMap()["resumed_scopes"])
}

// A leader that loses its Lease delivers no further page at once, campaigns
// again, and when it leads again resumes from the checkpoint: it repeats only
// what it delivered after its last write.
func TestLostLeadershipStopsEmittingAtOnce(t *testing.T) {
	api := newFakeAPI()
	api.addN("default", "ev", 20) // four pages of five
	cs := electionClientset(api)
	h := newHarnessOn(t, api, cs, withLeaderElection)
	block := make(chan struct{})
	var calls atomic.Int64
	inner := h.sink
	h.rcv.next = consumerFunc(func(ctx context.Context, ld plog.Logs) error {
		if calls.Add(1) == 2 {
			<-block // the second page is in flight when the Lease is lost
		}
		return inner.ConsumeLogs(ctx, ld)
	})
	h.start(t)
	require.Eventually(t, func() bool { return calls.Load() == 2 }, time.Minute, time.Millisecond)

	setLease(t, cs, "intruder", time.Now(), 60)
	require.Eventually(t, func() bool {
		return h.logs.FilterMessage("Lost leadership; stopped emitting Kubernetes events").Len() == 1
	}, time.Minute, time.Millisecond)
	assert.Equal(t, int64(0), leaderGauge(t, h.tel))
	gets := countActions(cs, "get", "leases")
	close(block)
	// Campaigning again means the poll has ended.
	require.Eventually(t, func() bool { return countActions(cs, "get", "leases") >= gets+3 }, time.Minute, time.Millisecond)
	assert.Equal(t, 10, h.sink.count(), "the page in flight, and none after it")
	assert.Equal(t, 1, h.logs.FilterMessage("Became leader; resuming from the checkpoint").Len())

	// The intruder goes away; this replica leads again.
	setLease(t, cs, "", time.Now().Add(-time.Hour), 1)
	require.Eventually(t, func() bool {
		return h.logs.FilterMessage("Became leader; resuming from the checkpoint").Len() == 2
	}, time.Minute, time.Millisecond)
	require.Eventually(t, func() bool { return h.sink.count() >= 25 }, time.Minute, time.Millisecond)
	h.settle(t)
	assert.Equal(t, 25, h.sink.count())
	var repeated []string
	for i := 5; i < 10; i++ {
		repeated = append(repeated, fmt.Sprintf("ev-%03d@%d", i, 101+i))
	}
	assert.ElementsMatch(t, repeated, h.sink.repeats(), "only the page delivered after the last checkpoint write")
	assert.Equal(t, int64(1), leaderGauge(t, h.tel))
}

func TestLeaseForbiddenNamesTheMissingRule(t *testing.T) {
	api := newFakeAPI()
	cs := electionClientset(api)
	cs.PrependReactor("get", "leases", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "k8sevents",
			errors.New(`User "system:serviceaccount:obs:collector" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "observability"`))
	})
	h := newHarnessOn(t, api, cs, withLeaderElection)
	h.start(t)
	require.Eventually(t, func() bool {
		return h.logs.FilterMessage("Leader election cannot use its Lease; retrying").Len() == 1
	}, time.Minute, time.Millisecond)
	msg := h.logs.FilterMessage("Leader election cannot use its Lease; retrying").All()[0].ContextMap()["error"]
	assert.Contains(t, msg, `RBAC: grant verb "get" on resource "leases" (apiGroups ["coordination.k8s.io"]) in namespace "observability" (Role, resourceNames ["k8sevents"])`)
	assert.Zero(t, api.listCalls(), "no poll without the Lease")
}

func TestIdentity(t *testing.T) {
	t.Setenv("POD_NAME", "collector-7d9f-abcde")
	a, b := newIdentity(), newIdentity()
	assert.Regexp(t, `^collector-7d9f-abcde_[0-9a-f]{8}$`, a)
	assert.NotEqual(t, a, b, "two processes of one pod never share an identity")
}
