package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
	"github.com/k8sevents/otelcol-k8sevents/internal/otlpsink"
	"github.com/k8sevents/otelcol-k8sevents/internal/testbin"
)

// deployNamespace and deployName are where deploy/ puts the collector.
const (
	deployNamespace = "otelcol-k8sevents"
	deployName      = "otelcol-k8sevents"
)

// EnvImage names the environment variable that points at the collector's
// image tarball; `make test` sets it to what `make image` writes.
const EnvImage = "K8SEVENTS_IMAGE"

// startNode starts a control plane with a real node (skipping the test
// where the machine cannot run one, see kubetest.StartForTest), imports the
// collector's image into it and starts an OTLP sink that the node's Pods
// reach.
func startNode(t *testing.T) (*kubetest.ControlPlane, *otlpsink.Sink) {
	t.Helper()
	image := testbin.Find(t, EnvImage, "_build/otelcol-k8sevents-image.tar", "run `make image`")
	cp := startControlPlane(t, kubetest.Options{Node: true, Logs: testLogs()})
	if err := cp.Node().ImportImage(t.Context(), image); err != nil {
		t.Fatal(err)
	}
	sink := otlpsink.StartOn(t, net.JoinHostPort(cp.Node().HostIP().String(), "0"), func(otlpsink.Record) bool { return true })
	return cp, sink
}

