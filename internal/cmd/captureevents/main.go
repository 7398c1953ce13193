// Command captureevents starts a local control plane, provokes the Events the
// k8sevents receiver's tests are built on, and writes them, as the API server
// returns them, to one JSON file (a v1 EventList) per case:
//
//	go run ./internal/cmd/captureevents -out receiver/k8sevents/testdata/events
//
// With -node it starts a real node too (containerd and a kubelet: root and
// `make node` needed) and writes the kubelet's Events instead, to the files
// named kubelet-*.json.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
)

const (
	namespace = corev1.NamespaceDefault
	nodeName  = "node-1"

	// nodeGracePeriod is how long the Node may go without a heartbeat (and
	// nothing sends one) before the node lifecycle controller reports it
	// NotReady.
	nodeGracePeriod = 10 * time.Second
	pollInterval    = time.Second
	// nudgeInterval spaces the cluster changes that make the scheduler try
	// the unschedulable Pod again.
	nudgeInterval = 10 * time.Second
)

func main() {
	out := flag.String("out", "", "directory the Event files are written to (required)")
	dir := flag.String("dir", "", "control plane work directory, kept with its logs (default: a temporary directory, removed on exit)")
	timeout := flag.Duration("timeout", 15*time.Minute, "how long to wait for all Events")
	node := flag.Bool("node", false, "start a real node and capture the kubelet's Events (kubelet-*.json) instead")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	log.SetFlags(log.Ltime)
	log.SetPrefix("captureevents: ")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *out, *dir, *timeout, *node)
	stop()
	if err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out, dir string, timeout time.Duration, node bool) (err error) {
	if err = os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	opts := kubetest.Options{Dir: dir, Controllers: true, NodeMonitorGracePeriod: nodeGracePeriod}
	if node {
		// The real kubelet registers node-1 and keeps it Ready.
		opts = kubetest.Options{Dir: dir, Node: true}
	}
	log.Print("starting control plane")
	cp, err := kubetest.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		log.Print("stopping control plane")
		err = errors.Join(err, cp.Stop())
	}()

	c := &capturer{client: cp.Client(), out: out}
	provoke, cases := c.provoke, c.cases
	if node {
		provoke, cases = c.provokeKubelet, c.kubeletCases
	}
	if err := provoke(ctx); err != nil {
		return err
	}
	for _, cs := range cases() {
		if err := c.capture(ctx, cs); err != nil {
			return err
		}
	}
	return nil
}

type capturer struct {
	client kubernetes.Interface
	out    string
	nudges int
}

// provoke creates the objects whose Events are captured. The Node is created
// first so the scheduler knows it before any Pod arrives.
func (c *capturer) provoke(ctx context.Context) error {
	if _, err := c.client.CoreV1().Nodes().Create(ctx, kubetest.ReadyNode(nodeName, "2", "4Gi"), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create node %s: %w", nodeName, err)
	}
	pods := []*corev1.Pod{
		newPod("scheduled", "100m", "64Mi", false),
		// Tolerating every taint keeps the scheduler's message the same once
		// the Node turns NotReady, so the repeats form one series.
		newPod("too-big", "100m", "64Gi", true),
	}
	for i, pod := range pods {
		created, err := c.client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create pod %s/%s: %w", namespace, pod.Name, err)
		}
		pods[i] = created
	}
	if _, err := c.client.AppsV1().Deployments(namespace).Create(ctx, kubetest.Deployment(namespace, "web", 2, "10m", "16Mi"), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create deployment %s/web: %w", namespace, err)
	}
	// An Event as an old client writes it: firstTimestamp only.
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "scheduled.first-only"},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: "v1", Kind: "Pod", Namespace: namespace, Name: pods[0].Name, UID: pods[0].UID,
		},
		Reason:         "Checked",
		Message:        "checked by captureevents",
		Type:           corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: "captureevents"},
		FirstTimestamp: metav1.Now(),
	}
	if _, err := c.client.CoreV1().Events(namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create event %s/%s: %w", namespace, ev.Name, err)
	}
	return nil
}

// captureCase is one output file: the Events that match selector, written
// once pick returns some.
type captureCase struct {
	file     string
	selector fields.Set
	// pick returns the Events to write, or none to wait for more. Default:
	// all of them.
	pick func([]corev1.Event) []corev1.Event
	// nudge, when set, runs every nudgeInterval while waiting.
	nudge func(context.Context) error
	// check, when set, must pass before the Events are written.
	check func(context.Context) error
}

