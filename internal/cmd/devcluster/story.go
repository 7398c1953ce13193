package main

import (
	"context"
	"fmt"
	"log"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
)

// The story's objects. There is no kubelet, so no container ever runs: the
// Events come from the node lifecycle controller, the Deployment and
// ReplicaSet controllers and the scheduler.
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

func playStory(ctx context.Context, c kubernetes.Interface, logger *log.Logger) error {
	for _, s := range storySteps {
		if err := sleep(ctx, s.wait); err != nil {
			return err
		}
		if err := s.do(ctx, c); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
		logger.Printf("story: %s", s.what)
	}
	logger.Printf("story: done; %s turns NotReady when its heartbeat is %s old", nodeName, nodeMonitorGracePeriod)
	return nil
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
