package main

import (
	"slices"
	"strings"
	"time"

	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// Attributes both receivers set on a record.
const (
	attrEventName = "k8s.event.name"
	attrEventUID  = "k8s.event.uid"
	// attrEventRV is ours only: the peer puts the involved object's
	// resourceVersion on its records, not the Event's.
	attrEventRV = "k8s.event.resource_version"
)

// identity says how records are matched to created Events: by uid and
// resourceVersion (one change of one Event) when the receiver reports the
// Event's resourceVersion, else by uid alone, which is as good here since
// every benchmark Event is created once and never changed.
type identity struct {
	withRV bool
}

func (id identity) String() string {
	if id.withRV {
		return "uid and resourceVersion"
	}
	return "uid"
}

func (id identity) ofRecord(r otlpsink.Record) string {
	if id.withRV {
		return r.Str(attrEventUID) + "@" + r.Str(attrEventRV)
	}
	return r.Str(attrEventUID)
}

func (id identity) ofEvent(e created) string {
	if id.withRV {
		return e.uid + "@" + e.rv
	}
	return e.uid
}

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

// tallyDelivery matches the records (those whose Event name starts with
// prefix+"-") to the created Events.
func tallyDelivery(recs []otlpsink.Record, want []created, prefix string, id identity) delivery {
	first := map[string]time.Time{}
	count := map[string]int{}
	d := delivery{want: len(want)}
	wanted := make(map[string]bool, len(want))
	for _, e := range want {
		wanted[id.ofEvent(e)] = true
	}
	for _, r := range recs {
		if !strings.HasPrefix(r.Str(attrEventName), prefix+"-") {
			continue
		}
		k := id.ofRecord(r)
		if !wanted[k] {
			d.unexpected++
			continue
		}
		count[k]++
		if t, ok := first[k]; !ok || r.Received.Before(t) {
			first[k] = r.Received
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

// countNamed counts the records whose Event name starts with prefix+"-" and
// that arrived at or after since.
func countNamed(recs []otlpsink.Record, prefix string, since time.Time) int {
	n := 0
	for _, r := range recs {
		if strings.HasPrefix(r.Str(attrEventName), prefix+"-") && !r.Received.Before(since) {
			n++
		}
	}
	return n
}
