package kubemesos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Must show 4: a pod asking for more cpu than any agent has stays Pending, unbound and without a
// task, with a FailedScheduling Event that names cpu.
func TestPodTooBigForAnyAgent(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	spec := podSpec(sleeper)
	spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("16") // agents have 4
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "huge"}, Spec: spec}
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A pod that fits, created after it, still runs: the big one blocks nothing.
	small := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "small", Labels: map[string]string{"app": "small"}}, Spec: podSpec(sleeper)}
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, small, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// (Right after the framework starts, new Nodes still carry the not-ready taint the API server
	// puts on every new Node, and the first event may say so; wait for the one about cpu.)
	var msg string
	e.eventually("a FailedScheduling event for pod huge that names cpu", time.Minute, func(ctx context.Context) (bool, error) {
		msgs, err := e.schedulingEvents(ctx, "huge")
		if err != nil {
			return false, err
		}
		for _, m := range msgs {
			if strings.Contains(strings.ToLower(m), "cpu") {
				msg = m
				return true, nil
			}
		}
		return false, fmt.Errorf("FailedScheduling messages %q", msgs)
	})
	if !strings.Contains(msg, "0/3") {
		t.Errorf("FailedScheduling message %q does not count the 3 agents", msg)
	}
	e.waitRunningPods(selector(map[string]string{"app": "small"}), 1, time.Minute)

	got, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, "huge", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != corev1.PodPending || got.Spec.NodeName != "" {
		t.Errorf("pod huge: phase %s node %q, want Pending and unbound", got.Status.Phase, got.Spec.NodeName)
	}
	var schedCond *corev1.PodCondition
	for i, c := range got.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			schedCond = &got.Status.Conditions[i]
		}
	}
	if schedCond == nil || schedCond.Status != corev1.ConditionFalse || schedCond.Reason != corev1.PodReasonUnschedulable {
		t.Errorf("pod huge: PodScheduled condition %+v, want False/Unschedulable", schedCond)
	}
	st, err := e.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts := tasksOf(st, frameworkName)
	for _, task := range append(ts.Active, ts.Completed...) {
		if taskPodUID(task) == string(got.UID) {
			t.Errorf("Mesos has task %s (%v) for the unschedulable pod", task.TaskID.Value, task.GetState())
		}
	}
}

// Must show 5: pods with the same hostPort never share an agent (containers share the agent's
// network, so hostPort equals containerPort). With 3 agents and 4 replicas, 3 run
// on 3 distinct agents (each task holding the port in its Mesos resources) and the 4th stays Pending.
func TestHostPortSpread(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	const port = 31500
	spec := podSpec(sleeper)
	spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: port, HostPort: port, Protocol: corev1.ProtocolTCP}}
	e.createDeployment(deployment("ports", 4, spec))
	sel := selector(map[string]string{"app": "ports"})

	var running, pending []corev1.Pod
	e.eventually("3 pods running on distinct agents and 1 pending with FailedScheduling", 2*time.Minute, func(ctx context.Context) (bool, error) {
		pods, err := e.pods(ctx, sel)
		if err != nil {
			return false, err
		}
		running, pending = nil, nil
		for _, p := range pods {
			switch {
			case p.Status.Phase == corev1.PodRunning && podReady(&p):
				running = append(running, p)
			case p.Status.Phase == corev1.PodPending && p.Spec.NodeName == "":
				pending = append(pending, p)
			}
		}
		if len(running) != 3 || len(pending) != 1 || len(pods) != 4 {
			return false, fmt.Errorf("%d pods: %d running, %d pending unbound", len(pods), len(running), len(pending))
		}
		msgs, err := e.schedulingEvents(ctx, pending[0].Name)
		return err == nil && len(msgs) > 0, err
	})
	nodes := map[string]string{}
	for _, p := range running {
		if other, ok := nodes[p.Spec.NodeName]; ok {
			t.Errorf("pods %s and %s share Node %s and hostPort %d", other, p.Name, p.Spec.NodeName, port)
		}
		nodes[p.Spec.NodeName] = p.Name
	}
	msgs, _ := e.schedulingEvents(ctx, pending[0].Name)
	t.Logf("FailedScheduling of %s: %q", pending[0].Name, msgs)

	st, err := e.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := checkTasksMatchPods(st, running); diff != "" {
		t.Errorf("Mesos tasks do not match the running pods: %s", diff)
	}
	agents := map[string]bool{}
	for _, task := range tasksOf(st, frameworkName).Active {
		if ports := portsOf(task.Resources); !slices.Equal(ports, []uint64{port}) {
			t.Errorf("task %s holds ports %v, want [%d]", task.TaskID.Value, ports, port)
		}
		if agents[task.AgentID.Value] {
			t.Errorf("two tasks with port %d on agent %s", port, task.AgentID.Value)
		}
		agents[task.AgentID.Value] = true
	}
}
