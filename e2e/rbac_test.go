package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// TestRBAC runs the collector as a ServiceAccount with exactly the rules the
// receiver's README documents for a namespaced setup (a Role with list on
// events in each configured namespace), and checks the hint it logs when a
// rule is missing.
func TestRBAC(t *testing.T) {
	t.Parallel()
	eachMode(t, testRBAC)
}

func testRBAC(t *testing.T, mode string) {
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	ctx := context.Background()
	createNamespaces(t, c, "team-a", "team-b", "team-c", "team-d")
	kubeconfig := serviceAccountKubeconfig(t, cp)

	// The documented rules in team-a and team-b; in team-d, list without
	// watch (enough for poll mode, not for watch mode).
	verbs := map[string][]string{"team-a": eventVerbs(mode), "team-b": eventVerbs(mode), "team-d": {"list"}}
	for _, ns := range []string{"team-a", "team-b", "team-d"} {
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "otelcol-k8sevents", Namespace: ns},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: verbs[ns]}},
		}
		if _, err := c.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create role in %s: %v", ns, err)
		}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "otelcol-k8sevents", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: collectorNamespace, Name: collectorSA}},
		}
		if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create rolebinding in %s: %v", ns, err)
		}
	}

	allowed := newSink(t)
	startCollector(t, kubeconfig, allowed, mode, "interval: 1s\nstart_at: beginning\nnamespaces: [team-a, team-b]")
	forbidden := newSink(t)
	denied := startCollector(t, kubeconfig, forbidden, mode, "interval: 1s\nstart_at: beginning\nnamespaces: [team-b, team-c]")
	// Not startCollector: this one's first list is forbidden, so it never
	// marks a start position.
	cluster := collectortest.Start(t, pipeline{mode: mode, receiver: "interval: 1s"}.config(newSink(t)), "KUBECONFIG="+kubeconfig)
	listOnlySink := newSink(t)
	listOnly := collectortest.Start(t, pipeline{mode: mode, receiver: "interval: 1s\nstart_at: beginning\nnamespaces: [team-d]"}.config(listOnlySink), "KUBECONFIG="+kubeconfig)

	for _, ns := range []string{"team-a", "team-b", "team-c", "team-d"} {
		createEvents(t, c, ns, "ev", 3)
	}
	allowed.Wait(t, waitLong, "6 records from team-a and team-b", func(r []otlpsink.Record) bool { return len(r) >= 6 })
	// With team-c forbidden, team-b is still collected.
	forbidden.Wait(t, waitLong, "3 records from team-b", func(r []otlpsink.Record) bool { return len(r) >= 3 })

	denied.WaitOutput(`RBAC: grant verb \"list\" on resource \"events\" (apiGroups [\"\"]) in namespace \"team-c\" (Role)`, time.Minute)
	cluster.WaitOutput(`RBAC: grant verb \"list\" on resource \"events\" (apiGroups [\"\"]) cluster-wide (ClusterRole)`, time.Minute)
	if mode == modeWatch {
		// It lists team-d, then cannot watch it: the hint names watch.
		listOnly.WaitOutput(`RBAC: grant verb \"watch\" on resource \"events\" (apiGroups [\"\"]) in namespace \"team-d\" (Role)`, time.Minute)
	} else {
		listOnlySink.Wait(t, waitLong, "3 records from team-d", func(r []otlpsink.Record) bool { return len(r) >= 3 })
		if strings.Contains(listOnly.Output(), "RBAC: grant") {
			t.Errorf("poll mode needs only list, yet:\n%s", listOnly.Output())
		}
	}
	time.Sleep(2 * time.Second)
	for _, r := range forbidden.Records() {
		if ns := r.Str("k8s.event.namespace"); ns != "team-b" {
			t.Errorf("record from namespace %q, want only team-b", ns)
		}
	}
	if n := len(allowed.Records()); n != 6 {
		t.Errorf("allowed collector: %d records, want 6", n)
	}
}
