package main

import (
	"context"
	"fmt"
	"log"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
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
		_, err := c.CoreV1().Nodes().Create(ctx, newNode(nodeName), metav1.CreateOptions{})
		return err
	}},
	{0, "create deployment " + webName + " (1 replica)", func(ctx context.Context, c kubernetes.Interface) error {
		_, err := c.AppsV1().Deployments(namespace).Create(ctx, newDeployment(webName, 1), metav1.CreateOptions{})
		return err
	}},
	{0, "create pod " + hogName + " (requests 64Gi of memory; the node has 8Gi)", func(ctx context.Context, c kubernetes.Interface) error {
		_, err := c.CoreV1().Pods(namespace).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: hogName},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{newContainer(hogName, "1", "64Gi")}},
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

// newNode is a Node as a kubelet would register it, Ready and with room for
// the web Pods. Nothing renews its heartbeat afterwards.
func newNode(name string) *corev1.Node {
	resources := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	now := metav1.Now()
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Status: corev1.NodeStatus{
			Capacity:    resources,
			Allocatable: resources,
			Conditions: []corev1.NodeCondition{{
				Type:               corev1.NodeReady,
				Status:             corev1.ConditionTrue,
				Reason:             "KubeletReady",
				Message:            "registered by devcluster; no kubelet renews this",
				LastHeartbeatTime:  now,
				LastTransitionTime: now,
			}},
		},
	}
}

func newDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{newContainer(name, "100m", "64Mi")}},
			},
		},
	}
}

func newContainer(name, cpu, memory string) corev1.Container {
	return corev1.Container{
		Name:  name,
		Image: "registry.k8s.io/pause:3.10",
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse(cpu),
			corev1.ResourceMemory: resource.MustParse(memory),
		}},
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
