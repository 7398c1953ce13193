package k8seventsaggregate // import "github.com/k8sevents/otelcol-k8sevents/processor/k8seventsaggregate"

import (
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/k8sevents/otelcol-k8sevents/processor/k8seventsaggregate/internal/metadata"
)

// Attributes of a summary record, and those it names in its message.
const (
	attrCount     = "k8s.event.aggregate.count"
	attrFirstTime = "k8s.event.aggregate.first_time"
	attrLastTime  = "k8s.event.aggregate.last_time"

	attrKind        = "k8s.object.kind"
	attrReason      = "k8s.event.reason"
	attrClusterName = "k8s.cluster.name"
)

// window is the state of one key: opened by the record that passed, it
// counts the records dropped after it until it closes at end.
type window struct {
	end time.Time
	// keyOnResource and keyOnRecord are the key's attributes as found on
	// the first record's resource and on the record, for the summary.
	keyOnResource, keyOnRecord pcommon.Map
	cluster                    string
	kind, reason               string
	tally
}

// tally is what the dropped records add up to; a failed delivery restores
// the previous tally.
type tally struct {
	count        int64
	first, last  pcommon.Timestamp
	severity     plog.SeverityNumber
	severityText string
}

func (t *tally) add(lr plog.LogRecord) {
	ts := lr.Timestamp()
	if ts == 0 {
		ts = lr.ObservedTimestamp()
	}
	if t.count == 0 || ts < t.first {
		t.first = ts
	}
	if t.count == 0 || ts > t.last {
		t.last = ts
	}
	if t.count == 0 || lr.SeverityNumber() > t.severity {
		t.severity, t.severityText = lr.SeverityNumber(), lr.SeverityText()
	}
	t.count++
}

// keyOf is the record's key: the values of the key attributes, from the
// record or else its resource, each ended by a zero byte. ok is false when
// the record has none of them.
func keyOf(keys []string, b *strings.Builder, resource, record pcommon.Map) (key string, ok bool) {
	b.Reset()
	for _, k := range keys {
		v, found := record.Get(k)
		if !found {
			v, found = resource.Get(k)
		}
		if found {
			ok = true
			b.WriteString(v.AsString())
		}
		b.WriteByte(0)
	}
	return b.String(), ok
}

// newWindow opens the window of the record that passed.
func newWindow(keys []string, resource, record pcommon.Map, end time.Time) *window {
	w := &window{end: end, keyOnResource: pcommon.NewMap(), keyOnRecord: pcommon.NewMap()}
	for _, k := range keys {
		if v, ok := record.Get(k); ok {
			v.CopyTo(w.keyOnRecord.PutEmpty(k))
		} else if v, ok := resource.Get(k); ok {
			v.CopyTo(w.keyOnResource.PutEmpty(k))
		}
	}
	w.kind = lookup(attrKind, resource, record)
	w.reason = lookup(attrReason, resource, record)
	w.cluster = lookup(attrClusterName, resource, record)
	return w
}

func lookup(key string, resource, record pcommon.Map) string {
	if v, ok := record.Get(key); ok {
		return v.AsString()
	}
	if v, ok := resource.Get(key); ok {
		return v.AsString()
	}
	return ""
}

// appendSummary adds the window's summary record to logs, under a resource
// with the key's resource attributes and the cluster name.
func (w *window) appendSummary(logs plog.Logs, observed time.Time) {
	rl := logs.ResourceLogs().AppendEmpty()
	res := rl.Resource().Attributes()
	if w.cluster != "" {
		res.PutStr(attrClusterName, w.cluster)
	}
	for k, v := range w.keyOnResource.All() {
		v.CopyTo(res.PutEmpty(k))
	}
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName(metadata.ScopeName)
	lr := sl.LogRecords().AppendEmpty()
	lr.SetTimestamp(w.last)
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(observed))
	lr.SetSeverityNumber(w.severity)
	lr.SetSeverityText(w.severityText)
	lr.Body().SetStr("Aggregated " + strconv.FormatInt(w.count, 10) + " similar events for " + w.kind + " with reason " + w.reason)
	attrs := lr.Attributes()
	w.keyOnRecord.CopyTo(attrs)
	attrs.PutInt(attrCount, w.count)
	attrs.PutStr(attrFirstTime, w.first.AsTime().UTC().Format(time.RFC3339Nano))
	attrs.PutStr(attrLastTime, w.last.AsTime().UTC().Format(time.RFC3339Nano))
}
