package k8sevents

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/k8sevents/otelcol-k8sevents/internal/migratedoc"
)

// emittedAttributes converts the captured Events, and an Event about each
// kind the conversion names with every optional field set, with an alert
// rule, and returns the attribute names found on the resources and on the
// records.
func emittedAttributes(t *testing.T) map[string]map[string]bool {
	t.Helper()
	var events []corev1.Event
	for _, name := range capturedCases {
		events = append(events, loadCaptured(t, name)...)
	}
	kinds := []struct{ apiVersion, kind string }{{"v1", "Namespace"}}
	for gk := range workloadKinds {
		apiVersion := "v1"
		if gk.Group != "" {
			apiVersion = gk.Group + "/v1"
		}
		kinds = append(kinds, struct{ apiVersion, kind string }{apiVersion, gk.Kind})
	}
	for i, k := range kinds {
		ev := loadCaptured(t, "pod-scheduled")[0]
		ev.Name, ev.UID = fmt.Sprintf("full-%d", i), types.UID(fmt.Sprintf("uid-full-%d", i))
		ev.InvolvedObject = corev1.ObjectReference{Kind: k.kind, APIVersion: k.apiVersion, Namespace: "shop",
			Name: "web", UID: "uid-web", FieldPath: "spec.containers{app}", ResourceVersion: "42"}
		ev.Action, ev.ReportingController, ev.ReportingInstance = "Act", "kubelet", "node-1"
		ev.Source = corev1.EventSource{Component: "kubelet", Host: "node-1"}
		ev.Related = &corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Namespace: "x", Name: "node-1", UID: "uid-node-1", FieldPath: "spec"}
		events = append(events, ev)
	}
	conv, err := newConverter(&Config{Rules: []RuleConfig{{Name: "every", Alert: true}}})
	require.NoError(t, err)
	out := map[string]map[string]bool{migratedoc.OnResource: {}, migratedoc.OnRecord: {}}
	for _, c := range []converter{conv, {clusterName: goldenClusterName}} {
		logs, _ := c.convert(events, goldenObserved, nil)
		require.Equal(t, len(events), logs.LogRecordCount())
		for _, rl := range logs.ResourceLogs().All() {
			for k := range rl.Resource().Attributes().All() {
				out[migratedoc.OnResource][k] = true
			}
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					recordKeys(lr, out[migratedoc.OnRecord])
				}
			}
		}
	}
	return out
}

func recordKeys(lr plog.LogRecord, into map[string]bool) {
	for k := range lr.Attributes().All() {
		into[k] = true
	}
}

// TestMigrationGuideAttributes holds the attribute table of
// docs/migrate-from-contrib.md against the conversion: every attribute
// the guide names for this receiver is on converted records, where the
// guide says (so one that contrib has and the guide keeps is there under
// contrib's name), and every attribute the conversion emits is in the
// guide.
func TestMigrationGuideAttributes(t *testing.T) {
	doc, err := migratedoc.Read()
	require.NoError(t, err)
	emitted := emittedAttributes(t)
	documented := map[string]string{}
	for _, a := range doc.Attributes {
		for _, name := range a.Ours {
			if prev, dup := documented[name]; dup {
				t.Errorf("%s: in two rows (%s and %s)", name, prev, a.OursOn)
			}
			documented[name] = a.OursOn
			assert.True(t, emitted[a.OursOn][name], "the guide has %s on the %s; converted records have it on the resource: %v, on the record: %v",
				name, a.OursOn, emitted[migratedoc.OnResource][name], emitted[migratedoc.OnRecord][name])
		}
		if a.Contrib != "" && slices.Contains(a.Ours, a.Contrib) {
			t.Logf("kept: %s (contrib: %s, ours: %s)", a.Contrib, a.ContribOn, a.OursOn)
		}
	}
	for on, names := range emitted {
		for name := range names {
			assert.Equal(t, on, documented[name], "converted records have %s on the %s; the guide's table says %q", name, on, documented[name])
		}
	}
	t.Logf("%d attributes on resources, %d on records, %d rows in the guide",
		len(emitted[migratedoc.OnResource]), len(emitted[migratedoc.OnRecord]), len(doc.Attributes))
}

// TestMigrationGuideObjectsFields holds the k8sobjects table of the guide
// against the conversion: every attribute the guide names for this receiver
// in place of a k8sobjects field is on converted records, where the guide
// says.
func TestMigrationGuideObjectsFields(t *testing.T) {
	doc, err := migratedoc.Read()
	require.NoError(t, err)
	emitted := emittedAttributes(t)
	n := 0
	for _, f := range doc.ObjectsFields {
		if f.OursOn != migratedoc.OnResource && f.OursOn != migratedoc.OnRecord {
			continue // the body, a field of the record, or nothing
		}
		for _, name := range f.Ours {
			n++
			assert.True(t, emitted[f.OursOn][name], "for k8sobjects' %v the guide has %s on the %s; converted records have it on the resource: %v, on the record: %v",
				f.Objects, name, f.OursOn, emitted[migratedoc.OnResource][name], emitted[migratedoc.OnRecord][name])
		}
	}
	assert.Greater(t, n, 10, "the k8sobjects table names few attributes of ours")
}

// TestMigrationGuideKeys holds the configuration tables of the guide
// against Config: each key they name for this receiver is one, and each of
// Config's keys is in the k8s_events table.
func TestMigrationGuideKeys(t *testing.T) {
	doc, err := migratedoc.Read()
	require.NoError(t, err)
	keys := map[string]bool{}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		if tag := typ.Field(i).Tag.Get("mapstructure"); tag != "" {
			keys[strings.Split(tag, ",")[0]] = true
		}
	}
	documented := map[string]bool{}
	for _, k := range doc.Keys {
		for _, name := range k.Ours {
			documented[name] = true
			assert.True(t, keys[name], "the guide names %q, which is no key of the receiver", name)
		}
	}
	for k := range keys {
		assert.True(t, documented[k], "the receiver's key %q is not in the guide's table", k)
	}
	for _, k := range doc.ObjectsKeys {
		for _, name := range k.Ours {
			assert.True(t, keys[name], "the guide's k8sobjects table names %q, which is no key of the receiver", name)
		}
	}
}
