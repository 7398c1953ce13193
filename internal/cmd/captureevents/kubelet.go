package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
)

// provokeKubelet runs kubetest.TroublePods on the node.
func (c *capturer) provokeKubelet(ctx context.Context) error {
	for _, pod := range kubetest.TroublePods(namespace) {
		if _, err := c.client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create pod %s/%s: %w", namespace, pod.Name, err)
		}
	}
	return nil
}

// kubeletCases are the kubelet's Events: about the TroublePods, and about
// the Node as the kubelet starts.
func (c *capturer) kubeletCases() []captureCase {
	cases := []captureCase{
		{
			file:     "kubelet-pod-started.json",
			selector: fromKubelet("Pod", kubetest.PodStarted, ""),
			pick:     withReasons("Pulled", "Created", "Started"),
		},
		{
			file:     "kubelet-pod-backoff.json",
			selector: fromKubelet("Pod", kubetest.PodCrashLoop, "BackOff"),
			// A repeat, with its count and first and last time.
			pick: func(evs []corev1.Event) []corev1.Event {
				return slices.DeleteFunc(evs, func(ev corev1.Event) bool { return ev.Count < 2 })
			},
		},
		{
			file:     "kubelet-pod-oomkilled.json",
			selector: fromKubelet("Pod", kubetest.PodOOM, ""),
			// The kubelet reports no Event for an OOM kill: the container
			// starts, is killed (its status says OOMKilled) and backs off.
			pick:  withReasons("Started", "BackOff"),
			check: c.oomKilled,
		},
		{
			file:     "kubelet-pod-liveness.json",
			selector: fromKubelet("Pod", kubetest.PodLiveness, ""),
			pick:     withReasons("Unhealthy", "Killing"),
		},
		{
			file:     "kubelet-node-starting.json",
			selector: fromKubelet("Node", kubetest.NodeName, "Starting"),
		},
		{
			file:     "kubelet-node-nodeready.json",
			selector: fromKubelet("Node", kubetest.NodeName, "NodeReady"),
		},
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); errors.Is(err, os.ErrNotExist) {
		// Only where the kernel mounts cgroup v1.
		cases = append(cases, captureCase{
			file:     "kubelet-node-cgroupv1.json",
			selector: fromKubelet("Node", kubetest.NodeName, "CgroupV1"),
		})
	}
	return cases
}

// fromKubelet selects the kubelet's Events about an object, with reason
// when it is not empty.
func fromKubelet(kind, name, reason string) fields.Set {
	s := fields.Set{"involvedObject.kind": kind, "involvedObject.name": name, "source": "kubelet"}
	if reason != "" {
		s["reason"] = reason
	}
	return s
}

// withReasons keeps the Events with these reasons, once there is one of
// each.
func withReasons(reasons ...string) func([]corev1.Event) []corev1.Event {
	return func(evs []corev1.Event) []corev1.Event {
		evs = slices.DeleteFunc(evs, func(ev corev1.Event) bool { return !slices.Contains(reasons, ev.Reason) })
		for _, r := range reasons {
			if !slices.ContainsFunc(evs, func(ev corev1.Event) bool { return ev.Reason == r }) {
				return nil
			}
		}
		return evs
	}
}

// oomKilled checks that the oom Pod's container was OOM-killed.
func (c *capturer) oomKilled(ctx context.Context) error {
	p, err := c.client.CoreV1().Pods(namespace).Get(ctx, kubetest.PodOOM, metav1.GetOptions{})
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
	return fmt.Errorf("pod %s: no container OOMKilled: %+v", kubetest.PodOOM, p.Status.ContainerStatuses)
}
