package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// The Lease and the checkpoint ConfigMap of deploy/ and of the chart's
// defaults.
const (
	deployLease      = "k8sevents"
	deployCheckpoint = "k8sevents-checkpoint"
)

// rolloutWatch follows the collector's namespace while its Deployment
// rolls: every Pod's address (the sink tells records apart by the address
// they came from), every change of the Lease's holder and every version of
// the checkpoint ConfigMap. All three come from one etcd, so their
// resourceVersions order them: the checkpoint a new leader resumed from is
// the last version written before it took the Lease.
type rolloutWatch struct {
	mu          sync.Mutex
	podIPs      map[string]string // Pod name -> IP
	holders     []holderChange
	checkpoints []checkpointVersion
}

type holderChange struct {
	rv     uint64
	holder string // "" when released
	seen   time.Time
}

type checkpointVersion struct {
	rv uint64
	cp checkpoint
}

// watchRollout starts following namespace until the test ends.
func watchRollout(t *testing.T, c kubernetes.Interface, namespace string) *rolloutWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	w := &rolloutWatch{podIPs: map[string]string{}}

	pods := metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + deployName}
	podList, err := c.CoreV1().Pods(namespace).List(ctx, pods)
	if err != nil {
		t.Fatalf("list collector pods: %v", err)
	}
	for i := range podList.Items {
		w.pod(&podList.Items[i])
	}
	follow(ctx, t, &wg, podList.ResourceVersion, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		o.LabelSelector = pods.LabelSelector
		return c.CoreV1().Pods(namespace).Watch(ctx, o)
	}, func(o runtime.Object) {
		if p, ok := o.(*corev1.Pod); ok {
			w.pod(p)
		}
	})

	byName := func(name string) metav1.ListOptions {
		return metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()}
	}
	leases, err := c.CoordinationV1().Leases(namespace).List(ctx, byName(deployLease))
	if err != nil {
		t.Fatalf("list leases: %v", err)
	}
	for i := range leases.Items {
		w.lease(&leases.Items[i])
	}
	follow(ctx, t, &wg, leases.ResourceVersion, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		o.FieldSelector = byName(deployLease).FieldSelector
		return c.CoordinationV1().Leases(namespace).Watch(ctx, o)
	}, func(o runtime.Object) {
		if l, ok := o.(*coordinationv1.Lease); ok {
			w.lease(l)
		}
	})

	cms, err := c.CoreV1().ConfigMaps(namespace).List(ctx, byName(deployCheckpoint))
	if err != nil {
		t.Fatalf("list configmaps: %v", err)
	}
	for i := range cms.Items {
		w.checkpoint(t, &cms.Items[i])
	}
	follow(ctx, t, &wg, cms.ResourceVersion, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		o.FieldSelector = byName(deployCheckpoint).FieldSelector
		return c.CoreV1().ConfigMaps(namespace).Watch(ctx, o)
	}, func(o runtime.Object) {
		if cm, ok := o.(*corev1.ConfigMap); ok {
			w.checkpoint(t, cm)
		}
	})
	return w
}

// follow watches from rv (watching again where a watch ends) and hands
// every object to on, until ctx ends.
func follow(ctx context.Context, t *testing.T, wg *sync.WaitGroup, rv string, watchFn cache.WatchFuncWithContext, on func(runtime.Object)) {
	t.Helper()
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, rv, &cache.ListWatch{WatchFuncWithContext: watchFn})
	if err != nil {
		t.Fatalf("watch from %s: %v", rv, err)
	}
	wg.Go(func() {
		defer rw.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-rw.ResultChan():
				if !ok {
					return
				}
				if ev.Type != watch.Error && ev.Type != watch.Bookmark {
					on(ev.Object)
				}
			}
		}
	})
}

func (w *rolloutWatch) pod(p *corev1.Pod) {
	if p.Status.PodIP == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.podIPs[p.Name] = p.Status.PodIP
}

func (w *rolloutWatch) ip(pod string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.podIPs[pod]
}

func (w *rolloutWatch) lease(l *coordinationv1.Lease) {
	holder := ""
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	rv, _ := strconv.ParseUint(l.ResourceVersion, 10, 64)
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.holders); n == 0 || w.holders[n-1].holder != holder {
		w.holders = append(w.holders, holderChange{rv: rv, holder: holder, seen: time.Now()})
	}
}

func (w *rolloutWatch) checkpoint(t *testing.T, cm *corev1.ConfigMap) {
	var cp checkpoint
	if err := json.Unmarshal([]byte(cm.Data["positions.json"]), &cp); err != nil {
		t.Errorf("decode the checkpoint %q: %v", cm.Data["positions.json"], err)
		return
	}
	rv, _ := strconv.ParseUint(cm.ResourceVersion, 10, 64)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checkpoints = append(w.checkpoints, checkpointVersion{rv: rv, cp: cp})
}

// handover is one change of leader: from the Pod that held the Lease to
// the next, and the checkpoint the next one resumed from.
type handover struct {
	from, to string // Pod names
	resumed  checkpoint
	at       time.Time     // when the new holder was seen
	released time.Duration // from the last holder change before the new holder to it
}

