package e2e

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/k8sevents/otelcol-k8sevents/internal/collectortest"
	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
)

// ownersNamespace holds the workloads of TestOwners.
const ownersNamespace = "shop"

// ownersExtract is the extract block of TestOwners' collectors: owners,
// two labels and an annotation; the workloads carry other labels too.
const ownersExtract = `extract:
  owners: true
  labels: [app, team]
  annotations: [example.com/owner]`

// TestOwners runs real workloads on a real node: a Deployment whose new
// version crash-loops, a CronJob whose Job fails, a StatefulSet whose Pod is
// deleted and created again, and a DaemonSet. Three collectors read their
// Events:
//
//   - live, watching all namespaces as a ServiceAccount with exactly the
//     README's rules for extract (owners, labels): every Pod, ReplicaSet and
//     Job Event carries its owners, and the labels asked for arrive, the
//     others do not;
//   - partial, in the namespace only, with a Role that lacks get on
//     replicasets and jobs: it logs each missing rule once and keeps
//     delivering, with what the lookups it may make find;
//   - late, started after two Pods were deleted (one gone, one created again
//     under its name): their Events arrive without owners, and each costs one
//     lookup, whatever its number of Events (the collector's own metrics).
func TestOwners(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, kubetest.Options{Node: true, Logs: testLogs()})
	c := fastClient(t, cp)
	const ns = ownersNamespace
	createNamespaces(t, c, ns)
	inNamespace := func(r otlpsink.Record) bool { return r.Str("k8s.event.namespace") == ns }

	// live: the README's rules for owners and for labels of every kind
	// that has some here.
	labelRules := []rbacv1.PolicyRule{getRule("apps", "deployments"), getRule("apps", "statefulsets"), getRule("apps", "daemonsets"), getRule("batch", "cronjobs")}
	full := clusterReaderKubeconfig(t, cp, modeWatch, append(slices.Clone(ownersRules), labelRules...)...)
	liveSink := otlpsink.StartFiltered(t, inNamespace)
	livePort := collectortest.FreePort(t)
	live := collectortest.Start(t, withMetrics(pipeline{mode: modeWatch, receiver: ownersExtract}.config(liveSink), livePort), "KUBECONFIG="+full)

	// partial: events and pods in the namespace, not replicasets or jobs.
	partialSink := otlpsink.StartFiltered(t, inNamespace)
	partial := collectortest.Start(t, pipeline{mode: modeWatch, receiver: "namespaces: [" + ns + "]\nextract:\n  owners: true"}.config(partialSink),
		"KUBECONFIG="+roleKubeconfig(t, cp, ns, "partial", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: eventVerbs(modeWatch)}, getRule("", "pods")))
	for _, col := range []*collectortest.Collector{live, partial} {
		col.WaitOutput("Everything is ready", time.Minute)
		col.WaitOutput("start_at end: skipped the Events already stored", waitLong)
	}

	w := startOwnerWorkloads(t, c)

	// Every Event of the namespace, in the version the API server holds now,
	// in the live collector's sink.
	events := waitAllEvents(t, c, ns, liveSink)
	recs := liveSink.Records()
	t.Logf("live: %d records of %d Events", len(recs), len(events))

	t.Run("live/owners", func(t *testing.T) {
		checked := map[string]int{}
		for _, r := range recs {
			kind, name := r.Str("k8s.object.kind"), r.Str("k8s.object.name")
			want := w.owners(t, kind, name)
			if want == nil {
				continue
			}
			checked[kind]++
			for k, v := range want {
				if got := r.Str(k); got != v {
					t.Errorf("%s %s %s: %s %q, want %q", r.Str("k8s.event.reason"), kind, name, k, got, v)
				}
			}
		}
		t.Logf("records checked for owners, by kind: %v", checked)
		for _, kind := range []string{"Pod", "ReplicaSet", "Job"} {
			if checked[kind] == 0 {
				t.Errorf("no %s record to check", kind)
			}
		}
		// The Events of the rollout and the failure, found by their workload.
		for _, want := range []struct{ reason, attr, value string }{
			{"BackOff", "k8s.deployment.name", "web"},          // the new version's Pod crash-loops
			{"SuccessfulCreate", "k8s.deployment.name", "web"}, // a ReplicaSet's
			{"ScalingReplicaSet", "k8s.deployment.name", "web"},
			{"BackoffLimitExceeded", "k8s.cronjob.name", "nightly"}, // the Job's
			{"Started", "k8s.cronjob.name", "nightly"},              // the Job's Pod
			{"Started", "k8s.statefulset.name", "db"},
			{"Started", "k8s.daemonset.name", "agent"},
		} {
			if countWhere(recs, func(r otlpsink.Record) bool {
				return r.Str("k8s.event.reason") == want.reason && r.Str(want.attr) == want.value
			}) == 0 {
				t.Errorf("no %s record with %s=%s", want.reason, want.attr, want.value)
			}
		}
	})

	t.Run("live/labels", func(t *testing.T) {
		checkLabels(t, recs)
		for _, r := range recs {
			if r.Str("k8s.object.kind") != "Pod" || !strings.HasPrefix(r.Str("k8s.pod.name"), "web-") {
				continue
			}
			for k, v := range map[string]string{
				"k8s.pod.label.app": "web", "k8s.pod.label.team": "shop",
				"k8s.deployment.label.app": "web", "k8s.deployment.label.team": "shop", "k8s.deployment.annotation.example.com/owner": "alice",
			} {
				if got := r.Str(k); got != v {
					t.Errorf("%s %s: %s %q, want %q", r.Str("k8s.event.reason"), r.Str("k8s.pod.name"), k, got, v)
				}
			}
		}
		if countWhere(recs, func(r otlpsink.Record) bool {
			return r.Str("k8s.cronjob.label.team") == "batch" && r.Str("k8s.object.kind") == "Pod"
		}) == 0 {
			t.Error("no record of the Job's Pod with the CronJob's label team=batch")
		}
	})

	t.Run("partial", func(t *testing.T) {
		partialSink.Wait(t, waitLong, "the BackOff and BackoffLimitExceeded records", func(r []otlpsink.Record) bool {
			return countWhere(r, func(r otlpsink.Record) bool { return r.Str("k8s.event.reason") == "BackOff" }) > 0 &&
				countWhere(r, func(r otlpsink.Record) bool { return r.Str("k8s.event.reason") == "BackoffLimitExceeded" }) > 0
		})
		out := partial.Output()
		for _, resource := range []string{`\"replicasets\" (apiGroups [\"apps\"])`, `\"jobs\" (apiGroups [\"batch\"])`} {
			hint := `RBAC: grant verb \"get\" on resource ` + resource + ` in namespace \"` + ns + `\" (Role)`
			if n := strings.Count(out, hint); n != 1 {
				t.Errorf("the collector logged %q %d times, want once:\n%s", hint, n, out)
			}
		}
		var pods int
		for _, r := range partialSink.Records() {
			name := r.Str("k8s.pod.name")
			switch {
			case r.Str("k8s.object.kind") != "Pod":
			case strings.HasPrefix(name, "web-"):
				pods++
				if r.Str("k8s.replicaset.name") == "" || r.Str("k8s.deployment.name") != "" {
					t.Errorf("%s %s: k8s.replicaset.name %q, k8s.deployment.name %q; want the ReplicaSet (from the Pod) and no Deployment (its ReplicaSet may not be read)",
						r.Str("k8s.event.reason"), name, r.Str("k8s.replicaset.name"), r.Str("k8s.deployment.name"))
				}
			case strings.HasPrefix(name, "nightly-"):
				pods++
				if r.Str("k8s.job.name") != "nightly-manual" || r.Str("k8s.cronjob.name") != "" {
					t.Errorf("%s %s: k8s.job.name %q, k8s.cronjob.name %q; want the Job and no CronJob", r.Str("k8s.event.reason"), name, r.Str("k8s.job.name"), r.Str("k8s.cronjob.name"))
				}
			}
		}
		if pods == 0 {
			t.Error("no record of the Deployment's or the Job's Pods")
		}
	})

	t.Run("late", func(t *testing.T) {
		// The Pods there when the late collector starts: one missing then is
		// gone for its lookups. The rollout may still delete the first
		// version's Pods while it reads: such a Pod may be looked up before
		// or after, so its records show neither.
		before := podUIDs(t, c, ns)
		// Read the stored Events one per page: without the cache, each
		// would cost a lookup of its Pod.
		lateSink := otlpsink.StartFiltered(t, inNamespace)
		port := collectortest.FreePort(t)
		late := collectortest.Start(t, withMetrics(pipeline{mode: modePoll, receiver: "interval: 1h\npage_size: 1\nstart_at: beginning\nnamespaces: [" + ns + "]\n" + ownersExtract}.config(lateSink), port),
			"KUBECONFIG="+full)
		late.WaitOutput("Everything is ready", time.Minute)
		// The crash loop goes on: the BackOff Event the poll lists is newer
		// than the one listed before; the Event is what counts.
		lateSink.Wait(t, waitLong, fmt.Sprintf("the %d Events", len(events)), func(r []otlpsink.Record) bool {
			got := map[string]bool{}
			for _, rec := range r {
				got[rec.Str("k8s.event.uid")] = true
			}
			for i := range events {
				if !got[string(events[i].UID)] {
					return false
				}
			}
			return true
		})
		time.Sleep(2 * time.Second) // the poll's last pages
		lateRecs := lateSink.Records()

		// The Pods gone by now: those the test deleted, and the first
		// version's, which the rollout deletes once the second version's Pod
		// has been running (it has no readiness probe, so it counts as ready
		// between two crashes).
		gone := map[types.UID]bool{}
		for _, uid := range w.deleted {
			gone[uid] = true
		}
		after := podUIDs(t, c, ns)
		goneWhileRead := map[types.UID]bool{}
		for uid := range distinctPods(lateRecs) {
			switch {
			case !before[types.UID(uid)]:
				gone[types.UID(uid)] = true
			case !after[types.UID(uid)]:
				goneWhileRead[types.UID(uid)] = true
			}
		}
		perDeleted := map[types.UID]int{}
		podRecords := 0
		for _, r := range lateRecs {
			if r.Str("k8s.object.kind") != "Pod" {
				continue
			}
			podRecords++
			uid := types.UID(r.Str("k8s.pod.uid"))
			if goneWhileRead[uid] {
				continue
			}
			if !gone[uid] {
				if w.owners(t, "Pod", r.Str("k8s.pod.name")) != nil && r.Str("k8s.deployment.name")+r.Str("k8s.job.name")+r.Str("k8s.statefulset.name")+r.Str("k8s.daemonset.name") == "" {
					t.Errorf("%s %s: no owner, although the Pod exists", r.Str("k8s.event.reason"), r.Str("k8s.pod.name"))
				}
				continue
			}
			perDeleted[uid]++
			for k := range r.Attrs {
				if strings.HasPrefix(k, "k8s.replicaset.") || strings.HasPrefix(k, "k8s.deployment.") || strings.HasPrefix(k, "k8s.statefulset.") ||
					strings.HasPrefix(k, "k8s.pod.label.") {
					t.Errorf("%s of the deleted Pod %s: %s=%q; a deleted Pod has no owners to find", r.Str("k8s.event.reason"), r.Str("k8s.pod.name"), k, r.Str(k))
				}
			}
		}
		t.Logf("late: %d records, %d about Pods; records per deleted Pod: %v (%d deleted by the test)", len(lateRecs), podRecords, perDeleted, len(w.deleted))
		for _, uid := range w.deleted {
			if perDeleted[uid] < 2 {
				t.Errorf("deleted Pod %s: %d records, want several (the test needs them to show one lookup for all)", uid, perDeleted[uid])
			}
		}

		m := scrape(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		podLookups := sumSeries(m, "otelcol_receiver_k8sevents_lookups", `resource="pods"`)
		notFound := sumSeries(m, "otelcol_receiver_k8sevents_lookups", `resource="pods"`, `outcome="not_found"`)
		hits := sumSeries(m, "otelcol_receiver_k8sevents_lookup_cache_hits", `resource="pods"`)
		t.Logf("late: Pod lookups %v (not found %v), answered from the cache %v, for %d Pod records one per page", podLookups, notFound, hits, podRecords)
		if notFound < float64(len(gone)) || notFound > float64(len(gone)+len(goneWhileRead)) {
			t.Errorf("Pod lookups not found: %v, want %d (and up to %d more, for the Pods the rollout deleted while the collector read): one per deleted Pod, whatever its number of Events",
				notFound, len(gone), len(goneWhileRead))
		}
		if podLookups+hits != float64(podRecords) {
			t.Errorf("Pod lookups %v + cache hits %v = %v, want %d: one per page (of one Event each)", podLookups, hits, podLookups+hits, podRecords)
		}
		if distinct := len(distinctPods(lateRecs)); podLookups > float64(distinct) {
			t.Errorf("%v Pod lookups for %d distinct Pods: more than one request for a Pod", podLookups, distinct)
		}
	})

	m := scrape(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", livePort))
	t.Logf("live: lookups %v, cache hits %v, late %v", sumSeries(m, "otelcol_receiver_k8sevents_lookups"),
		sumSeries(m, "otelcol_receiver_k8sevents_lookup_cache_hits"), sumSeries(m, "otelcol_receiver_k8sevents_lookup_timeouts"))
}

// ownerWorkloads are what startOwnerWorkloads made, and the owners each of
// their objects must be named with.
type ownerWorkloads struct {
	deployment, cronjob, job, statefulset, ds         types.UID
	deploymentName, cronjobName, jobName, sts, dsName string
	// replicasets are the Deployment's, by name.
	replicasets map[string]types.UID
	// deleted are the Pods deleted before the late collector read their Events.
	deleted []types.UID
}

// owners is the attributes a record about the object kind/name must carry;
// nil for an object of another workload, or for which there is no owner.
func (w *ownerWorkloads) owners(t *testing.T, kind, name string) map[string]string {
	t.Helper()
	deployment := map[string]string{"k8s.deployment.name": w.deploymentName, "k8s.deployment.uid": string(w.deployment)}
	cronjob := map[string]string{"k8s.cronjob.name": w.cronjobName, "k8s.cronjob.uid": string(w.cronjob)}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	switch kind {
	case "ReplicaSet":
		if _, ok := w.replicasets[name]; ok {
			return deployment
		}
	case "Job":
		if name == w.jobName {
			return cronjob
		}
	case "Pod":
		for rs, uid := range w.replicasets {
			if strings.HasPrefix(name, rs+"-") {
				return with(deployment, "k8s.replicaset.name", rs, "k8s.replicaset.uid", string(uid))
			}
		}
		switch {
		case strings.HasPrefix(name, w.jobName+"-"):
			return with(cronjob, "k8s.job.name", w.jobName, "k8s.job.uid", string(w.job))
		case name == w.sts+"-0":
			return map[string]string{"k8s.statefulset.name": w.sts, "k8s.statefulset.uid": string(w.statefulset)}
		case strings.HasPrefix(name, w.dsName+"-"):
			return map[string]string{"k8s.daemonset.name": w.dsName, "k8s.daemonset.uid": string(w.ds)}
		}
	}
	return nil
}

// startOwnerWorkloads runs the workloads of TestOwners and waits until each
// has made the Events the test reads: the Deployment's first version
// running (one of its Pods deleted and replaced), its second version
// crash-looping (BackOff), the CronJob's Job failed (BackoffLimitExceeded),
// the StatefulSet's Pod started, deleted and started again under its name,
// and the DaemonSet's Pod started.
func startOwnerWorkloads(t *testing.T, c kubernetes.Interface) *ownerWorkloads {
	t.Helper()
	ctx := t.Context()
	const ns = ownersNamespace
	w := &ownerWorkloads{replicasets: map[string]types.UID{}, deploymentName: "web", cronjobName: "nightly", jobName: "nightly-manual", sts: "db", dsName: "agent"}
	podTemplate := func(script string, labels map[string]string) corev1.PodTemplateSpec {
		p := kubetest.BusyboxPod(ns, "", script)
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: p.Spec}
	}
	selector := func(app string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
	}
	one := int32(1)

	webLabels := map[string]string{"app": "web", "team": "shop", "other": "not-asked-for"}
	d, err := c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: w.deploymentName, Labels: webLabels, Annotations: map[string]string{"example.com/owner": "alice", "example.com/other": "x"}},
		Spec:       appsv1.DeploymentSpec{Replicas: &one, Selector: selector("web"), Template: podTemplate("exec sleep 3600", webLabels)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	w.deployment = d.UID

	failing := int32(0)
	yes := true
	jobTemplate := podTemplate("echo failing; exit 1", map[string]string{"app": "nightly"})
	jobTemplate.Spec.RestartPolicy = corev1.RestartPolicyNever
	cj, err := c.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: w.cronjobName, Labels: map[string]string{"app": "nightly", "team": "batch", "other": "x"}},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", Suspend: &yes, JobTemplate: batchv1.JobTemplateSpec{
			Spec: batchv1.JobSpec{BackoffLimit: &failing, Template: jobTemplate},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create cronjob: %v", err)
	}
	w.cronjob = cj.UID
	// The CronJob's Job now, as `kubectl create job --from=cronjob/nightly`
	// makes it: the CronJob's template, the CronJob as controller.
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: w.jobName, Labels: map[string]string{"app": "nightly"}, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "batch/v1", Kind: "CronJob", Name: cj.Name, UID: cj.UID, Controller: &yes, BlockOwnerDeletion: &yes,
		}}},
		Spec: *cj.Spec.JobTemplate.Spec.DeepCopy(),
	}
	if job, err = c.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create job: %v", err)
	}
	w.job = job.UID

	sts, err := c.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: w.sts},
		Spec:       appsv1.StatefulSetSpec{Replicas: &one, ServiceName: w.sts, Selector: selector("db"), Template: podTemplate("exec sleep 3600", map[string]string{"app": "db"})},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create statefulset: %v", err)
	}
	w.statefulset = sts.UID

	ds, err := c.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: w.dsName},
		Spec:       appsv1.DaemonSetSpec{Selector: selector("agent"), Template: podTemplate("exec sleep 3600", map[string]string{"app": "agent"})},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create daemonset: %v", err)
	}
	w.ds = ds.UID

	// The StatefulSet's Pod: started, deleted, started again as db-0.
	first := waitEvent(t, c, ns, "Pod", w.sts+"-0", "Started")
	deletePod(t, c, w.sts+"-0")
	w.deleted = append(w.deleted, first.InvolvedObject.UID)
	waitEventWhere(t, c, ns, "the new db-0 started", func(ev corev1.Event) bool {
		return ev.InvolvedObject.Name == w.sts+"-0" && ev.Reason == "Started" && ev.InvolvedObject.UID != first.InvolvedObject.UID
	})

	// The Deployment's first version: one Pod deleted and replaced.
	poll(t, "deployment web ready", func(ctx context.Context) (bool, error) {
		d, getErr := c.AppsV1().Deployments(ns).Get(ctx, w.deploymentName, metav1.GetOptions{})
		return getErr == nil && deploymentReady(d, 1), getErr
	})
	started := waitEventWhere(t, c, ns, "a Pod of web started", func(ev corev1.Event) bool {
		return ev.Reason == "Started" && strings.HasPrefix(ev.InvolvedObject.Name, "web-")
	})
	deletePod(t, c, started.InvolvedObject.Name)
	w.deleted = append(w.deleted, started.InvolvedObject.UID)
	// Its replacement ready: the rollout below would otherwise delete it as
	// an unhealthy old replica.
	poll(t, "the replacement of the deleted Pod of web ready", func(ctx context.Context) (bool, error) {
		pods, listErr := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if listErr != nil || len(pods.Items) != 1 {
			return false, listErr
		}
		for _, cond := range pods.Items[0].Status.Conditions {
			if cond.Type == corev1.PodReady {
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
	// The second version crash-loops; the first stays (maxUnavailable 0).
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"main","command":["sh","-c","echo v2 fails; exit 1"]}]}}}}`
	if _, err = c.AppsV1().Deployments(ns).Patch(ctx, w.deploymentName, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("roll out web v2: %v", err)
	}
	waitEventWhere(t, c, ns, "a BackOff of web v2", func(ev corev1.Event) bool {
		return ev.Reason == "BackOff" && strings.HasPrefix(ev.InvolvedObject.Name, "web-")
	})
	waitEvent(t, c, ns, "Job", w.jobName, "BackoffLimitExceeded")
	waitEventWhere(t, c, ns, "the DaemonSet's Pod started", func(ev corev1.Event) bool {
		return ev.Reason == "Started" && strings.HasPrefix(ev.InvolvedObject.Name, w.dsName+"-")
	})

	rss, err := c.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list replicasets: %v", err)
	}
	for _, rs := range rss.Items {
		if c := metav1.GetControllerOf(&rs); c != nil && c.UID == w.deployment {
			w.replicasets[rs.Name] = rs.UID
		}
	}
	if len(w.replicasets) != 2 {
		t.Fatalf("deployment web has %d ReplicaSets, want 2 (the rollout's old and new): %v", len(w.replicasets), w.replicasets)
	}
	return w
}

// podUIDs returns the UIDs of the Pods of namespace ns.
func podUIDs(t *testing.T, c kubernetes.Interface, ns string) map[types.UID]bool {
	t.Helper()
	pods, err := c.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	out := map[types.UID]bool{}
	for _, p := range pods.Items {
		out[p.UID] = true
	}
	return out
}

// deletePod deletes a Pod of ownersNamespace and waits until it is gone.
func deletePod(t *testing.T, c kubernetes.Interface, name string) {
	t.Helper()
	p, err := c.CoreV1().Pods(ownersNamespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod %s: %v", name, err)
	}
	if err := c.CoreV1().Pods(ownersNamespace).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete pod %s: %v", name, err)
	}
	poll(t, "pod "+name+" gone", func(ctx context.Context) (bool, error) {
		got, err := c.CoreV1().Pods(ownersNamespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && got.UID != p.UID, err // a StatefulSet's Pod comes back under its name
	})
}

// waitEventWhere waits until an Event of namespace satisfies ok, and
// returns it.
func waitEventWhere(t *testing.T, c kubernetes.Interface, namespace, what string, ok func(corev1.Event) bool) corev1.Event {
	t.Helper()
	var found corev1.Event
	poll(t, what, func(ctx context.Context) (bool, error) {
		evs, err := c.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, ev := range evs.Items {
			if ok(ev) {
				found = ev
				return true, nil
			}
		}
		return false, nil
	})
	return found
}

// waitAllEvents waits until the sink holds every Event of namespace in the
// version the API server holds, and returns those Events.
func waitAllEvents(t *testing.T, c kubernetes.Interface, namespace string, sink *otlpsink.Sink) []corev1.Event {
	t.Helper()
	list, err := c.CoreV1().Events(namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	sink.Wait(t, waitLong, fmt.Sprintf("the %d Events of %s", len(list.Items), namespace), func(r []otlpsink.Record) bool {
		got := tally(r)
		for i := range list.Items {
			if got[eventID(&list.Items[i])] == 0 {
				return false
			}
		}
		return true
	})
	return list.Items
}

// labelAttr matches the attributes of labels and annotations.
var labelAttr = regexp.MustCompile(`^k8s\.([a-z]+)\.(label|annotation)\.(.+)$`)

// checkLabels fails t for a label or annotation that ownersExtract does not
// ask for, and for one of an owner in the middle of a chain: only the
// involved object's and its top-level owner's are read (TestOwners' ReplicaSets
// and Job all have owners).
func checkLabels(t *testing.T, recs []otlpsink.Record) {
	t.Helper()
	asked := map[string]bool{"label.app": true, "label.team": true, "annotation.example.com/owner": true}
	topLevel := map[string]bool{"deployment": true, "statefulset": true, "daemonset": true, "cronjob": true}
	seen := map[string]bool{}
	for _, r := range recs {
		involved := strings.ToLower(r.Str("k8s.object.kind"))
		for k := range r.Attrs {
			m := labelAttr.FindStringSubmatch(k)
			if m == nil {
				continue
			}
			seen[k] = true
			if !asked[m[2]+"."+m[3]] {
				t.Errorf("%s %s: %s=%q was not asked for", r.Str("k8s.event.reason"), r.Str("k8s.object.name"), k, r.Str(k))
			}
			if m[1] != involved && !topLevel[m[1]] {
				t.Errorf("%s %s %s: %s is of an owner in the middle; only the top-level owner's labels are read", r.Str("k8s.event.reason"), involved, r.Str("k8s.object.name"), k)
			}
		}
	}
	t.Logf("label and annotation attributes seen: %v", slices.Sorted(func(yield func(string) bool) {
		for k := range seen {
			if !yield(k) {
				return
			}
		}
	}))
}

// distinctPods is the set of Pod UIDs that records are about.
func distinctPods(recs []otlpsink.Record) map[string]bool {
	out := map[string]bool{}
	for _, r := range recs {
		if uid := r.Str("k8s.pod.uid"); uid != "" {
			out[uid] = true
		}
	}
	return out
}

// roleKubeconfig returns a kubeconfig for the ServiceAccount sa of
// collectorNamespace, bound to a Role in namespace with rules.
func roleKubeconfig(t *testing.T, cp *kubetest.ControlPlane, namespace, sa string, rules ...rbacv1.PolicyRule) string {
	t.Helper()
	ctx := t.Context()
	c := cp.Client()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: namespace}, Rules: rules}
	if _, err := c.RbacV1().Roles(namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role %s/%s: %v", namespace, sa, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: sa},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: collectorNamespace, Name: sa}},
	}
	if _, err := c.RbacV1().RoleBindings(namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create rolebinding %s/%s: %v", namespace, sa, err)
	}
	path, err := cp.ServiceAccountKubeconfig(ctx, collectorNamespace, sa)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// sumSeries adds up the series of metric name (scraped by scrape) that
// have every one of labels (`outcome="found"`).
func sumSeries(m map[string]float64, name string, labels ...string) float64 {
	var sum float64
	for k, v := range m {
		series, rest, _ := strings.Cut(k, "{")
		if series != name {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(rest, l)
		}
		if all {
			sum += v
		}
	}
	return sum
}
