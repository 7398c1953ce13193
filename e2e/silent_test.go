package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
	"github.com/k8sevents/otelcol-k8sevents/internal/tcpproxy"
	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// A collector reads the API server through a TCP proxy (internal/tcpproxy)
// that, at the test's moment, goes silent as a NAT or load balancer does
// when it loses its flow table: the connections open then stay open and
// carry nothing more, with no FIN and no RST, while new connections work.
// Each mode runs over HTTP/2 (client-go's default) and over HTTP/1.1
// (DISABLE_HTTP2=1 in the collector's environment, which users set behind
// proxies that mishandle HTTP/2), with the default request_timeout (30s)
// and the default stall timer of watch mode. Then the proxy is frozen for
// old and new connections alike for 60 s, and thawed. The subtests share
// one control plane and run in parallel, each with its own proxy,
// collector and namespace.
func TestSilentConnection(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	for _, v := range []silentVariant{
		{mode: modePoll, http2: true},
		{mode: modePoll},
		{mode: modeWatch, http2: true},
		{mode: modeWatch},
	} {
		t.Run("drop/"+v.String(), func(t *testing.T) {
			t.Parallel()
			testDrop(t, cp, c, v)
		})
	}
	for _, v := range []silentVariant{{mode: modePoll}, {mode: modeWatch, http2: true}} {
		t.Run("freeze/"+v.String(), func(t *testing.T) {
			t.Parallel()
			testFreeze(t, cp, c, v)
		})
	}
	t.Run("largest page", func(t *testing.T) {
		t.Parallel()
		logLargestPage(t, cp, c)
	})
}

type silentVariant struct {
	mode  string
	http2 bool
}

func (v silentVariant) String() string {
	if v.http2 {
		return v.mode + "-http2"
	}
	return v.mode + "-http1"
}

// silentSetup is one subtest's namespace, proxy, sink and collector.
type silentSetup struct {
	ns    string
	proxy *tcpproxy.Proxy
	sink  *otlpsink.Sink
	col   *collectortest.Collector
	// metrics is the collector's Prometheus endpoint.
	metrics string
	// before are the Events created and delivered before the fault.
	before []string
}

// startSilentSetup starts a proxy to the API server and a collector that
// reads namespace ns through it, as a ServiceAccount with only the rules
// the README documents for the mode, and waits for its first poll or list.
func startSilentSetup(t *testing.T, cp *kubetest.ControlPlane, c kubernetes.Interface, name string, v silentVariant) *silentSetup {
	t.Helper()
	s := &silentSetup{ns: "silent-" + name, sink: newSink(t)}
	s.proxy = tcpproxy.Start(t, strings.TrimPrefix(cp.APIServerURL(), "https://"))
	kubeconfig := proxiedKubeconfig(t, cp, s.ns, v.mode, s.proxy.Addr())

	port := collectortest.FreePort(t)
	s.metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	p := pipeline{mode: v.mode, receiver: "namespaces: [" + s.ns + "]\ninterval: 1s"}
	env := []string{"KUBECONFIG=" + kubeconfig}
	if !v.http2 {
		env = append(env, "DISABLE_HTTP2=1")
	}
	s.col = collectortest.Start(t, withMetrics(p.config(s.sink), port), env...)
	s.col.WaitOutput("Everything is ready", time.Minute)
	s.col.WaitOutput("start_at end: skipped the Events already stored", waitLong)

	s.before = ids(createEvents(t, c, s.ns, "before", 3))
	expectExactlyOnce(t, s.sink, s.before)
	checkHTTPVersion(t, s.proxy, v)
	return s
}

// proxiedKubeconfig is a kubeconfig whose server is the proxy, for a
// ServiceAccount of namespace ns that may read its Events as mode needs.
// The API server's certificate names 127.0.0.1, the proxy's address.
func proxiedKubeconfig(t *testing.T, cp *kubetest.ControlPlane, ns, mode, proxyAddr string) string {
	t.Helper()
	ctx := context.Background()
	path, err := cp.ServiceAccountKubeconfig(ctx, ns, collectorSA)
	if err != nil {
		t.Fatal(err)
	}
	admin := cp.Client()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "events-reader", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: eventVerbs(mode)}},
	}
	if _, err = admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role: %v", err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "events-reader", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: collectorSA}},
	}
	if _, err = admin.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create rolebinding: %v", err)
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatalf("read kubeconfig: %v", err)
	}
	for _, cluster := range cfg.Clusters {
		cluster.Server = "https://" + proxyAddr
	}
	proxied := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, proxied); err != nil {
		t.Fatalf("write kubeconfig: %v", err)
	}
	return proxied
}

// checkHTTPVersion checks, by the protocols the collector offered in its
// TLS handshakes, that it speaks the HTTP version of the variant.
func checkHTTPVersion(t *testing.T, p *tcpproxy.Proxy, v silentVariant) {
	t.Helper()
	conns := p.Conns()
	if len(conns) == 0 {
		t.Fatal("the collector opened no connection through the proxy")
	}
	for i, conn := range conns {
		if offered := slices.Contains(conn.ALPN, "h2"); offered != v.http2 {
			t.Errorf("connection %d offered ALPN %q; want h2 offered: %v", i, conn.ALPN, v.http2)
		}
	}
}

func ids(events []*corev1.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = eventID(ev)
	}
	return out
}

// firstRecord is when the first of recs about an Event named prefix-*
// arrived; zero when none did.
func firstRecord(recs []otlpsink.Record, prefix string) time.Time {
	var first time.Time
	for _, r := range recs {
		if strings.HasPrefix(r.Str("k8s.event.name"), prefix+"-") && (first.IsZero() || r.Received.Before(first)) {
			first = r.Received
		}
	}
	return first
}

