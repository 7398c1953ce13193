package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

const checkpointInterval = time.Second

// synchronous is the exporter of the resume tests: no batch processor and
// no sending queue, so ConsumeLogs returns only once the sink has the data
// and the resume point covers nothing the sink lacks. (The batch processor
// and an in-memory queue answer before they export; the README says what a
// crash loses there.)
const synchronous = "sending_queue:\n  enabled: false"

// fileStoragePipeline keeps the resume point with the file_storage
// extension in dir.
func fileStoragePipeline(mode, dir string) pipeline {
	return pipeline{
		mode:     mode,
		receiver: fmt.Sprintf("interval: 1s\nstart_at: beginning\nstorage: file_storage\ncheckpoint_interval: %v", checkpointInterval),
		extensions: map[string]string{
			"file_storage": fmt.Sprintf("directory: %s\ncreate_directory: true", dir),
		},
		exporter: synchronous,
		noBatch:  true,
	}
}

// configMapPipeline keeps the resume point in a ConfigMap.
func configMapPipeline(mode, extra string) pipeline {
	return pipeline{mode: mode, receiver: fmt.Sprintf(`interval: 1s
start_at: beginning
checkpoint_interval: %v
checkpoint:
  namespace: %s
  name: k8sevents-checkpoint
%s`, checkpointInterval, collectorNamespace, extra), exporter: synchronous, noBatch: true}
}

// lastModified is the latest modification time of the files in dir: for
// file_storage, the last write of the resume point.
func lastModified(t *testing.T, dir string) time.Time {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read the storage directory: %v", err)
	}
	var last time.Time
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatalf("stat %s: %v", e.Name(), err)
		}
		if info.ModTime().After(last) {
			last = info.ModTime()
		}
	}
	return last
}

// grantRole gives the collector's ServiceAccount a Role in namespace.
func grantRole(t *testing.T, cp *kubetest.ControlPlane, namespace, name string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	ctx := context.Background()
	c := cp.Client()
	createNamespaces(t, c, namespace)
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Rules: rules}
	if _, err := c.RbacV1().Roles(namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create role %s/%s: %v", namespace, name, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: collectorNamespace, Name: collectorSA}},
	}
	if _, err := c.RbacV1().RoleBindings(namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create rolebinding %s/%s: %v", namespace, name, err)
	}
}

// grantCheckpoint gives the rules the receiver's README documents for a
// checkpoint ConfigMap.
func grantCheckpoint(t *testing.T, cp *kubetest.ControlPlane) {
	grantRole(t, cp, collectorNamespace, "otelcol-k8sevents-checkpoint",
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"k8sevents-checkpoint"}, Verbs: []string{"get", "update"}},
	)
}

// grantLease gives the rules the receiver's README documents for leader
// election.
func grantLease(t *testing.T, cp *kubetest.ControlPlane) {
	grantRole(t, cp, collectorNamespace, "otelcol-k8sevents-lease",
		rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{"k8sevents"}, Verbs: []string{"get", "update"}},
	)
}

// TestGracefulRestart stops the collector with SIGTERM while Events are
// being created and starts it again on the same file_storage directory:
// nothing is lost and nothing repeated. In watch mode the restart, within
// the API server's watch window, reads no list page.
func TestGracefulRestart(t *testing.T) {
	t.Parallel()
	eachMode(t, testGracefulRestart)
}

func testGracefulRestart(t *testing.T, mode string) {
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "busy")
	kubeconfig := clusterReaderKubeconfig(t, cp, mode)
	sink := newSink(t)
	p := fileStoragePipeline(mode, filepath.Join(t.TempDir(), "storage"))

	s := startStream(t, c, "busy", "ev", 20*time.Millisecond, 0)
	first := collectortest.Start(t, p.config(sink), "KUBECONFIG="+kubeconfig)
	sink.Wait(t, waitLong, "200 records", func(r []otlpsink.Record) bool { return len(r) >= 200 })
	if err := first.Stop(time.Minute); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	down := s.count()
	time.Sleep(5 * time.Second) // Events keep coming while it is down
	t.Logf("%d Events created while the collector was down", s.count()-down)

	port := collectortest.FreePort(t)
	second := collectortest.Start(t, withMetrics(p.config(sink), port), "KUBECONFIG="+kubeconfig)
	s.waitCount(s.count() + 200)
	s.Stop()
	want := s.Created()
	expectExactlyOnce(t, sink, want)
	if !strings.Contains(second.Output(), `"resumed_scopes": ["*"]`) {
		t.Errorf("the restarted collector did not resume from its checkpoint")
	}
	if mode == modeWatch {
		// A restart within the watch window resumes by watching: no list.
		m := scrape(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if pages := sumPrefix(m, `otelcol_receiver_k8sevents_list_pages{`); pages != 0 {
			t.Errorf("the restarted collector read %v list pages; want 0: it resumes by watching", pages)
		}
	}
	if err := second.Stop(time.Minute); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
}

