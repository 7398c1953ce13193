package main

import (
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// reading says where a variant's records name the Event they carry.
type reading int

const (
	// readAttributes: k8s.event.name, k8s.event.uid and
	// k8s.event.resource_version (ours).
	readAttributes reading = iota
	// readAttributesNoRV: k8s.event.name and k8s.event.uid (contrib's
	// k8s_events, whose k8s.object.resource_version is the involved
	// object's, not the Event's).
	readAttributesNoRV
	// readBody: the body is the watch notification, {type, object}, and the
	// object is the Event (contrib's k8sobjects in watch mode).
	readBody
)

// Attributes the receivers set on a record.
const (
	attrEventName = "k8s.event.name"
	attrEventUID  = "k8s.event.uid"
	attrEventRV   = "k8s.event.resource_version"
)

// seen is one record as the Event it carries, and when it arrived.
type seen struct {
	name, uid, rv string
	at            time.Time
}

// watchBody is what the bench reads of a k8sobjects record's body.
type watchBody struct {
	Object struct {
		Metadata struct {
			Name            string `json:"name"`
			UID             string `json:"uid"`
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	} `json:"object"`
}

// readRecord returns the Event r carries, false when r names none.
func readRecord(how reading, r otlpsink.Record) (seen, bool) {
	s := seen{at: r.Received}
	switch how {
	case readBody:
		var b watchBody
		if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
			return s, false
		}
		m := b.Object.Metadata
		s.name, s.uid, s.rv = m.Name, m.UID, m.ResourceVersion
	default:
		s.name, s.uid = r.Str(attrEventName), r.Str(attrEventUID)
		if how == readAttributes {
			s.rv = r.Str(attrEventRV)
		}
	}
	return s, s.name != "" && s.uid != ""
}

// arrivals keeps what a sink received as the Events the records carry: its
// keep method reads each record once, as the sink accepts it.
type arrivals struct {
	how reading

	mu         sync.Mutex
	seen       []seen
	unreadable int
}

func newArrivals(how reading) *arrivals { return &arrivals{how: how} }

// keep is the sink's filter: it records r and tells the sink not to keep it.
func (a *arrivals) keep(r otlpsink.Record) bool {
	s, ok := readRecord(a.how, r)
	a.mu.Lock()
	defer a.mu.Unlock()
	if !ok {
		a.unreadable++
		return false
	}
	a.seen = append(a.seen, s)
	return false
}

// all returns what has arrived so far, in order of arrival.
func (a *arrivals) all() []seen {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]seen(nil), a.seen...)
}

// since returns what has arrived since the first n records.
func (a *arrivals) since(n int) []seen {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]seen(nil), a.seen[min(n, len(a.seen)):]...)
}

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.seen)
}

// identity says how records are matched to created Events: by uid and
// resourceVersion (one change of one Event) when the records carry the
// Event's resourceVersion, else by uid alone, which is as good here since
// every benchmark Event is created once and never changed.
type identity struct {
	withRV bool
}

func identityOf(how reading) identity { return identity{withRV: how != readAttributesNoRV} }

func (id identity) String() string {
	if id.withRV {
		return "uid and resourceVersion"
	}
	return "uid"
}

func (id identity) ofSeen(s seen) string {
	if id.withRV {
		return s.uid + "@" + s.rv
	}
	return s.uid
}

func (id identity) ofEvent(e created) string {
	if id.withRV {
		return e.uid + "@" + e.rv
	}
	return e.uid
}

// named reports whether s is one of the Events named prefix-<i>.
func (s seen) named(prefix string) bool { return strings.HasPrefix(s.name, prefix+"-") }
