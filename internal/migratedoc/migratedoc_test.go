package migratedoc

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadTheGuide: the guide parses, and each part has what the tests
// that read it rely on.
func TestReadTheGuide(t *testing.T) {
	d, err := Read()
	require.NoError(t, err)
	assert.NotEmpty(t, d.Keys)
	assert.NotEmpty(t, d.Attributes)
	titles := map[string]bool{}
	for _, q := range d.Queries {
		titles[q.Title] = true
		assert.NotEmpty(t, q.Before, q.Title)
		assert.NotEmpty(t, q.After, q.Title)
	}
	for _, want := range []string{"Warnings in a namespace", "Events of a Pod", "FailedScheduling per namespace", "Events about Nodes"} {
		assert.True(t, titles[want], "no LogQL pair %q", want)
	}
	assert.NotEmpty(t, d.ObjectsKeys)
	assert.NotEmpty(t, d.ObjectsFields)
	require.NotEmpty(t, d.ObjectsQueries)
	for _, q := range d.ObjectsQueries {
		assert.Contains(t, q.Before, "| json", "%s: k8sobjects' fields are in the JSON body", q.Title)
		assert.NotEmpty(t, q.After, q.Title)
	}
}

// objectsPart is a minimal k8sobjects part of a guide.
const objectsPart = "<!-- table: objects-keys -->\n| k8sobjects | ours | why |\n|---|---|---|\n" +
	"| `objects[].mode` | `mode` | same |\n| `error_mode` | — | none |\n\n" +
	"<!-- table: objects-fields -->\n| k | on | o | on | why |\n|---|---|---|---|---|\n" +
	"| `object.reason` | body | `k8s.event.reason` | record | moved |\n" +
	"| `object.note` | body | the body | body | the message |\n" +
	"| `event.domain` | record | — | | dropped |\n\n" +
	"## LogQL before and after, from `k8sobjects`\n\n### Reasons\n\n```logql\n{a=\"b\"} | json\n```\n\n```logql\n{c=\"d\"}\n```\n"

const k8sEventsPart = "# Guide\n\n<!-- table: keys -->\n| contrib | ours | why |\n|---|---|---|\n" +
	"| `auth_type` | `auth_type` | same |\n| — | `storage`, `checkpoint` | new |\n\n" +
	"<!-- table: attributes -->\n| c | on | o | on | why |\n|---|---|---|---|---|\n" +
	"| `k8s.namespace.name` | record | `k8s.namespace.name` | resource | moved |\n" +
	"| — | | `k8s.pod.name`, `k8s.pod.uid` | resource | new |\n\n" +
	"## LogQL before and after\n\n### Nodes\n\n```logql\n{a=\"b\"}\n```\n\ntext\n\n```logql\n{c=\"d\"}\n```\n\n## Next\n\n"

func TestParse(t *testing.T) {
	d, err := Parse(k8sEventsPart + objectsPart)
	require.NoError(t, err)
	assert.Equal(t, []Key{{Contrib: "auth_type", Ours: []string{"auth_type"}}, {Ours: []string{"storage", "checkpoint"}}}, d.Keys)
	assert.Equal(t, []Attribute{
		{Contrib: "k8s.namespace.name", ContribOn: OnRecord, Ours: []string{"k8s.namespace.name"}, OursOn: OnResource},
		{Ours: []string{"k8s.pod.name", "k8s.pod.uid"}, OursOn: OnResource},
	}, d.Attributes)
	assert.Equal(t, []Query{{Title: "Nodes", Before: `{a="b"}`, After: `{c="d"}`}}, d.Queries)
	assert.Equal(t, []Key{{Contrib: "objects[].mode", Ours: []string{"mode"}}, {Contrib: "error_mode"}}, d.ObjectsKeys)
	assert.Equal(t, []Field{
		{Objects: []string{"object.reason"}, ObjectsOn: OnBody, Ours: []string{"k8s.event.reason"}, OursOn: OnRecord},
		{Objects: []string{"object.note"}, ObjectsOn: OnBody, OursOn: OnBody},
		{Objects: []string{"event.domain"}, ObjectsOn: OnRecord},
	}, d.ObjectsFields)
	assert.Equal(t, []Query{{Title: "Reasons", Before: `{a="b"} | json`, After: `{c="d"}`}}, d.ObjectsQueries)

	for name, bad := range map[string]string{
		"no place":       "| `k8s.pod.name` | | `k8s.pod.name` | resource | x |",
		"bad place":      "| `k8s.pod.name` | attrs | `k8s.pod.name` | resource | x |",
		"body place":     "| `k8s.pod.name` | body | `k8s.pod.name` | resource | x |",
		"too few cells":  "| `k8s.pod.name` | record | `k8s.pod.name` |",
		"two in contrib": "| `a`, `b` | record | `a` | record | x |",
	} {
		t.Run(name, func(t *testing.T) {
			_, perr := Parse("<!-- table: keys -->\n|a|b|c|\n|-|-|-|\n| `x` | `x` | y |\n\n<!-- table: attributes -->\n|a|b|c|d|e|\n|-|-|-|-|-|\n" + bad +
				"\n\n## LogQL before and after\n\n### Q\n```logql\na\n```\n```logql\nb\n```\n\n## Next\n\n" + objectsPart)
			assert.Error(t, perr)
		})
	}
	for name, bad := range map[string]string{
		"no k8sobjects field": "| — | body | `k8s.event.reason` | record | x |",
		"ours in a header":    "| `object.reason` | body | `k8s.event.reason` | header | x |",
		"no place":            "| `object.reason` | | `k8s.event.reason` | record | x |",
	} {
		t.Run("objects: "+name, func(t *testing.T) {
			_, perr := Parse(k8sEventsPart + "<!-- table: objects-keys -->\n|a|b|c|\n|-|-|-|\n| `x` | `x` | y |\n\n" +
				"<!-- table: objects-fields -->\n|a|b|c|d|e|\n|-|-|-|-|-|\n" + bad + "\n\n## LogQL before and after, from `k8sobjects`\n\n### Q\n```logql\na\n```\n```logql\nb\n```\n")
			assert.Error(t, perr)
		})
	}
	_, err = Parse(k8sEventsPart)
	assert.ErrorContains(t, err, "objects-keys")
}