// kubectl runs the kubectl that `make node` builds, with the admin
// kubeconfig, from the module root, and returns its output.
func kubectl(t *testing.T, cp *kubetest.ControlPlane, args ...string) string {
	t.Helper()
	out, err := tryKubectl(t, cp, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// tryKubectl is kubectl for a command that may fail: it returns the
// combined output and kubectl's error.
func tryKubectl(t *testing.T, cp *kubetest.ControlPlane, args ...string) (string, error) {
	t.Helper()
	root := moduleRoot(t)
	cmd := exec.CommandContext(t.Context(), filepath.Join(cp.BinDir(), "kubectl"), append([]string{"--kubeconfig", cp.Kubeconfig()}, args...)...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	t.Logf("kubectl %s:\n%s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	return string(out), err
}

// applyDeploy applies the kustomization dir (relative to the module root)
// as the README says to, and waits until the Deployment's replicas are
// ready. Before, it applies the namespace alone and creates the ConfigMap
// e2e-endpoints in it, from which the test overlays read the addresses of
// this run.
func applyDeploy(t *testing.T, cp *kubetest.ControlPlane, sink *otlpsink.Sink, dir string) {
	t.Helper()
	c := cp.Client()
	kubectl(t, cp, "apply", "-f", "deploy/base/namespace.yaml")
	createEndpoints(t, cp, sink)
	kubectl(t, cp, "apply", "-k", dir)
	waitDeployment(t, c)
}

// waitDeployment waits until the collector's Deployment has 2 ready
// replicas of its current template.
func waitDeployment(t *testing.T, c kubernetes.Interface) {
	t.Helper()
	poll(t, "deployment "+deployName+" with 2 ready replicas", func(ctx context.Context) (bool, error) {
		d, err := c.AppsV1().Deployments(deployNamespace).Get(ctx, deployName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return deploymentReady(d, 2), nil
	})
}

// createEndpoints creates the ConfigMap e2e-endpoints in the collector's
// namespace, from which the test overlays (and e2e/testdata/chart-node.yaml)
// read the addresses of this run.
func createEndpoints(t *testing.T, cp *kubetest.ControlPlane, sink *otlpsink.Sink) {
	t.Helper()
	api := cp.Node().APIServerAddr()
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-endpoints", Namespace: deployNamespace},
		Data: map[string]string{
			"otlp_endpoint":  sink.Endpoint(),
			"apiserver_host": api.IP.String(),
			"apiserver_port": strconv.Itoa(api.Port),
		},
	}
	if _, err := cp.Client().CoreV1().ConfigMaps(deployNamespace).Create(t.Context(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create configmap e2e-endpoints: %v", err)
	}
}

func deploymentReady(d *appsv1.Deployment, n int32) bool {
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == n && s.ReadyReplicas == n && s.Replicas == n
}

// poll checks cond every half second until it holds; waitLong only bounds
// a hang.
func poll(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, waitLong, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if err != nil && !apierrors.IsNotFound(err) {
			last = err
			return false, nil // the API server may be busy: try again
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last error: %v)", what, err, last)
	}
}

// collectorPods returns the Deployment's Pods that are not being deleted.
func collectorPods(t *testing.T, c kubernetes.Interface) []corev1.Pod {
	t.Helper()
	pods, err := c.CoreV1().Pods(deployNamespace).List(t.Context(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + deployName})
	if err != nil {
		t.Fatalf("list collector pods: %v", err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// podLog is the log of a Pod's first container, read through the API
// server from the kubelet.
func podLog(t *testing.T, c kubernetes.Interface, namespace, pod string) string {
	t.Helper()
	b, err := c.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{}).DoRaw(t.Context())
	if err != nil {
		t.Fatalf("read the log of pod %s/%s: %v", namespace, pod, err)
	}
	return string(b)
}

// holderPod is the Pod named by a Lease holder identity (POD_NAME_suffix).
func holderPod(identity string) string {
	i := strings.LastIndexByte(identity, '_')
	if i < 0 {
		return identity
	}
	return identity[:i]
}

// waitEvent waits until an Event with reason about the Pod (or Node) name
// exists, and returns it.
func waitEvent(t *testing.T, c kubernetes.Interface, namespace, kind, name, reason string) corev1.Event {
	t.Helper()
	var found corev1.Event
	poll(t, fmt.Sprintf("a %s Event about %s %s", reason, kind, name), func(ctx context.Context) (bool, error) {
		evs, err := c.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.kind=" + kind + ",involvedObject.name=" + name + ",reason=" + reason,
		})
		if err != nil || len(evs.Items) == 0 {
			return false, err
		}
		found = evs.Items[0]
		return true, nil
	})
	return found
}

// eventTime is when an Event last happened, in the order the receiver's
// README documents: series.lastObservedTime, lastTimestamp, eventTime,
// firstTimestamp, creationTimestamp.
func eventTime(ev corev1.Event) time.Time {
	switch {
	case ev.Series != nil && !ev.Series.LastObservedTime.IsZero():
		return ev.Series.LastObservedTime.Time
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	case !ev.FirstTimestamp.IsZero():
		return ev.FirstTimestamp.Time
	}
	return ev.CreationTimestamp.Time
}

// settleAll waits until the sink holds the current version of every Event
// the API server stores, and until that set stops changing for two polls
// of the collector; it returns the Events.
func settleAll(t *testing.T, c kubernetes.Interface, sink *otlpsink.Sink, pollInterval time.Duration) []corev1.Event {
	t.Helper()
	var prev map[string]bool
	for round := 0; ; round++ {
		list, err := c.CoreV1().Events("").List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list events: %v", err)
		}
		want := map[string]bool{}
		for _, ev := range list.Items {
			want[eventID(&ev)] = true
		}
		if prev != nil && len(prev) == len(want) && containsAll(prev, want) {
			return list.Items
		}
		sink.Wait(t, waitLong, fmt.Sprintf("the current version of all %d Events", len(want)), func(r []otlpsink.Record) bool {
			got := tally(r)
			for id := range want {
				if got[id] == 0 {
					return false
				}
			}
			return true
		})
		if round > 20 {
			t.Fatalf("the Events kept changing for %d rounds", round)
		}
		prev = want
		time.Sleep(2 * pollInterval)
	}
}

func containsAll(have, want map[string]bool) bool {
	for k := range want {
		if !have[k] {
			return false
		}
	}
	return true
}

// checkCollectorRules checks, with the token mounted in a collector Pod of
// deploy/ or the chart, that its ServiceAccount has exactly the documented
// rules: on events and, for extract::owners (on in both), get on pods,
// replicasets and jobs, in the workload's namespace as everywhere; and in
// its own namespace also the checkpoint's and the Lease's.
func checkCollectorRules(t *testing.T, cp *kubetest.ControlPlane, c kubernetes.Interface) {
	t.Helper()
	pod := collectorPods(t, c)[0]
	collector := tokenClient(t, cp, mountedToken(t, cp, pod))
	if who, want := whoami(t, collector), "system:serviceaccount:"+deployNamespace+":"+deployName; who != want {
		t.Fatalf("the token mounted in pod %s is %q, want %q", pod.Name, who, want)
	}
	events := []string{"/events list *", "/events watch *", "/pods get *", "apps/replicasets get *", "batch/jobs get *"}
	checkRules(t, collector, noBindingClient(t, cp, deployNamespace), map[string][]string{
		workloadNamespace: events,
		deployNamespace: append(slices.Clone(events),
			"/configmaps create *", "/configmaps get k8sevents-checkpoint", "/configmaps update k8sevents-checkpoint",
			"coordination.k8s.io/leases create *", "coordination.k8s.io/leases get k8sevents", "coordination.k8s.io/leases update k8sevents"),
	})
}

// waitOOMKilled waits until the container of kubetest.PodOOM in ns was
// OOM-killed (its state or last state says so): the kubelet sends no Event
// for that, only its status tells.
func waitOOMKilled(t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	poll(t, "the container of pod "+kubetest.PodOOM+" OOMKilled", func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, kubetest.PodOOM, metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return false, err
		}
		st := p.Status.ContainerStatuses[0]
		for _, term := range []*corev1.ContainerStateTerminated{st.State.Terminated, st.LastTerminationState.Terminated} {
			if term != nil && term.Reason == "OOMKilled" {
				return true, nil
			}
		}
		return false, nil
	})
}
