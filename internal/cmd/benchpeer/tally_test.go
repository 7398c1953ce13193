package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

func rec(name, uid, rv string, at time.Time) otlpsink.Record {
	return otlpsink.Record{Received: at, Attrs: map[string]any{attrEventName: name, attrEventUID: uid, attrEventRV: rv}}
}

func TestTallyDelivery(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	want := []created{
		{name: "poll-run-0", uid: "u0", rv: "10", at: t0},
		{name: "poll-run-1", uid: "u1", rv: "11", at: t0},
		{name: "poll-run-2", uid: "u2", rv: "12", at: t0},
	}
	recs := []otlpsink.Record{
		rec("poll-run-0", "u0", "10", t0.Add(300*time.Millisecond)),
		rec("poll-run-0", "u0", "10", t0.Add(100*time.Millisecond)), // a repeat, arrived earlier
		rec("poll-run-1", "u1", "99", t0.Add(time.Second)),          // another change of u1
		rec("poll-marker-a-0", "m0", "5", t0),                       // not of this set
		rec("poll-run-2", "u2", "12", t0.Add(2*time.Second)),
	}
	tests := []struct {
		name string
		id   identity
		want delivery
	}{
		{
			name: "by uid and resourceVersion",
			id:   identity{withRV: true},
			want: delivery{want: 3, delivered: 2, lost: 1, repeated: 1, unexpected: 1,
				delays: []time.Duration{100 * time.Millisecond, 2 * time.Second}},
		},
		{
			name: "by uid",
			id:   identity{},
			want: delivery{want: 3, delivered: 3, lost: 0, repeated: 1,
				delays: []time.Duration{100 * time.Millisecond, time.Second, 2 * time.Second}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tallyDelivery(recs, want, "poll-run", tt.id))
		})
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, 50*time.Millisecond, percentile(d, 0.5))
	assert.Equal(t, 99*time.Millisecond, percentile(d, 0.99))
	assert.Equal(t, 100*time.Millisecond, percentile(d, 1))
	assert.Equal(t, time.Millisecond, percentile(d, 0))
	assert.Equal(t, 7*time.Millisecond, percentile([]time.Duration{7 * time.Millisecond}, 0.99))
	assert.Equal(t, time.Duration(0), percentile(nil, 0.5))
}

func TestCountNamed(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	recs := []otlpsink.Record{
		rec("peer-run-1", "a", "", t0.Add(-time.Second)),
		rec("peer-run-2", "b", "", t0),
		rec("peer-run-3", "c", "", t0.Add(time.Second)),
		rec("peer-runner-1", "d", "", t0.Add(time.Second)),
	}
	assert.Equal(t, 2, countNamed(recs, "peer-run", t0))
}