func (c *capturer) cases() []captureCase {
	return []captureCase{
		{
			file:     "node-registerednode.json",
			selector: about("Node", nodeName, "RegisteredNode"),
		},
		{
			file:     "pod-scheduled.json",
			selector: about("Pod", "scheduled", "Scheduled"),
		},
		{
			file:     "deployment-scalingreplicaset.json",
			selector: about("Deployment", "web", "ScalingReplicaSet"),
		},
		{
			file:     "replicaset-successfulcreate.json",
			selector: fields.Set{"involvedObject.kind": "ReplicaSet", "reason": "SuccessfulCreate"},
			pick:     atLeast(2), // one per replica
		},
		{
			file:     "firsttimestamp-only.json",
			selector: about("Pod", "scheduled", "Checked"),
		},
		{
			file:     "node-nodenotready.json",
			selector: about("Node", nodeName, "NodeNotReady"),
		},
		{
			file:     "pod-failedscheduling-series.json",
			selector: about("Pod", "too-big", "FailedScheduling"),
			// The first attempts leave Events without a series: an Event
			// names the Pod at a resourceVersion, which changes when the
			// scheduler first records the failure in the Pod's status.
			pick: func(evs []corev1.Event) []corev1.Event {
				return slices.DeleteFunc(evs, func(ev corev1.Event) bool { return ev.Series == nil })
			},
			nudge: c.freeResources,
		},
	}
}

func about(kind, name, reason string) fields.Set {
	return fields.Set{"involvedObject.kind": kind, "involvedObject.name": name, "reason": reason}
}

func atLeast(n int) func([]corev1.Event) []corev1.Event {
	return func(evs []corev1.Event) []corev1.Event {
		if len(evs) < n {
			return nil
		}
		return evs
	}
}

// capture waits until the case's Events are there and writes them.
func (c *capturer) capture(ctx context.Context, cs captureCase) error {
	pick := cs.pick
	if pick == nil {
		pick = atLeast(1)
	}
	log.Printf("waiting for %s", cs.file)
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	lastNudge := time.Now()
	for {
		list, err := c.client.CoreV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
			FieldSelector: cs.selector.AsSelector().String(),
		})
		if err != nil {
			return fmt.Errorf("list events for %s: %w", cs.file, err)
		}
		if evs := pick(list.Items); len(evs) > 0 {
			if cs.check != nil {
				if err := cs.check(ctx); err != nil {
					return fmt.Errorf("%s: %w", cs.file, err)
				}
			}
			return c.write(cs.file, evs)
		}
		if cs.nudge != nil && time.Since(lastNudge) >= nudgeInterval {
			if err := cs.nudge(ctx); err != nil {
				return err
			}
			lastNudge = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", cs.file, context.Cause(ctx))
		case <-poll.C:
		}
	}
}

// freeResources makes the scheduler try the unschedulable Pod again: the
// deletion of a Pod bound to a Node may free what it lacks. The Pod is bound
// by the client, so nothing else about the cluster changes.
func (c *capturer) freeResources(ctx context.Context) error {
	c.nudges++
	pod := newPod(fmt.Sprintf("nudge-%d", c.nudges), "10m", "1Mi", true)
	pod.Spec.NodeName = nodeName
	pods := c.client.CoreV1().Pods(namespace)
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create pod %s/%s: %w", namespace, pod.Name, err)
	}
	// No kubelet confirms a graceful deletion, so delete at once.
	if err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		return fmt.Errorf("delete pod %s/%s: %w", namespace, pod.Name, err)
	}
	return nil
}

func (c *capturer) write(file string, events []corev1.Event) error {
	slices.SortFunc(events, func(a, b corev1.Event) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	for i := range events {
		events[i].ManagedFields = nil
	}
	list := corev1.EventList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "EventList"}, Items: events}
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", file, err)
	}
	path := filepath.Join(c.out, file)
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	log.Printf("wrote %s (%d events)", path, len(events))
	return nil
}

func newPod(name, cpu, memory string, tolerateAll bool) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       kubetest.PodSpec(cpu, memory),
	}
	if tolerateAll {
		pod.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	}
	return pod
}
