package kubemesos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Issue 15, must show 4: a high-priority pod that fits nowhere preempts the fewest lower-priority pods
// on one agent and runs; with preemptionPolicy Never it stays Pending.

// priorityClass creates a cluster-wide PriorityClass named after the env and deletes it at the end.
func (e *env) priorityClass(name string, value int32, policy corev1.PreemptionPolicy) string {
	e.t.Helper()
	pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: e.ns + "-" + name}, Value: value, PreemptionPolicy: &policy}
	if _, err := e.kube.SchedulingV1().PriorityClasses().Create(context.Background(), pc, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("creating PriorityClass %s: %v", pc.Name, err)
	}
	e.t.Cleanup(func() {
		_ = e.kube.SchedulingV1().PriorityClasses().Delete(context.Background(), pc.Name, metav1.DeleteOptions{})
	})
	return pc.Name
}

func cpuSpec(cpu string, class string) corev1.PodSpec {
	spec := podSpec(sleeper)
	spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
	spec.PriorityClassName = class
	spec.TerminationGracePeriodSeconds = ptr.To[int64](5)
	return spec
}

func TestPreemptionFewestVictims(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 2})
	e.waitSchedulableNodes(2)
	ctx := context.Background()
	low := e.priorityClass("low", 10, corev1.PreemptLowerPriority)
	high := e.priorityClass("high", 1000, corev1.PreemptLowerPriority)
	highNever := e.priorityClass("high-never", 1000, corev1.PreemptNever)

	// Agent 0: four 0.9-cpu pods; agent 1: two 1.8-cpu pods. Each has 3.9 cpus (4 less the
	// executor's 0.1), so 0.3 stay free on both. A 1.5-cpu pod needs two victims on agent 0 and one
	// on agent 1: kube-scheduler's ordering (same priorities: smaller sum, fewer victims) picks agent 1.
	a0, a1 := e.agentHostname(0), e.agentHostname(1)
	e.createDeployment(deployment("small", 4, onNode(cpuSpec("900m", low), a0)))
	e.createDeployment(deployment("big", 2, onNode(cpuSpec("1800m", low), a1)))
	small := e.readyPods(selector(map[string]string{"app": "small"}), 4, 2*time.Minute)
	big := e.readyPods(selector(map[string]string{"app": "big"}), 2, 2*time.Minute)

	// The API server clears nominatedNodeName on binding (ClearingNominatedNodeNameAfterBinding): a
	// watch sees it while hi waits for its victim.
	w, err := e.kube.CoreV1().Pods(e.ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=hi"})
	if err != nil {
		t.Fatal(err)
	}
	nominated := make(chan string, 1)
	go func() {
		defer close(nominated)
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok && p.Status.NominatedNodeName != "" && p.Spec.NodeName == "" {
				nominated <- p.Status.NominatedNodeName
				return
			}
		}
	}()
	e.createPod("hi", cpuSpec("1500m", high))
	hi := e.runningPod("hi")
	w.Stop()
	if hi.Spec.NodeName != a1 {
		t.Errorf("hi runs on %s, want %s (one victim there, two on %s)", hi.Spec.NodeName, a1, a0)
	}
	if n := <-nominated; n != a1 {
		t.Errorf("hi's nominatedNodeName while pending %q, want %s", n, a1)
	}
	// Exactly one of big's pods was preempted, with kube-scheduler's event; small's are untouched.
	var victims []string
	e.eventually("one Preempted event", 30*time.Second, func(ctx context.Context) (bool, error) {
		evs, err := e.kube.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=Preempted"})
		if err != nil {
			return false, err
		}
		victims = nil
		for _, ev := range evs.Items {
			want := fmt.Sprintf("Preempted by pod %s on node %s", hi.UID, a1)
			if ev.Message != want {
				return false, fatalf("Preempted event %q, want %q", ev.Message, want)
			}
			victims = append(victims, ev.InvolvedObject.Name)
		}
		return len(victims) == 1, fmt.Errorf("victims %v", victims)
	})
	if victims[0] != big[0].Name && victims[0] != big[1].Name {
		t.Errorf("victim %s is not one of big's pods %s, %s", victims[0], big[0].Name, big[1].Name)
	}
	now, err := e.pods(ctx, selector(map[string]string{"app": "small"}))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range now {
		if i >= len(small) || p.Name != small[i].Name || p.DeletionTimestamp != nil {
			t.Errorf("small's pods changed: %s", p.Name)
		}
	}
	// The victim's replacement (its Deployment's) stays Pending: the room is hi's.
	pods, err := e.pods(ctx, selector(map[string]string{"app": "big"}))
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			running++
		}
	}
	if running != 1 {
		t.Errorf("%d of big's pods running, want 1", running)
	}
	t.Logf("hi on %s after preempting %v", hi.Spec.NodeName, victims)

	// preemptionPolicy Never: another 1.5-cpu high pod fits nowhere and preempts nobody.
	e.createPod("never", cpuSpec("1500m", highNever))
	e.eventually("never's FailedScheduling says it may not preempt", time.Minute, func(ctx context.Context) (bool, error) {
		msgs, err := e.schedulingEvents(ctx, "never")
		if err != nil {
			return false, err
		}
		for _, m := range msgs {
			if strings.HasSuffix(m, "preemption: not eligible due to preemptionPolicy=Never.") {
				return true, nil
			}
		}
		return false, fmt.Errorf("FailedScheduling messages %q", msgs)
	})
	time.Sleep(10 * time.Second) // give a wrong preemption time to show
	p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "never", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.NodeName != "" || p.Status.Phase != corev1.PodPending || p.Status.NominatedNodeName != "" {
		t.Errorf("never: node %q phase %s nominated %q, want Pending unbound and not nominated", p.Spec.NodeName, p.Status.Phase, p.Status.NominatedNodeName)
	}
	evs, err := e.kube.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=Preempted"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs.Items) != 1 {
		t.Errorf("%d Preempted events after never was created, want still 1", len(evs.Items))
	}
}
