package e2e

import (
	"context"
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
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	ctx := context.Background()
	createNamespaces(t, c, "team-a", "team-b", "team-c")
	kubeconfig := serviceAccountKubeconfig(t, cp)

	// Rules in team-a and team-b only.
	for _, ns := range []string{"team-a", "team-b"} {
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "otelcol-k8sevents", Namespace: ns},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"list"}}},
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
	startCollector(t, kubeconfig, allowed, "interval: 1s\nstart_at: beginning\nnamespaces: [team-a, team-b]")
	forbidden := newSink(t)
	denied := startCollector(t, kubeconfig, forbidden, "interval: 1s\nstart_at: beginning\nnamespaces: [team-b, team-c]")
	// Not startCollector: this one's first poll is forbidden, so it never
	// marks a start position.
	cluster := collectortest.Start(t, collectorConfig(newSink(t), "interval: 1s"), "KUBECONFIG="+kubeconfig)

	for _, ns := range []string{"team-a", "team-b", "team-c"} {
		createEvents(t, c, ns, "ev", 3)
	}
	allowed.Wait(t, waitLong, "6 records from team-a and team-b", func(r []otlpsink.Record) bool { return len(r) >= 6 })
	// With team-c forbidden, team-b is still collected.
	forbidden.Wait(t, waitLong, "3 records from team-b", func(r []otlpsink.Record) bool { return len(r) >= 3 })

	denied.WaitOutput(`RBAC: grant verb \"list\" on resource \"events\" (apiGroups [\"\"]) in namespace \"team-c\" (Role)`, time.Minute)
	cluster.WaitOutput(`RBAC: grant verb \"list\" on resource \"events\" (apiGroups [\"\"]) cluster-wide (ClusterRole)`, time.Minute)
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
