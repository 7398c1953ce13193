package main

import (
	"context"
	"fmt"
	"log"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
)

// The story's objects. Without a node (storySteps) no container ever runs:
// the Events come from the node lifecycle controller, the Deployment and
// ReplicaSet controllers and the scheduler. With one (nodeStorySteps), the
// kubelet reports on the Pods it runs.
const (
	namespace = "demo"
	nodeName  = "node-1"
	webName   = "web"
	hogName   = "hog"
)

// step is one change to the cluster, made after waiting wait.
type step struct {
	wait time.Duration
	what string
	do   func(ctx context.Context, c kubernetes.Interface) error
}

// storySteps make: RegisteredNode; ScalingReplicaSet, SuccessfulCreate and
// Scheduled for web; FailedScheduling (Warning) for hog, and for web too while
// node-1 still has the not-ready taint that admission gives new Nodes; more of
// the same when web scales up, SuccessfulDelete when it scales down; and
// NodeNotReady once node-1 has gone nodeMonitorGracePeriod without a heartbeat.
var storySteps = []step{
	{0, "create namespace " + namespace, func(ctx context.Context, c kubernetes.Interface) error {
		_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
		return err
	}},
	{0, "create node " + nodeName + " (Ready until its heartbeat is " + nodeMonitorGracePeriod.String() + " old)", func(ctx context.Context, c kubernetes.Interface) error {
		_, err := c.CoreV1().Nodes().Create(ctx, kubetest.ReadyNode(nodeName, "4", "8Gi"), metav1.CreateOptions{})
		return err
	}},
	{0, "create deployment " + webName + " (1 replica)", func(ctx context.Context, c kubernetes.Interface) error {
		_, err := c.AppsV1().Deployments(namespace).Create(ctx, kubetest.Deployment(namespace, webName, 1, "100m", "64Mi"), metav1.CreateOptions{})
		return err
	}},
	{0, "create pod " + hogName + " (requests 64Gi of memory; the node has 8Gi)", func(ctx context.Context, c kubernetes.Interface) error {
		_, err := c.CoreV1().Pods(namespace).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: hogName},
			Spec:       kubetest.PodSpec("1", "64Gi"),
		}, metav1.CreateOptions{})
		return err
	}},
	{5 * time.Second, "scale deployment " + webName + " to 3", scaleWeb(3)},
	{8 * time.Second, "scale deployment " + webName + " to 1", scaleWeb(1)},
}

func playStory(ctx context.Context, c kubernetes.Interface, logger *log.Logger, steps []step, node bool) error {
	for _, s := range steps {
		if err := sleep(ctx, s.wait); err != nil {
			return err
		}
		if err := s.do(ctx, c); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
		logger.Printf("story: %s", s.what)
	}
	if node {
		logger.Printf("story: done; the crash loops and the failing probe go on until Ctrl-C")
		return nil
	}
	logger.Printf("story: done; %s turns NotReady when its heartbeat is %s old", nodeName, nodeMonitorGracePeriod)
	return nil
}

// nodeStorySteps are the story with a real node (kubetest.NodeName, the
// kubelet registers it): web's Pods run for real (Pulled, Created, Started;
// Killing when it scales down), and kubetest.TroublePods add a crash loop
// (BackOff), an OOM-killed container (then BackOff) and a failing liveness
// probe (Unhealthy, Killing). hog still fits nowhere (FailedScheduling).
var nodeStorySteps = []step{
	storySteps[0], // the namespace
	{0, "create deployment " + webName + " (1 replica)", func(ctx context.Context, c kubernetes.Interface) error {
		d := kubetest.Deployment(namespace, webName, 1, "100m", "64Mi")
		d.Spec.Template.Spec.Containers[0] = kubetest.BusyboxPod(namespace, webName, "exec sleep 3600").Spec.Containers[0]
		_, err := c.AppsV1().Deployments(namespace).Create(ctx, d, metav1.CreateOptions{})
		return err
	}},
	{0, "create pods crashloop (exit 3), oom (32Mi limit, reads 200 MB) and liveness (its probe fails)", func(ctx context.Context, c kubernetes.Interface) error {
		for _, p := range kubetest.TroublePods(namespace) {
			if p.Name == kubetest.PodStarted {
				continue // web's Pods start
			}
			if _, err := c.CoreV1().Pods(namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				return err
			}
		}
		return nil
	}},
	{0, "create pod " + hogName + " (requests 64Gi of memory; more than the node has)", func(ctx context.Context, c kubernetes.Interface) error {
		hog := kubetest.BusyboxPod(namespace, hogName, "exec sleep 3600")
		hog.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Gi")}
		_, err := c.CoreV1().Pods(namespace).Create(ctx, hog, metav1.CreateOptions{})
		return err
	}},
	{5 * time.Second, "scale deployment " + webName + " to 3", scaleWeb(3)},
	{8 * time.Second, "scale deployment " + webName + " to 1", scaleWeb(1)},
	{0, "pod oom: container main was OOMKilled; the kubelet reports no Event that says so, only its restarts and BackOff (the reason is in the Pod's status)", waitOOMKilled},
}

// waitOOMKilled waits until the oom Pod's container was OOM-killed.
func waitOOMKilled(ctx context.Context, c kubernetes.Interface) error {
	for {
		p, err := c.CoreV1().Pods(namespace).Get(ctx, kubetest.PodOOM, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, st := range p.Status.ContainerStatuses {
			for _, term := range []*corev1.ContainerStateTerminated{st.State.Terminated, st.LastTerminationState.Terminated} {
				if term != nil && term.Reason == "OOMKilled" {
					return nil
				}
			}
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
}

func scaleWeb(replicas int) func(ctx context.Context, c kubernetes.Interface) error {
	return func(ctx context.Context, c kubernetes.Interface) error {
		patch := fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, replicas)
		_, err := c.AppsV1().Deployments(namespace).Patch(ctx, webName, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	}
}

// sleep waits for d, or returns ctx's error when ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
