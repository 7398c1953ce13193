package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"cmp"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents/internal/metadata"
)

// Attribute names. Where the contrib k8s_events receiver has a name, it is
// used unchanged so queries keep working after a migration; the k8s.* names
// of objects are the stable semantic-convention resource attributes.
const (
	attrClusterName   = "k8s.cluster.name"
	attrNamespaceName = "k8s.namespace.name"
	attrNodeName      = "k8s.node.name"
	attrNodeUID       = "k8s.node.uid"
	attrContainerName = "k8s.container.name"

	attrObjectKind            = "k8s.object.kind"
	attrObjectName            = "k8s.object.name"
	attrObjectUID             = "k8s.object.uid"
	attrObjectAPIVersion      = "k8s.object.api_version"
	attrObjectFieldPath       = "k8s.object.fieldpath"
	attrObjectResourceVersion = "k8s.object.resource_version"

	attrEventName            = "k8s.event.name"
	attrEventUID             = "k8s.event.uid"
	attrEventNamespace       = "k8s.event.namespace"
	attrEventResourceVersion = "k8s.event.resource_version"
	attrEventReason          = "k8s.event.reason"
	attrEventAction          = "k8s.event.action"
	attrEventType            = "k8s.event.type"
	attrEventCount           = "k8s.event.count"
	attrEventStartTime       = "k8s.event.start_time"
	attrSourceComponent      = "k8s.event.source.component"
	attrSourceHost           = "k8s.event.source.host"
	attrReportingController  = "k8s.event.reporting_controller"
	attrReportingInstance    = "k8s.event.reporting_instance"
	attrRelatedKind          = "k8s.event.related.kind"
	attrRelatedName          = "k8s.event.related.name"
	attrRelatedNamespace     = "k8s.event.related.namespace"
	attrRelatedUID           = "k8s.event.related.uid"
	attrRelatedAPIVersion    = "k8s.event.related.api_version"
	attrRelatedFieldPath     = "k8s.event.related.fieldpath"
)

// workloadKinds maps the kinds that semantic conventions name to the prefix of
// their k8s.<kind>.name and k8s.<kind>.uid resource attributes.
var workloadKinds = map[schema.GroupKind]string{
	{Group: "", Kind: "Pod"}:             "k8s.pod",
	{Group: "", Kind: "Node"}:            "k8s.node",
	{Group: "apps", Kind: "Deployment"}:  "k8s.deployment",
	{Group: "apps", Kind: "ReplicaSet"}:  "k8s.replicaset",
	{Group: "apps", Kind: "StatefulSet"}: "k8s.statefulset",
	{Group: "apps", Kind: "DaemonSet"}:   "k8s.daemonset",
	{Group: "batch", Kind: "Job"}:        "k8s.job",
	{Group: "batch", Kind: "CronJob"}:    "k8s.cronjob",
}

// resourceKey is everything that goes into a record's resource, so records
// about the same object share one ResourceLogs. It is comparable, so it keys a
// map without allocating.
type resourceKey struct {
	namespace, kind, name, uid, apiVersion, fieldPath, resourceVersion, node string
}

func resourceKeyOf(ev *corev1.Event) resourceKey {
	obj := &ev.InvolvedObject
	node := ev.Source.Host
	if obj.Kind == "Node" && groupOf(obj.APIVersion) == "" {
		node = obj.Name
	}
	return resourceKey{
		namespace:       obj.Namespace,
		kind:            obj.Kind,
		name:            obj.Name,
		uid:             string(obj.UID),
		apiVersion:      obj.APIVersion,
		fieldPath:       obj.FieldPath,
		resourceVersion: obj.ResourceVersion,
		node:            node,
	}
}

// convertEvents turns Events into OTLP logs: one record per Event, grouped
// under one resource per involved object. It has no state and never fails: a
// field that is missing or malformed is left out of the record. observed is
// the record's ObservedTimestamp, the time of collection.
func convertEvents(events []corev1.Event, clusterName string, observed time.Time) plog.Logs {
	logs, _ := converter{clusterName: clusterName}.convert(events, observed, nil)
	return logs
}

// converter is the conversion with the receiver's settings: cluster_name,
// rules and severity_text.
type converter struct {
	clusterName string
	rules       []rule
	// levelText writes the severity's name (INFO, WARN, ...) as severity
	// text instead of the Event's type.
	levelText bool
}

func newConverter(cfg *Config) (converter, error) {
	rules, err := compileRules(cfg.Rules)
	if err != nil {
		return converter{}, err
	}
	return converter{clusterName: cfg.ClusterName, rules: rules, levelText: cfg.SeverityText == SeverityTextLevel}, nil
}