func (w *rolloutWatch) handovers() []handover {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []handover
	last, lastSeen := "", time.Time{}
	for _, h := range w.holders {
		if h.holder != "" && last != "" && h.holder != last {
			ho := handover{from: holderPod(last), to: holderPod(h.holder), at: h.seen, released: h.seen.Sub(lastSeen)}
			for _, v := range w.checkpoints {
				if v.rv < h.rv {
					ho.resumed = v.cp // versions arrive in order
				}
			}
			out = append(out, ho)
		}
		if h.holder != "" {
			last = h.holder
		}
		lastSeen = h.seen
	}
	return out
}

// bound is how many of the records in want may repeat: those that a leader
// which handed over had delivered and that the checkpoint its successor
// resumed from does not cover.
func (w *rolloutWatch) bound(t *testing.T, recs []otlpsink.Record, want []string) (int, []handover) {
	t.Helper()
	ids := make(map[string]bool, len(want))
	for _, id := range want {
		ids[id] = true
	}
	hos := w.handovers()
	w.mu.Lock()
	ips := maps.Clone(w.podIPs)
	w.mu.Unlock()
	n := 0
	var termBegan time.Time
	for _, ho := range hos {
		ip, ok := ips[ho.from]
		if !ok {
			t.Errorf("no address seen for pod %s, which handed the Lease over: its records cannot be told apart", ho.from)
		}
		// What the outgoing leader delivered in its term: a container that
		// restarts in the same Pod has the same address, and may lead next.
		n += countWhere(recs, func(r otlpsink.Record) bool {
			return r.From == ip && r.Received.After(termBegan) && r.Received.Before(ho.at) && ids[recordID(r)] && !ho.resumed.covers(r)
		})
		termBegan = ho.at
	}
	return n, hos
}

// rollUnderLoad creates a stream of Events in a namespace of its own while
// roll replaces both replicas of the collector's Deployment, then checks
// that every Event arrived, and that no more repeat than the leaders that
// handed over had delivered beyond the checkpoint their successors resumed
// from. It returns the records of the stream's Events.
func rollUnderLoad(t *testing.T, c kubernetes.Interface, sink *otlpsink.Sink, what string, roll func()) []otlpsink.Record {
	t.Helper()
	const ns = "rollout"
	createNamespaces(t, c, ns)
	var before []string
	for _, p := range collectorPods(t, c) {
		before = append(before, p.Name)
	}
	w := watchRollout(t, c, deployNamespace)
	s := startStream(t, c, ns, "roll", 50*time.Millisecond, 0)
	s.waitCount(40)
	began := time.Now()
	roll()
	after := waitReplaced(t, c, before)
	took := time.Since(began)
	s.waitCount(s.count() + 40)
	s.Stop()
	want := s.Created()

	// Wait for every Event, but count whatever is there when the wait ends:
	// a lost Event is a figure, not a hang.
	ids := make(map[string]bool, len(want))
	for _, id := range want {
		ids[id] = true
	}
	_ = waitUntil(waitLong, func() bool {
		got := tally(sink.Records())
		for id := range ids {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(3 * time.Second) // a late repeat would be here by now
	recs := sink.Records()
	lost, repeated := lostAndRepeated(recs, want)
	bound, hos := w.bound(t, recs, want)
	var steps []string
	for _, ho := range hos {
		steps = append(steps, fmt.Sprintf("%s (%s) -> %s, %.1fs after the previous holder change", ho.from, w.ip(ho.from), ho.to, ho.released.Seconds()))
	}
	t.Logf("%s: replicas %v replaced by %v in %.1fs; %d Events created meanwhile: %d lost, %d repeated (bound %d: delivered by the leaders that handed over and not covered by the checkpoint their successors resumed from); handovers: %s",
		what, before, after, took.Seconds(), len(want), lost, repeated, bound, strings.Join(steps, "; "))
	if lost != 0 {
		t.Errorf("%s: %d of %d Events lost", what, lost, len(want))
	}
	if repeated > bound {
		t.Errorf("%s: %d Events repeated, more than the bound %d", what, repeated, bound)
	}
	if len(hos) == 0 {
		t.Errorf("%s: the Lease never changed hands, though every replica was replaced", what)
	}
	return slices.DeleteFunc(recs, func(r otlpsink.Record) bool { return !ids[recordID(r)] })
}

// waitReplaced waits until none of the Pods named before is left (not even
// terminating) and the Deployment has two ready replicas of its current
// template, and returns the new Pods' names.
func waitReplaced(t *testing.T, c kubernetes.Interface, before []string) []string {
	t.Helper()
	var now []string
	poll(t, "every replica replaced", func(ctx context.Context) (bool, error) {
		d, err := c.AppsV1().Deployments(deployNamespace).Get(ctx, deployName, metav1.GetOptions{})
		if err != nil || !deploymentReady(d, 2) {
			return false, err
		}
		pods, err := c.CoreV1().Pods(deployNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + deployName})
		if err != nil {
			return false, err
		}
		now = now[:0]
		for _, p := range pods.Items {
			if slices.Contains(before, p.Name) {
				return false, nil
			}
			now = append(now, p.Name)
		}
		return len(now) == 2, nil
	})
	return now
}

// waitUntil checks cond every 200ms until it holds or d passes.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
	return true
}
