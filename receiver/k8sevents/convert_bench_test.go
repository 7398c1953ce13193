package k8sevents

import (
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// benchPageSize is the receiver's default list page size.
const benchPageSize = 500

// BenchmarkConvertEvents converts one page of captured Events. The page
// cycles through every captured case and gives each round its own objects,
// so three Events in four open a new resource.
func BenchmarkConvertEvents(b *testing.B) {
	page := benchPage(b)
	b.ReportAllocs()
	for b.Loop() {
		convertEvents(page, goldenClusterName, goldenObserved)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(page)), "ns/event")
}

// benchPage is one page of captured Events, each round with its own objects.
func benchPage(b *testing.B) []corev1.Event {
	var fixtures []corev1.Event
	for _, name := range capturedCases {
		fixtures = append(fixtures, loadCaptured(b, name)...)
	}
	page := make([]corev1.Event, benchPageSize)
	for i := range page {
		ev := fixtures[i%len(fixtures)].DeepCopy()
		round := strconv.Itoa(i / len(fixtures))
		ev.Name += "-" + strconv.Itoa(i)
		ev.UID = types.UID(string(ev.UID) + "-" + strconv.Itoa(i))
		ev.InvolvedObject.Name += "-" + round
		ev.InvolvedObject.UID = types.UID(string(ev.InvolvedObject.UID) + "-" + round)
		page[i] = *ev
	}
	return page
}
