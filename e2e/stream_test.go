package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// stream creates Events one after another in the background, as a busy
// cluster does. Creations that fail (the API server is away) are not part of
// what the test expects.
type stream struct {
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu      sync.Mutex
	created []string // eventID of each Event created
}

// startStream creates an Event in namespace every pause until stopped or
// until limit Events exist (0: no limit).
func startStream(t *testing.T, c kubernetes.Interface, namespace, prefix string, pause time.Duration, limit int) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &stream{stop: cancel}
	s.wg.Go(func() {
		for i := 0; ctx.Err() == nil && (limit == 0 || s.count() < limit); i++ {
			ev := newEvent(eventSpec{namespace: namespace, name: fmt.Sprintf("%s-%d", prefix, i), reason: "Streamed", message: "streamed event"})
			if got, err := c.CoreV1().Events(namespace).Create(ctx, ev, metav1.CreateOptions{}); err == nil {
				s.mu.Lock()
				s.created = append(s.created, eventID(got))
				s.mu.Unlock()
			}
			if pause > 0 {
				time.Sleep(pause)
			}
		}
	})
	t.Cleanup(s.Stop)
	return s
}

func (s *stream) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.created)
}

// waitCount waits until at least n Events were created, or the stream ends.
func (s *stream) waitCount(n int) {
	for s.count() < n {
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the stream and returns the IDs of every Event it created.
func (s *stream) Stop() {
	s.stop()
	s.wg.Wait()
}

// Created returns the IDs of the Events created so far.
func (s *stream) Created() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.created...)
}
