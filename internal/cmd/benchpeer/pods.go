package main

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/k8sevents/otelcol-k8sevents/internal/kubetest"
)

// podsPerWorkload is how many of the -pods Pods share a ReplicaSet and a
// Deployment.
const podsPerWorkload = 20

// createPods creates the -pods Pods that the Events are about, in turn: for
// every podsPerWorkload of them a Deployment and its ReplicaSet, with the
// owner references their controllers would set (there are none here), and
// the Pods, which stay Pending (there is no node). The owners variant looks
// each Pod and ReplicaSet up once.
func (b *bench) createPods(ctx context.Context) error {
	if b.s.pods <= 0 {
		return nil
	}
	started := time.Now()
	// A Pod needs its namespace's default ServiceAccount, which only the
	// controllers create.
	_, err := b.client.CoreV1().ServiceAccounts(benchNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create serviceaccount default: %w", err)
	}
	yes := true
	controller := func(kind, name string, uid types.UID) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: &yes, BlockOwnerDeletion: &yes}}
	}
	b.pods = make([]corev1.ObjectReference, b.s.pods)
	workloads := (b.s.pods + podsPerWorkload - 1) / podsPerWorkload
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	go func() {
		defer close(jobs)
		for w := range workloads {
			select {
			case jobs <- w:
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range min(b.s.workers, workloads) {
		wg.Go(func() {
			for w := range jobs {
				if err := b.createWorkload(ctx, w, controller); err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
					cancel()
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	b.logger.Printf("created %d Pods of %d ReplicaSets and Deployments in %s", b.s.pods, workloads, time.Since(started).Round(100*time.Millisecond))
	return nil
}

// createWorkload creates Deployment w, its ReplicaSet and its Pods, and
// records the Pods in b.pods.
func (b *bench) createWorkload(ctx context.Context, w int, controller func(kind, name string, uid types.UID) []metav1.OwnerReference) error {
	name := fmt.Sprintf("app-%03d", w)
	first, last := w*podsPerWorkload, min(b.s.pods, (w+1)*podsPerWorkload)
	d, err := b.client.AppsV1().Deployments(benchNamespace).Create(ctx, kubetest.Deployment(benchNamespace, name, int32(last-first), "10m", "16Mi"), metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create deployment %s: %w", name, err)
	}
	rs, err := b.client.AppsV1().ReplicaSets(benchNamespace).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-5f7d9c", Labels: d.Spec.Template.Labels, OwnerReferences: controller("Deployment", d.Name, d.UID)},
		Spec:       appsv1.ReplicaSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create replicaset of %s: %w", name, err)
	}
	for i := first; i < last; i++ {
		p, err := b.client.CoreV1().Pods(benchNamespace).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%05d", rs.Name, i), Labels: d.Spec.Template.Labels, OwnerReferences: controller("ReplicaSet", rs.Name, rs.UID)},
			Spec:       d.Spec.Template.Spec,
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create pod %d: %w", i, err)
		}
		b.pods[i] = corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: benchNamespace, Name: p.Name, UID: p.UID}
	}
	return nil
}
