package kubetest

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReadyNode is a Node as a kubelet registers it, with its status: Ready,
// with the CPU and memory given. There is no kubelet to renew its
// heartbeat, so the node lifecycle controller marks it NotReady after its
// grace period (Options.NodeMonitorGracePeriod).
func ReadyNode(name, cpu, memory string) *corev1.Node {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse(memory),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	now := metav1.Now()
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				Message: "registered by kubetest; no kubelet renews this", LastHeartbeatTime: now, LastTransitionTime: now,
			}},
		},
	}
}

// PodSpec is one pause container that requests cpu and memory.
func PodSpec(cpu, memory string) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{
		Name:  "app",
		Image: "registry.k8s.io/pause:3.10",
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse(cpu),
			corev1.ResourceMemory: resource.MustParse(memory),
		}},
	}}}
}

// Deployment runs replicas Pods of PodSpec(cpu, memory), labeled app=name.
func Deployment(namespace, name string, replicas int32, cpu, memory string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       PodSpec(cpu, memory),
			},
		},
	}
}

// BusyboxPod is a Pod of one container, main, that runs script with sh in
// BusyboxImage (never pulled: it is on every node), on a node started with
// Options.Node. It stops one second after SIGTERM: busybox as PID 1 ignores
// the signal.
func BusyboxPod(namespace, name, script string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "main", Image: BusyboxImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", script},
			}},
		},
	}
}

// Names of the TroublePods.
const (
	PodStarted   = "started"
	PodCrashLoop = "crashloop"
	PodOOM       = "oom"
	PodLiveness  = "liveness"
)

// TroublePods are Pods whose kubelet Events are the ones people read most:
//   - started sleeps: Pulled, Created, Started;
//   - crashloop exits with status 3: BackOff, again and again;
//   - oom reads 200 MB into one buffer under a 32Mi limit: the container
//     ends OOMKilled (in the Pod's status; the kubelet reports no Event for
//     it), then BackOff;
//   - liveness fails its exec liveness probe: Unhealthy, then Killing
//     ("Container main failed liveness probe, will be restarted").
func TroublePods(namespace string) []*corev1.Pod {
	oom := BusyboxPod(namespace, PodOOM, "exec dd if=/dev/zero of=/dev/null bs=200M count=1")
	oom.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi")}
	liveness := BusyboxPod(namespace, PodLiveness, "exec sleep 3600")
	liveness.Spec.Containers[0].LivenessProbe = &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}},
		PeriodSeconds:    2,
		FailureThreshold: 1,
	}
	return []*corev1.Pod{
		BusyboxPod(namespace, PodStarted, "exec sleep 3600"),
		BusyboxPod(namespace, PodCrashLoop, "echo failing; exit 3"),
		oom,
		liveness,
	}
}