// keeps reports whether an Event gets a record: no rule drops it.
func (c converter) keeps(ev *corev1.Event) bool {
	if len(c.rules) == 0 {
		return true
	}
	j := firstMatch(c.rules, ev)
	return j < 0 || !c.rules[j].drop
}

// convert is convertEvents with the rules applied: an Event whose first
// matching rule drops it has no record. found holds what the lookups of the
// page (extract) found about each involved object, added to its resource;
// nil when nothing was looked up. matches counts, for each rule (by its
// index in c.rules), the Events it decided; it is nil without rules.
func (c converter) convert(events []corev1.Event, observed time.Time, found map[objectRef][]attr) (logs plog.Logs, matches []int64) {
	logs = plog.NewLogs()
	if len(c.rules) > 0 {
		matches = make([]int64, len(c.rules))
	}
	groups := make(map[resourceKey]plog.LogRecordSlice)
	for i := range events {
		ev := &events[i]
		var matched *rule
		if len(c.rules) > 0 {
			j := firstMatch(c.rules, ev)
			if j >= 0 {
				matches[j]++
				matched = &c.rules[j]
				if matched.drop {
					continue
				}
			}
		}
		key := resourceKeyOf(ev)
		records, ok := groups[key]
		if !ok {
			rl := logs.ResourceLogs().AppendEmpty()
			putResource(rl.Resource().Attributes(), key, c.clusterName)
			if found != nil {
				putFound(rl.Resource().Attributes(), &ev.InvolvedObject, found)
			}
			sl := rl.ScopeLogs().AppendEmpty()
			sl.Scope().SetName(metadata.ScopeName)
			records = sl.LogRecords()
			groups[key] = records
		}
		lr := records.AppendEmpty()
		putRecord(lr, ev, observed)
		if matched != nil {
			matched.apply(lr, ev)
		}
		if c.levelText {
			if text := levelText(lr.SeverityNumber()); text != "" {
				lr.SetSeverityText(text)
			}
		}
	}
	return logs, matches
}

func putResource(attrs pcommon.Map, key resourceKey, clusterName string) {
	putNonEmpty(attrs, attrClusterName, clusterName)
	putNonEmpty(attrs, attrNamespaceName, key.namespace)
	putNonEmpty(attrs, attrNodeName, key.node)
	putNonEmpty(attrs, attrObjectKind, key.kind)
	putNonEmpty(attrs, attrObjectName, key.name)
	putNonEmpty(attrs, attrObjectUID, key.uid)
	putNonEmpty(attrs, attrObjectAPIVersion, key.apiVersion)
	putNonEmpty(attrs, attrObjectFieldPath, key.fieldPath)
	putNonEmpty(attrs, attrObjectResourceVersion, key.resourceVersion)

	gk := schema.GroupKind{Group: groupOf(key.apiVersion), Kind: key.kind}
	if gk == (schema.GroupKind{Kind: "Namespace"}) {
		putNonEmpty(attrs, attrNamespaceName, key.name)
	}
	prefix, ok := workloadKinds[gk]
	if !ok {
		return
	}
	if prefix != "k8s.node" { // k8s.node.name is set above
		putNonEmpty(attrs, prefix+".name", key.name)
	}
	putNonEmpty(attrs, prefix+".uid", key.uid)
	if prefix == "k8s.pod" {
		putNonEmpty(attrs, attrContainerName, containerOf(key.fieldPath))
	}
}

// putFound adds what the lookups found about the involved object. A label
// whose value is empty is still added, empty, as the semantic conventions
// say.
func putFound(attrs pcommon.Map, obj *corev1.ObjectReference, found map[objectRef][]attr) {
	ref, ok := involvedRef(obj)
	if !ok {
		return
	}
	for _, a := range found[ref] {
		attrs.PutStr(a.key, a.value)
	}
}

