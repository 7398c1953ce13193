package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func rec(name, uid, rv string, at time.Time) seen {
	return seen{name: name, uid: uid, rv: rv, at: at}
}

func TestTallyDelivery(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	want := []created{
		{name: "poll-run-0", uid: "u0", rv: "10", at: t0},
		{name: "poll-run-1", uid: "u1", rv: "11", at: t0},
		{name: "poll-run-2", uid: "u2", rv: "12", at: t0},
	}
	recs := []seen{
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

func TestDeliveryAdd(t *testing.T) {
	a := delivery{want: 300, delivered: 300, repeated: 12, delays: []time.Duration{time.Second}}
	b := delivery{want: 1000, lost: 1000, unexpected: 1}
	assert.Equal(t, delivery{want: 1300, delivered: 300, lost: 1000, repeated: 12, unexpected: 1}, a.add(b))
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

func TestCountEarlier(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	recs := []seen{
		rec("objects-run-1", "a", "", t0.Add(-time.Second)), // before the restart
		rec("objects-run-2", "b", "", t0),
		rec("objects-term-before-0", "c", "", t0.Add(time.Second)),
		rec("objects-kill-before-0", "d", "", t0.Add(time.Second)), // the phase measured
		rec("objects-marker-3-0", "e", "", t0.Add(time.Second)),    // its marker
		rec("objects-marker-2-0", "f", "", t0.Add(time.Second)),
		rec("watch-run-1", "g", "", t0.Add(time.Second)), // another variant's
	}
	assert.Equal(t, 3, countEarlier(recs, "objects", t0, "objects-kill", "objects-marker-3"))
}
