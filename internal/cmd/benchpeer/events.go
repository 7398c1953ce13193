package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// phaseLabel marks each Event with the phase that created it, so that what a
// variant created can be deleted before the next one starts.
const phaseLabel = "benchpeer/phase"

// Phases, the values of phaseLabel.
const (
	phaseStored   = "stored"   // there before every collector starts; never deleted
	phaseBaseline = "baseline" // created with no collector running
	phaseRun      = "run"      // created, paced, while the collector runs
	phaseRestart  = "restart"  // created around and while the collector is stopped
	phaseMarker   = "marker"   // created until the collector delivers one
)

// sourceComponent is the source of every Event the benchmark creates.
const sourceComponent = "benchpeer"

// created is an Event as the API server stored it, and when its Create call
// returned.
type created struct {
	name string
	uid  string
	rv   string
	at   time.Time
}

// newEvent is an Event about a Pod, happening now: the Pod pod, or, when
// it is nil, a Pod of its own that does not exist. Its times go out in
// seconds (RFC 3339), which matters to the peer: it drops Events whose time
// is before its own start.
func newEvent(name, phase string, pod *corev1.ObjectReference) *corev1.Event {
	now := metav1.NewTime(time.Now())
	involved := corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: benchNamespace, Name: name + "-pod", UID: types.UID("pod-" + name)}
	if pod != nil {
		involved = *pod
	}
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: benchNamespace, Labels: map[string]string{phaseLabel: phase}},
		InvolvedObject: involved,
		Reason:         "BenchCreated",
		Message:        "benchpeer " + phase + " event " + name,
		Type:           corev1.EventTypeNormal,
		Count:          1,
		FirstTimestamp: now,
		LastTimestamp:  now,
		Source:         corev1.EventSource{Component: sourceComponent},
	}
}

// creation says which Events to create and how fast.
type creation struct {
	prefix  string // Events are named prefix-0 .. prefix-(n-1)
	phase   string
	n       int
	workers int
	// rate is the Events started per second; 0 creates as fast as the
	// workers go.
	rate float64
	// pods are the Pods the Events are about, in turn; none: each Event is
	// about a Pod of its own.
	pods []corev1.ObjectReference
}

// podOf is the Pod the i-th Event is about; nil when there are none.
func podOf(pods []corev1.ObjectReference, i int) *corev1.ObjectReference {
	if len(pods) == 0 {
		return nil
	}
	return &pods[i%len(pods)]
}

// createEvents creates the Events of cr with cr.workers parallel calls and
// returns them in name order, and the time from the first call to the last
// return.
func createEvents(ctx context.Context, c kubernetes.Interface, cr creation) ([]created, time.Duration, error) {
	out := make([]created, cr.n)
	jobs := make(chan int)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	start := time.Now()
	go func() {
		defer close(jobs)
		for i := range cr.n {
			if cr.rate > 0 {
				due := start.Add(time.Duration(float64(i) * float64(time.Second) / cr.rate))
				if d := time.Until(due); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				}
			}
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range cr.workers {
		wg.Go(func() {
			for i := range jobs {
				name := fmt.Sprintf("%s-%d", cr.prefix, i)
				got, err := c.CoreV1().Events(benchNamespace).Create(ctx, newEvent(name, cr.phase, podOf(cr.pods, i)), metav1.CreateOptions{})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("create event %s: %w", name, err)
					}
					mu.Unlock()
					cancel()
					continue
				}
				out[i] = created{name: name, uid: string(got.UID), rv: got.ResourceVersion, at: time.Now()}
			}
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	var last time.Time
	for _, e := range out {
		if e.at.After(last) {
			last = e.at
		}
	}
	return out, last.Sub(start), firstErr
}

// deleteCreated deletes every Event the benchmark created except the stored
// ones, so that each variant starts with the same Events stored.
func deleteCreated(ctx context.Context, c kubernetes.Interface) error {
	sel := fmt.Sprintf("%s in (%s,%s,%s,%s)", phaseLabel, phaseBaseline, phaseRun, phaseRestart, phaseMarker)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := c.CoreV1().Events(benchNamespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel}); err != nil {
		return fmt.Errorf("delete the created events: %w", err)
	}
	left, err := c.CoreV1().Events(benchNamespace).List(ctx, metav1.ListOptions{LabelSelector: sel, Limit: 1})
	if err != nil {
		return fmt.Errorf("count the created events left: %w", err)
	}
	if len(left.Items) > 0 {
		return errors.New("delete the created events: some are left")
	}
	return nil
}

// marker creates one Event named prefix-i, about one of pods, every period
// until ctx ends; the first of them that a collector delivers shows it has
// done its initial sync and delivers new Events.
func marker(ctx context.Context, c kubernetes.Interface, prefix string, pods []corev1.ObjectReference, period time.Duration) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for i := 0; ; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		if _, err := c.CoreV1().Events(benchNamespace).Create(ctx, newEvent(name, phaseMarker, podOf(pods, i)), metav1.CreateOptions{}); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("create marker event %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