// TestResumeFromConfigMap restarts the collector on a fresh working
// directory, as when a pod is replaced: the resume point in the ConfigMap
// carries over, with exactly the rules the README documents.
func TestResumeFromConfigMap(t *testing.T) {
	t.Parallel()
	eachMode(t, testResumeFromConfigMap)
}

func testResumeFromConfigMap(t *testing.T, mode string) {
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "app")
	kubeconfig := clusterReaderKubeconfig(t, cp, mode)
	grantCheckpoint(t, cp)
	sink := newSink(t)
	p := configMapPipeline(mode, "")

	var want []string
	for _, ev := range createEvents(t, c, "app", "before", 100) {
		want = append(want, eventID(ev))
	}
	first := collectortest.Start(t, p.config(sink), "KUBECONFIG="+kubeconfig)
	sink.Wait(t, waitLong, "100 records", func(r []otlpsink.Record) bool { return len(r) >= 100 })
	if err := first.Stop(time.Minute); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	cm, err := c.CoreV1().ConfigMaps(collectorNamespace).Get(context.Background(), "k8sevents-checkpoint", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the checkpoint ConfigMap: %v", err)
	}
	t.Logf("checkpoint: %v", cm.Data)
	// The API server names the writer of an object after the first product
	// token of its user agent: the receiver's, not the distribution's.
	var managers []string
	for _, mf := range cm.ManagedFields {
		managers = append(managers, mf.Manager)
	}
	if !slices.Contains(managers, "k8seventsreceiver") {
		t.Errorf("the checkpoint ConfigMap's field managers are %q, want k8seventsreceiver (the receiver's user agent)", managers)
	}

	for _, ev := range createEvents(t, c, "app", "between", 100) {
		want = append(want, eventID(ev))
	}
	// collectortest.Start runs each collector in a new temporary directory.
	collectortest.Start(t, p.config(sink), "KUBECONFIG="+kubeconfig)
	expectExactlyOnce(t, sink, want)
}

// TestKillNine kills the collector with SIGKILL at five random moments while
// 5,000 Events are created. Nothing may be lost; what repeats is bounded by
// what each killed process delivered that the resume point it left does not
// cover (the README: the changes delivered after the last write, about a
// checkpoint_interval's worth). The positions are read from the storage
// file after each kill, as the next process reads them.
func TestKillNine(t *testing.T) {
	t.Parallel()
	eachMode(t, testKillNine)
}

func testKillNine(t *testing.T, mode string) {
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "busy")
	kubeconfig := clusterReaderKubeconfig(t, cp, mode)
	sink := newSink(t)
	storage := filepath.Join(t.TempDir(), "storage")
	p := fileStoragePipeline(mode, storage)

	const total = 5000
	s := startStream(t, c, "busy", "ev", 2*time.Millisecond, total)
	type kill struct {
		started, at, lastWrite time.Time
		left                   checkpoint // the resume point the killed process left
	}
	var kills []kill
	started := time.Now()
	col := collectortest.Start(t, p.config(sink), "KUBECONFIG="+kubeconfig)
	for k := range 5 {
		s.waitCount((k + 1) * total / 6)
		time.Sleep(time.Duration(rand.Int64N(int64(2 * time.Second))))
		col.Kill()
		kills = append(kills, kill{started: started, at: time.Now(), lastWrite: lastModified(t, storage), left: storedCheckpoint(t, storage)})
		started = time.Now()
		col = collectortest.Start(t, p.config(sink), "KUBECONFIG="+kubeconfig)
	}
	s.waitCount(total)
	s.Stop()
	want := s.Created()
	if len(want) != total {
		t.Fatalf("created %d Events, want %d", len(want), total)
	}
	recs := settle(t, sink, total)
	lost, repeated := lostAndRepeated(recs, want)
	bound := 0
	var sinceWrite []string
	for _, k := range kills {
		bound += countWhere(recs, func(r otlpsink.Record) bool {
			return r.Received.After(k.started) && !r.Received.After(k.at) && !k.left.covers(r)
		})
		sinceWrite = append(sinceWrite, k.at.Sub(k.lastWrite).Round(time.Millisecond).String())
	}
	t.Logf("%s: kill -9 five times during %d Events: %d lost, %d repeated (bound: %d delivered by the killed processes and not covered by the resume point each left; its last writes were %v before the kills, checkpoint_interval %v)",
		mode, total, lost, repeated, bound, sinceWrite, checkpointInterval)
	if lost != 0 {
		t.Errorf("%d Events lost", lost)
	}
	if repeated > bound {
		t.Errorf("%d repeated, more than the bound %d", repeated, bound)
	}
}