// testDrop drops the connections open at a moment and creates Events:
// they all arrive, once, through connections opened after the drop, and
// the collector closed the dropped connections rather than wait on them.
func testDrop(t *testing.T, cp *kubetest.ControlPlane, c kubernetes.Interface, v silentVariant) {
	s := startSilentSetup(t, cp, c, "drop-"+v.String(), v)
	dropped := s.proxy.Drop()
	dropAt := time.Now()
	accepted := len(s.proxy.Conns())
	if dropped == 0 {
		t.Fatal("no connection was open to drop")
	}
	after := createEvents(t, c, s.ns, "after", 5)
	s.sink.Wait(t, waitLong, "the first Event created after the drop", func(r []otlpsink.Record) bool {
		return !firstRecord(r, "after").IsZero()
	})
	t.Logf("%s: drop to first record %.1f s (%d connections dropped)", v, firstRecord(s.sink.Records(), "after").Sub(dropAt).Seconds(), dropped)
	checkExactlyOnce(t, settle(t, s.sink, 3+5), slices.Concat(s.before, ids(after)))

	conns := s.proxy.Conns()
	if len(conns) <= accepted {
		t.Errorf("no connection was opened after the drop; the Events cannot have come through a dropped one")
	}
	closed := 0
	for _, conn := range conns[:accepted] {
		if conn.Dropped && !conn.ClientClosed.IsZero() {
			closed++
			t.Logf("%s: a dropped connection closed by the collector %.1f s after the drop", v, conn.ClientClosed.Sub(dropAt).Seconds())
		}
	}
	if closed == 0 {
		t.Errorf("the collector closed none of the %d dropped connections; it would reuse a dead one", dropped)
	}
	checkHTTPVersion(t, s.proxy, v)

	out := s.col.Output()
	switch {
	case v.mode == modePoll:
		if !strings.Contains(out, "Polling Kubernetes events: no answer from the API server in 30s; keeping the position and retrying") {
			t.Errorf("the collector did not log the unanswered list:\n%s", testbin.LastLines(out, 20))
		}
		if n := sumPrefix(scrape(t, s.metrics), `otelcol_receiver_k8sevents_errors{kind="timeout"`); n < 1 {
			t.Errorf("otelcol_receiver_k8sevents_errors{kind=\"timeout\"} = %v, want at least 1", n)
		}
	case !v.http2:
		// HTTP/1.1 has no health check: the stall timer replaces the watch.
		if !strings.Contains(out, "it is stalled, watching again from the cursor") {
			t.Errorf("the collector did not log the stalled watch:\n%s", testbin.LastLines(out, 20))
		}
	default:
		// client-go's HTTP/2 health check closes the dead connection,
		// which ends the watch before the stall timer fires.
		if !strings.Contains(out, "Watching Kubernetes events failed") && !strings.Contains(out, "it is stalled") {
			t.Errorf("the collector did not log the watch's end:\n%s", testbin.LastLines(out, 20))
		}
	}
}

// frozenFor is how long testFreeze keeps every connection silent.
const frozenFor = 60 * time.Second

// testFreeze freezes every connection, old and new, for frozenFor while
// Events are created, then thaws: every Event arrives once.
func testFreeze(t *testing.T, cp *kubetest.ControlPlane, c kubernetes.Interface, v silentVariant) {
	s := startSilentSetup(t, cp, c, "freeze-"+v.String(), v)
	s.proxy.Freeze()
	frozenAt := time.Now()
	during := createEvents(t, c, s.ns, "during", 5)
	time.Sleep(frozenFor)
	if exited, err := s.col.Exited(); exited {
		t.Fatalf("the collector exited while the proxy was frozen: %v", err)
	}
	s.proxy.Thaw()
	thawAt := time.Now()
	after := createEvents(t, c, s.ns, "after", 5)
	s.sink.Wait(t, waitLong, "the first Event created during the freeze", func(r []otlpsink.Record) bool {
		return !firstRecord(r, "during").IsZero()
	})
	t.Logf("%s: frozen %.0f s; thaw to first record %.1f s; %d connections accepted in all", v,
		thawAt.Sub(frozenAt).Seconds(), firstRecord(s.sink.Records(), "during").Sub(thawAt).Seconds(), len(s.proxy.Conns()))
	checkExactlyOnce(t, settle(t, s.sink, 3+5+5), slices.Concat(s.before, ids(during), ids(after)))
	what := map[string]string{modePoll: "Polling", modeWatch: "Watching"}[v.mode]
	if out := s.col.Output(); !strings.Contains(out, what+" Kubernetes events works again") {
		t.Errorf("the collector did not log its recovery:\n%s", testbin.LastLines(out, 20))
	}
}

// logLargestPage times lists of one page of 10,000 Events (page_size's
// largest) in the receiver's encoding, protobuf: the figure request_timeout's
// default is set against.
func logLargestPage(t *testing.T, cp *kubetest.ControlPlane, c kubernetes.Interface) {
	const ns, n = "silent-page", 10000
	createNamespaces(t, c, ns)
	createEvents(t, c, ns, "page", n)
	cfg := cp.RESTConfig()
	cfg.QPS, cfg.Burst = -1, 0
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	pb, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var took []string
	for range 3 {
		start := time.Now()
		list, err := pb.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{Limit: n})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if len(list.Items) != n {
			t.Fatalf("listed %d Events, want %d", len(list.Items), n)
		}
		took = append(took, time.Since(start).Round(time.Millisecond).String())
	}
	t.Logf("a page of %d Events (protobuf, from the watch cache): %s", n, strings.Join(took, ", "))
}
