package kubemesos

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// BenchmarkDeploymentRollout measures what made the earlier bridge slow (one pod per offer and an
// offer cycle per pod: 7-8 s to a rolling update's first pod): the time from creating a Deployment
// of 10 replicas to its first pod Running, and to all 10 Running, through the real control plane,
// the framework process and mesossim. Each iteration uses a new Deployment; tearing down the
// previous one is not timed.
//
// The agents isolate (the default) or run process mode; compare pod start latency with
//
//	cd e2e && go test ./kubemesos/ -run '^$' -bench DeploymentRollout -benchtime 5x
//	cd e2e && go test ./kubemesos/ -run '^$' -bench DeploymentRollout -benchtime 5x -args -isolation=posix/cpu,posix/mem
func BenchmarkDeploymentRollout(b *testing.B) {
	e := newEnv(b, envOptions{})
	b.Logf("agents: %s", e.mode)
	ctx := context.Background()
	const replicas = 10
	var first, all time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("rollout-%d", i)
		sel := selector(map[string]string{"app": name})
		start := time.Now()
		e.createDeployment(deployment(name, replicas, podSpec(sleeper)))
		var sawFirst bool
		err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			pods, err := e.pods(ctx, sel)
			if err != nil {
				return false, nil
			}
			running := 0
			for _, p := range pods {
				if p.Status.Phase == corev1.PodRunning {
					running++
				}
			}
			if running > 0 && !sawFirst {
				sawFirst = true
				first += time.Since(start)
			}
			return running == replicas, nil
		})
		if err != nil {
			b.Fatalf("deployment %s not running: %v", name, err)
		}
		all += time.Since(start)
		b.Logf("iteration %d: all %d pods running after %v", i, replicas, time.Since(start).Round(time.Millisecond))

		b.StopTimer()
		if err := e.kube.AppsV1().Deployments(e.ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			b.Fatal(err)
		}
		err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			pods, err := e.pods(ctx, sel)
			return err == nil && len(pods) == 0, nil
		})
		if err != nil {
			b.Fatalf("pods of %s not gone: %v", name, err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "ms/first-pod")
	b.ReportMetric(float64(all.Milliseconds())/float64(b.N), "ms/all-pods")
}

// BenchmarkPodStart measures one pod's start, from its creation to Ready, through the real control
// plane, the framework process and mesossim's isolating agents: on the pod network (a sandbox
// container joined to the CNI bridge network, then the pod's container under it) and with
// --pod-network host (the container alone, on the agent's network). Each iteration creates a new
// pod on an agent whose executor already runs; deleting the previous one is not timed.
//
//	cd e2e && go test ./kubemesos/ -run '^$' -bench PodStart -benchtime 10x
func BenchmarkPodStart(b *testing.B) {
	for _, network := range []string{podNetworkName, "host"} {
		b.Run("network="+network, func(b *testing.B) {
			if m := agentMode(); !m.Isolating {
				b.Skipf("the agents run %s", m)
			}
			e := newEnv(b, envOptions{Agents: 1, PodNetwork: network != "host", FrameworkArgs: []string{"--pod-network=" + network}})
			ctx := context.Background()
			spec := podSpec(sleeper)
			spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
			// A pod that stays: the agent's executor is up before the first timed pod (its start
			// would count once per run otherwise).
			warm := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "warm", Labels: map[string]string{"pod": "warm"}}, Spec: spec}
			if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, warm, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			e.readyPods("pod=warm", 1, 3*time.Minute)
			var total time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				name := fmt.Sprintf("start-%d", i)
				start := time.Now()
				if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
				err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
					p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
					if err == nil && p.Status.Phase == corev1.PodFailed {
						return false, fmt.Errorf("pod failed: %s %s", p.Status.Reason, p.Status.Message)
					}
					return err == nil && podReady(p), nil
				})
				if err != nil {
					b.Fatalf("pod %s not Ready: %v", name, err)
				}
				took := time.Since(start)
				total += took
				b.StopTimer()
				p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					b.Fatal(err)
				}
				b.Logf("pod %s Ready after %v, podIP %s", name, took.Round(time.Millisecond), p.Status.PodIP)
				if err := e.kube.CoreV1().Pods(e.ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
					b.Fatal(err)
				}
				err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
					_, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
					return apierrors.IsNotFound(err), nil
				})
				if err != nil {
					b.Fatalf("pod %s not gone: %v", name, err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/pod-ready")
		})
	}
}
