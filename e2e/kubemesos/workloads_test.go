package kubemesos

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// sleeper runs until SIGTERM, then exits 0 at once (the shell's wait is interrupted by the trap).
const sleeper = "trap 'exit 0' TERM; while true; do sleep 5 & wait $!; done"

// container is a busybox-style container with an explicit command (the simulator runs it as a local
// process) and small requests.
func container(script string) corev1.Container {
	return corev1.Container{
		Name:    "main",
		Image:   "busybox",
		Command: []string{"sh", "-c", script},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("32Mi"),
		}},
	}
}

func podSpec(script string) corev1.PodSpec {
	return corev1.PodSpec{
		Containers:                    []corev1.Container{container(script)},
		TerminationGracePeriodSeconds: ptr.To[int64](10),
	}
}

func deployment(name string, replicas int32, spec corev1.PodSpec) *appsv1.Deployment {
	l := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l}, Spec: spec},
		},
	}
}

func job(name string, restart corev1.RestartPolicy, backoffLimit int32, script string) *batchv1.Job {
	spec := podSpec(script)
	spec.RestartPolicy = restart
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To(backoffLimit),
			Template:     corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"job": name}}, Spec: spec},
		},
	}
}

func (e *env) createDeployment(d *appsv1.Deployment) *appsv1.Deployment {
	e.t.Helper()
	out, err := e.kube.AppsV1().Deployments(e.ns).Create(context.Background(), d, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatalf("creating deployment %s: %v", d.Name, err)
	}
	return out
}

func (e *env) scale(name string, replicas int32) {
	e.t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := e.kube.AppsV1().Deployments(e.ns).GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = replicas
		_, err = e.kube.AppsV1().Deployments(e.ns).UpdateScale(ctx, name, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		e.t.Fatalf("scaling %s to %d: %v", name, replicas, err)
	}
}

// pods lists the namespace's pods matching a label selector ("" = all).
func (e *env) pods(ctx context.Context, selector string) ([]corev1.Pod, error) {
	list, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items, nil
}

// waitRunningPods waits until exactly n pods match selector and all of them are Running and Ready
// (terminating or finished ones count as extra), and until Mesos shows exactly their tasks running.
// It returns those pods.
func (e *env) waitRunningPods(selector string, n int, timeout time.Duration) []corev1.Pod {
	e.t.Helper()
	return e.waitPods(selector, n, timeout, false)
}

// waitLivePods is waitRunningPods ignoring finished pods and pods being deleted (pods of a lost
// agent that no one can confirm gone).
func (e *env) waitLivePods(selector string, n int, timeout time.Duration) []corev1.Pod {
	e.t.Helper()
	return e.waitPods(selector, n, timeout, true)
}

func (e *env) waitPods(selector string, n int, timeout time.Duration, onlyLive bool) []corev1.Pod {
	e.t.Helper()
	var got []corev1.Pod
	what := fmt.Sprintf("exactly %d pods %q, all Running+Ready with one RUNNING Mesos task each", n, selector)
	if onlyLive {
		what = fmt.Sprintf("exactly %d live pods %q, all Running+Ready with one RUNNING Mesos task each", n, selector)
	}
	e.eventually(what, timeout, func(ctx context.Context) (bool, error) {
		all, err := e.pods(ctx, selector)
		if err != nil {
			return false, err
		}
		var pods []corev1.Pod
		for _, p := range all {
			if onlyLive && (p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
				continue
			}
			pods = append(pods, p)
		}
		if len(pods) != n {
			return false, fmt.Errorf("%d pods", len(pods))
		}
		for _, p := range pods {
			if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || !podReady(&p) {
				return false, fmt.Errorf("pod %s: phase %s ready %v deleting %v", p.Name, p.Status.Phase, podReady(&p), p.DeletionTimestamp != nil)
			}
		}
		st, err := e.mesosState(ctx)
		if err != nil {
			return false, err
		}
		if diff := checkTasksMatchPods(st, pods); diff != "" {
			return false, fmt.Errorf("mesos: %s", diff)
		}
		got = pods
		return true, nil
	})
	return got
}

// waitDeploymentReady waits for the Deployment's status to show replicas ready and available, with
// no old or surplus replicas left.
func (e *env) waitDeploymentReady(name string, replicas int32, timeout time.Duration) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("deployment %s %d/%d ready", name, replicas, replicas), timeout, func(ctx context.Context) (bool, error) {
		d, err := e.kube.AppsV1().Deployments(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		s := d.Status
		ok := s.ObservedGeneration >= d.Generation && s.Replicas == replicas && s.ReadyReplicas == replicas &&
			s.AvailableReplicas == replicas && s.UpdatedReplicas == replicas
		if !ok {
			return false, fmt.Errorf("status %+v", s)
		}
		return true, nil
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func nodeReadyStatus(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

func containerSummary(p *corev1.Pod) string {
	var parts []string
	for _, cs := range p.Status.ContainerStatuses {
		s := cs.Name + ":"
		switch {
		case cs.State.Running != nil:
			s += "running"
		case cs.State.Terminated != nil:
			s += fmt.Sprintf("terminated(%d,%s)", cs.State.Terminated.ExitCode, cs.State.Terminated.Reason)
		case cs.State.Waiting != nil:
			s += "waiting(" + cs.State.Waiting.Reason + ")"
		}
		s += fmt.Sprintf(" restarts=%d", cs.RestartCount)
		parts = append(parts, s)
	}
	if p.Status.Reason != "" {
		parts = append(parts, "reason="+p.Status.Reason)
	}
	return strings.Join(parts, " ")
}

func selector(kv map[string]string) string { return labels.SelectorFromSet(kv).String() }

// schedulingEvents returns the messages of FailedScheduling Events of a pod.
func (e *env) schedulingEvents(ctx context.Context, pod string) ([]string, error) {
	evs, err := e.kube.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + pod + ",reason=FailedScheduling",
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ev := range evs.Items {
		out = append(out, ev.Message)
	}
	return out, nil
}