func putRecord(lr plog.LogRecord, ev *corev1.Event, observed time.Time) {
	msg := ev.Message
	if !utf8.ValidString(msg) {
		msg = strings.ToValidUTF8(msg, "\uFFFD")
	}
	lr.Body().SetStr(msg)
	if ts, ok := lastTime(ev); ok {
		lr.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	}
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(observed))
	lr.SetSeverityText(ev.Type)
	lr.SetSeverityNumber(severityOf(ev.Type))

	attrs := lr.Attributes()
	attrs.EnsureCapacity(16)
	putNonEmpty(attrs, attrEventName, ev.Name)
	putNonEmpty(attrs, attrEventUID, string(ev.UID))
	putNonEmpty(attrs, attrEventNamespace, ev.Namespace)
	putNonEmpty(attrs, attrEventResourceVersion, ev.ResourceVersion)
	putNonEmpty(attrs, attrEventReason, ev.Reason)
	putNonEmpty(attrs, attrEventAction, ev.Action)
	putNonEmpty(attrs, attrEventType, ev.Type)
	attrs.PutInt(attrEventCount, countOf(ev))
	if ts, ok := firstTime(ev); ok {
		attrs.PutStr(attrEventStartTime, ts.UTC().Format(time.RFC3339Nano))
	}
	// Events written through events.k8s.io (the scheduler's) have no source;
	// their reporting controller is the same thing.
	putNonEmpty(attrs, attrSourceComponent, cmp.Or(ev.Source.Component, ev.ReportingController))
	putNonEmpty(attrs, attrSourceHost, ev.Source.Host)
	putNonEmpty(attrs, attrReportingController, ev.ReportingController)
	putNonEmpty(attrs, attrReportingInstance, ev.ReportingInstance)
	if rel := ev.Related; rel != nil {
		putNonEmpty(attrs, attrRelatedKind, rel.Kind)
		putNonEmpty(attrs, attrRelatedName, rel.Name)
		putNonEmpty(attrs, attrRelatedNamespace, rel.Namespace)
		putNonEmpty(attrs, attrRelatedUID, string(rel.UID))
		putNonEmpty(attrs, attrRelatedAPIVersion, rel.APIVersion)
		putNonEmpty(attrs, attrRelatedFieldPath, rel.FieldPath)
	}
}

// severityOf maps the Event type to a severity. Kubernetes defines only Normal
// and Warning; Error and Critical are used by some controllers. Any other type
// keeps its text (set by the caller) and no number.
func severityOf(eventType string) plog.SeverityNumber {
	switch eventType {
	case corev1.EventTypeNormal:
		return plog.SeverityNumberInfo
	case corev1.EventTypeWarning:
		return plog.SeverityNumberWarn
	case "Error":
		return plog.SeverityNumberError
	case "Critical":
		return plog.SeverityNumberFatal
	default:
		return plog.SeverityNumberUnspecified
	}
}

// lastTime is when the event last happened. Events written through
// events.k8s.io (the scheduler's) carry eventTime and series but no
// lastTimestamp, so the order matters.
func lastTime(ev *corev1.Event) (time.Time, bool) {
	if ev.Series != nil {
		if t := ev.Series.LastObservedTime.Time; validTime(t) {
			return t, true
		}
	}
	for _, t := range []time.Time{ev.LastTimestamp.Time, ev.EventTime.Time, ev.FirstTimestamp.Time, ev.CreationTimestamp.Time} {
		if validTime(t) {
			return t, true
		}
	}
	return time.Time{}, false
}

// firstTime is when the event first happened.
func firstTime(ev *corev1.Event) (time.Time, bool) {
	for _, t := range []time.Time{ev.FirstTimestamp.Time, ev.EventTime.Time, ev.CreationTimestamp.Time} {
		if validTime(t) {
			return t, true
		}
	}
	return time.Time{}, false
}

var maxTimestamp = time.Unix(0, 1<<63-1)

// validTime rejects the zero time and times an OTLP timestamp (nanoseconds
// since the Unix epoch, unsigned) cannot hold.
func validTime(t time.Time) bool {
	return !t.IsZero() && t.Unix() >= 0 && !t.After(maxTimestamp)
}

// countOf is how many times the event happened: the series count for events
// written through events.k8s.io, else count, and at least once.
func countOf(ev *corev1.Event) int64 {
	n := int64(ev.Count)
	if ev.Series != nil && int64(ev.Series.Count) > n {
		n = int64(ev.Series.Count)
	}
	return max(n, 1)
}

func groupOf(apiVersion string) string {
	group, _, found := strings.Cut(apiVersion, "/")
	if !found {
		return "" // "v1" is the core group
	}
	return group
}

// containerOf returns the container a field path such as
// "spec.containers{app}" names, or "".
func containerOf(fieldPath string) string {
	for _, prefix := range []string{"spec.containers{", "spec.initContainers{", "spec.ephemeralContainers{"} {
		if rest, ok := strings.CutPrefix(fieldPath, prefix); ok {
			if name, _, ok := strings.Cut(rest, "}"); ok {
				return name
			}
		}
	}
	return ""
}

func putNonEmpty(attrs pcommon.Map, key, value string) {
	if value != "" {
		attrs.PutStr(key, value)
	}
}
