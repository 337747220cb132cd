package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const (
	// deployments churned, each scaled between 0 and maxReplicas.
	deployments = 3
	maxReplicas = 10
	// sleeper runs until SIGTERM, then exits 0 at once.
	sleeper = "trap 'exit 0' TERM; while true; do sleep 5 & wait $!; done"
)

// churner creates, scales and deletes workloads until ctx ends or target pods were created.
type churner struct {
	w      *world
	rng    *rand.Rand
	target int

	scales, jobs, deletions int
}

func podSpec(script string) corev1.PodSpec {
	return corev1.PodSpec{
		Containers: []corev1.Container{{
			Name: "main", Image: "busybox", Command: []string{"sh", "-c", script},
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("32Mi")}},
		}},
		TerminationGracePeriodSeconds: ptr.To[int64](2),
	}
}

func (c *churner) run(ctx context.Context) {
	kube := c.w.kube
	for i := range deployments {
		l := map[string]string{"app": fmt.Sprintf("web-%d", i)}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: l["app"]},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: l},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l}, Spec: podSpec(sleeper)}},
		}
		if _, err := kube.AppsV1().Deployments(namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			c.w.log.WithError(err).Error("creating a Deployment")
		}
	}
	for ctx.Err() == nil && c.w.podsCreated() < c.target {
		// Every draw of the step is made up front, whatever the step finds: the seed fixes the sequence.
		pause, n, which, replicas, secs, pick := 500+c.rng.IntN(1000), c.rng.IntN(10), c.rng.IntN(deployments),
			int32(c.rng.IntN(maxReplicas+1)), 1+c.rng.IntN(4), c.rng.Uint64()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(pause) * time.Millisecond):
		}
		switch {
		case n < 5: // scale a Deployment
			name := fmt.Sprintf("web-%d", which)
			s, err := kube.AppsV1().Deployments(namespace).GetScale(ctx, name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			s.Spec.Replicas = replicas
			if _, err := kube.AppsV1().Deployments(namespace).UpdateScale(ctx, name, s, metav1.UpdateOptions{}); err == nil {
				c.scales++
			}
		case n < 7: // a Job of 3 pods that each run a few seconds
			c.jobs++
			spec := podSpec(fmt.Sprintf("sleep %d", secs))
			spec.RestartPolicy = corev1.RestartPolicyNever
			j := &batchv1.Job{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("job-%d", c.jobs)},
				Spec: batchv1.JobSpec{Completions: ptr.To[int32](3), Parallelism: ptr.To[int32](3), BackoffLimit: ptr.To[int32](20),
					Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"job": "chaos"}}, Spec: spec}},
			}
			if _, err := kube.BatchV1().Jobs(namespace).Create(ctx, j, metav1.CreateOptions{}); err != nil {
				c.jobs--
			}
		default: // delete a random pod
			pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
			if err != nil || len(pods.Items) == 0 {
				continue
			}
			p := pods.Items[pick%uint64(len(pods.Items))]
			if kube.CoreV1().Pods(namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}) == nil {
				c.deletions++
			}
		}
	}
}
