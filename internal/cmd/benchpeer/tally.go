package main

import (
	"slices"
	"time"
)

// delivery is what arrived of a set of created Events.
type delivery struct {
	want       int
	delivered  int // distinct Events that arrived
	lost       int
	repeated   int // extra copies
	unexpected int // records of this set's names that match no created Event
	// delays from Create returned to first arrival, sorted.
	delays []time.Duration
}

// add sums two deliveries (delays are not kept).
func (d delivery) add(o delivery) delivery {
	return delivery{
		want: d.want + o.want, delivered: d.delivered + o.delivered, lost: d.lost + o.lost,
		repeated: d.repeated + o.repeated, unexpected: d.unexpected + o.unexpected,
	}
}

// tallyDelivery matches the records of the Events named prefix-<i> to the
// created Events.
func tallyDelivery(recs []seen, want []created, prefix string, id identity) delivery {
	first := map[string]time.Time{}
	count := map[string]int{}
	d := delivery{want: len(want)}
	wanted := make(map[string]bool, len(want))
	for _, e := range want {
		wanted[id.ofEvent(e)] = true
	}
	for _, r := range recs {
		if !r.named(prefix) {
			continue
		}
		k := id.ofSeen(r)
		if !wanted[k] {
			d.unexpected++
			continue
		}
		count[k]++
		if t, ok := first[k]; !ok || r.at.Before(t) {
			first[k] = r.at
		}
	}
	for _, e := range want {
		k := id.ofEvent(e)
		switch n := count[k]; n {
		case 0:
			d.lost++
		default:
			d.delivered++
			d.repeated += n - 1
			d.delays = append(d.delays, first[k].Sub(e.at))
		}
	}
	slices.Sort(d.delays)
	return d
}

// percentile is the q-quantile (0..1) of sorted delays, nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// countEarlier counts the records that arrived at or after since and carry
// an Event named variantPrefix-... but none of the prefixes in current
// (those of the phase being measured).
func countEarlier(recs []seen, variantPrefix string, since time.Time, current ...string) int {
	n := 0
	for _, r := range recs {
		if !r.named(variantPrefix) || r.at.Before(since) {
			continue
		}
		mine := false
		for _, p := range current {
			mine = mine || r.named(p)
		}
		if !mine {
			n++
		}
	}
	return n
}