// storedCheckpoint reads the resume point that file_storage keeps in dir:
// the receiver's file (receiver_k8sevents_), bucket "default", key
// "positions", as the filestorage extension lays it out.
func storedCheckpoint(t *testing.T, dir string) checkpoint {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, "receiver_k8sevents_"), 0o600, &bbolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("open the storage file: %v", err)
	}
	var data []byte
	err = db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket([]byte("default")); b != nil {
			data = bytes.Clone(b.Get([]byte("positions")))
		}
		return nil
	})
	// Read-only: closing releases the file lock before the next process
	// opens it.
	if err = errors.Join(err, db.Close()); err != nil {
		t.Fatalf("read the storage file: %v", err)
	}
	var cp checkpoint
	if data != nil {
		if err := json.Unmarshal(data, &cp); err != nil {
			t.Fatalf("decode the stored positions %q: %v", data, err)
		}
	}
	return cp
}

// TestDownAcrossCompaction stops the collector long enough for the API
// server to compact etcd past its resume point: nothing is lost or repeated.
func TestDownAcrossCompaction(t *testing.T) {
	t.Parallel()
	eachMode(t, testDownAcrossCompaction)
}

func testDownAcrossCompaction(t *testing.T, mode string) {
	opts := kubeOptions()
	opts.EtcdCompactionInterval = 5 * time.Second
	cp := startControlPlane(t, opts)
	c := fastClient(t, cp)
	createNamespaces(t, c, "app")
	kubeconfig := clusterReaderKubeconfig(t, cp, mode)
	sink := newSink(t)
	p := fileStoragePipeline(mode, filepath.Join(t.TempDir(), "storage"))

	var want []string
	for _, ev := range createEvents(t, c, "app", "before", 100) {
		want = append(want, eventID(ev))
	}
	col := collectortest.Start(t, p.config(sink), "KUBECONFIG="+kubeconfig)
	sink.Wait(t, waitLong, "100 records", func(r []otlpsink.Record) bool { return len(r) >= 100 })
	if err := col.Stop(time.Minute); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	list, err := c.CoreV1().Events("app").List(context.Background(), metav1.ListOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	stoppedAt := list.ResourceVersion

	// While it is down: new Events, changes to old ones, and compactions.
	for _, ev := range createEvents(t, c, "app", "during", 100) {
		want = append(want, eventID(ev))
	}
	for i := 0; i < 100; i += 10 {
		ev, err := c.CoreV1().Events("app").Get(context.Background(), fmt.Sprintf("before-%d", i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ev.Count++
		updated, err := c.CoreV1().Events("app").Update(context.Background(), ev, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, eventID(updated))
	}
	// Proof that history is gone: the revision the collector stopped at
	// can no longer be listed (410 Gone) once etcd has been compacted.
	deadline := time.Now().Add(waitLong)
	for {
		_, err := c.CoreV1().Events("app").List(context.Background(), metav1.ListOptions{
			ResourceVersion: stoppedAt, ResourceVersionMatch: metav1.ResourceVersionMatchExact, Limit: 1,
		})
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd was not compacted past revision %s: last list error %v", stoppedAt, err)
		}
		time.Sleep(time.Second)
	}
	if mode == modeWatch {
		// A watch is served from the API server's watch cache, whose window
		// is its own: a restarted API server (an upgrade while the
		// collector was down) holds no change from before its start.
		if err := cp.StopAPIServer(); err != nil {
			t.Fatal(err)
		}
		if err := cp.StartAPIServer(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	col = collectortest.Start(t, p.config(sink), "KUBECONFIG="+kubeconfig)
	expectExactlyOnce(t, sink, want)
	if mode == modeWatch && !strings.Contains(col.Output(), "no longer holds the changes since the cursor (410 Gone)") {
		t.Errorf("the watch from the resume point was not refused with 410 Gone; the test did not test the list that follows")
	}
}

// TestRefusingConsumer: the exporter's endpoint refuses everything for a
// while (no sending queue, so the error reaches the receiver); when it
// accepts again, nothing has been lost.
func TestRefusingConsumer(t *testing.T) {
	t.Parallel()
	eachMode(t, testRefusingConsumer)
}

func testRefusingConsumer(t *testing.T, mode string) {
	cp := startControlPlane(t, kubeOptions())
	c := fastClient(t, cp)
	createNamespaces(t, c, "busy")
	sink := newSink(t)
	p := pipeline{
		mode:     mode,
		receiver: "interval: 1s\nstart_at: beginning",
		exporter: "sending_queue:\n  enabled: false\nretry_on_failure:\n  enabled: false",
		noBatch:  true,
	}
	col := collectortest.Start(t, p.config(sink), "KUBECONFIG="+clusterReaderKubeconfig(t, cp, mode))

	s := startStream(t, c, "busy", "ev", 20*time.Millisecond, 0)
	sink.Wait(t, waitLong, "50 records", func(r []otlpsink.Record) bool { return len(r) >= 50 })
	sink.Refuse(true)
	time.Sleep(15 * time.Second)
	sink.Refuse(false)
	s.waitCount(s.count() + 100)
	s.Stop()
	want := s.Created()
	if sink.Refused() == 0 {
		t.Fatal("the sink refused nothing: the test did not test anything")
	}
	t.Logf("%d exports refused", sink.Refused())
	expectExactlyOnce(t, sink, want)
	if exited, err := col.Exited(); exited {
		t.Errorf("collector exited: %v", err)
	}
}
