package e2e

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// TestNamespaces runs three collectors side by side on one control plane:
// one naming two namespaces, one reading all, one excluding a namespace.
func TestNamespaces(t *testing.T) {
	t.Parallel()
	eachMode(t, testNamespaces)
}

func testNamespaces(t *testing.T, mode string) {
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "red", "green", "blue")
	kubeconfig := clusterReaderKubeconfig(t, cp, mode)

	named, all, excluded := newSink(t), newSink(t), newSink(t)
	startCollector(t, kubeconfig, named, mode, "interval: 1s\nnamespaces: [red, green]")
	startCollector(t, kubeconfig, all, mode, "interval: 1s")
	startCollector(t, kubeconfig, excluded, mode, "interval: 1s\nexclude_namespaces: [blue]")

	for _, ns := range []string{"red", "green", "blue"} {
		createEvents(t, c, ns, "ev-"+ns, 5)
	}
	// A cluster-scoped event: the API server stores Events about Nodes in
	// the "default" namespace.
	node := newEvent(eventSpec{namespace: "default", name: "node-event", reason: "NodeTest", message: "about a node", kind: "Node"})
	node.InvolvedObject.Namespace = ""
	if _, err := c.CoreV1().Events("default").Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node event: %v", err)
	}

	byNamespace := func(recs []otlpsink.Record) map[string]int {
		m := map[string]int{}
		for _, r := range recs {
			m[r.Str("k8s.event.namespace")]++
		}
		return m
	}
	all.Wait(t, waitLong, "16 records in all namespaces", func(r []otlpsink.Record) bool { return len(r) >= 16 })
	named.Wait(t, waitLong, "10 records in red and green", func(r []otlpsink.Record) bool { return len(r) >= 10 })
	excluded.Wait(t, waitLong, "11 records outside blue", func(r []otlpsink.Record) bool { return len(r) >= 11 })
	time.Sleep(3 * time.Second) // further polls must add nothing

	for _, tc := range []struct {
		name string
		sink *otlpsink.Sink
		want map[string]int
	}{
		{"namespaces [red, green]", named, map[string]int{"red": 5, "green": 5}},
		{"all namespaces", all, map[string]int{"red": 5, "green": 5, "blue": 5, "default": 1}},
		{"exclude_namespaces [blue]", excluded, map[string]int{"red": 5, "green": 5, "default": 1}},
	} {
		if got := byNamespace(tc.sink.Records()); !maps.Equal(got, tc.want) {
			t.Errorf("%s: records per namespace %v, want %v", tc.name, got, tc.want)
		}
	}
	// The Node's event carries the node, and no object namespace.
	for _, r := range all.Records() {
		if r.Str("k8s.event.reason") != "NodeTest" {
			continue
		}
		if r.Str("k8s.node.name") != "node-event-obj" || r.Str("k8s.object.kind") != "Node" {
			t.Errorf("node event attributes: %v", sortedKeys(r.Attrs))
		}
	}
}

func sortedKeys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}
