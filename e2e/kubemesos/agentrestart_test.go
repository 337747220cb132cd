package kubemesos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAgentRestart: an operator restarts mesos-agent (an upgrade) under running pods. The framework
// checkpoints, so the agent recovers its executors, which re-subscribe: the pods keep running in the
// same containers (same container IDs and start times, no restarts), the Node stays or returns
// Ready, a pod created while the agent was down runs on it afterwards, and `kubectl logs` and `exec`
// work through the recovered executor.
func TestAgentRestart(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	node := e.agentHostname(0)
	// Every pod of the test carries group=restart, so that waitRunningPods, which matches Mesos' tasks
	// to the pods selected, sees the latecomer too.
	group := map[string]string{"group": "restart"}
	d := deployment("steady", 3, podSpec("echo started; "+sleeper))
	d.Spec.Template.Labels["group"] = "restart"
	e.createDeployment(d)
	sel := selector(group)
	before := e.waitRunningPods(sel, 3, 2*time.Minute)
	containers := func(pods []corev1.Pod) map[string]string {
		out := map[string]string{}
		for _, p := range pods {
			for _, cs := range p.Status.ContainerStatuses {
				started := ""
				if cs.State.Running != nil {
					started = cs.State.Running.StartedAt.String()
				}
				out[p.Name] = fmt.Sprintf("%s started %s restarts %d", cs.ContainerID, started, cs.RestartCount)
			}
		}
		return out
	}
	want := containers(before)

	st, err := e.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	agentID := ""
	for id, h := range agentHostnames(st) {
		if h == node {
			agentID = id
		}
	}
	restarted := make(chan error, 1)
	go func() {
		_, err := e.sim.RestartAgent(agentID, 5*time.Second)
		restarted <- err
	}()
	// A pod created while the agent is down waits for it: its Node is the only one.
	time.Sleep(time.Second)
	late := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "latecomer", Labels: map[string]string{"group": "restart", "pod": "latecomer"}},
		Spec: onNode(podSpec(sleeper), node)}
	if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, late, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := <-restarted; err != nil {
		t.Fatalf("restarting agent %s: %v", agentID, err)
	}
	t.Logf("agent %s (%s) restarted", agentID, node)

	e.runningPod("latecomer")
	all := e.waitRunningPods(sel, 4, 2*time.Minute)
	var after []corev1.Pod
	for _, p := range all {
		if p.Name != "latecomer" {
			after = append(after, p)
		}
	}
	if got := containers(after); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pods' containers after the restart:\n got %v\nwant %v", got, want)
	}
	e.eventually("the Node Ready", time.Minute, func(ctx context.Context) (bool, error) {
		n, err := e.kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return nodeReadyStatus(n) == corev1.ConditionTrue, nil
	})
	// The pods keep running (nothing restarts them a little later either).
	time.Sleep(5 * time.Second)
	all = e.waitRunningPods(sel, 4, time.Minute)
	delete(containers(all), "latecomer")
	if got := steadyOnly(containers(all)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pods' containers a while after the restart:\n got %v\nwant %v", got, want)
	}

	p := after[0].Name
	e.eventually("kubectl logs after the restart", time.Minute, func(ctx context.Context) (bool, error) {
		stdout, stderr, code, err := e.kubectl(ctx, "logs", p)
		if err != nil || code != 0 {
			return false, fmt.Errorf("kubectl logs: exit %d, %v: %s", code, err, stderr)
		}
		return strings.Contains(stdout, "started"), nil
	})
	e.eventually("kubectl exec after the restart", time.Minute, func(ctx context.Context) (bool, error) {
		stdout, stderr, code, err := e.kubectl(ctx, "exec", p, "--", "sh", "-c", "echo $((6*7))")
		if err != nil || code != 0 {
			return false, fmt.Errorf("kubectl exec: exit %d, %v: %s", code, err, stderr)
		}
		return stdout == "42\n", nil
	})
}

func steadyOnly(m map[string]string) map[string]string {
	delete(m, "latecomer")
	return m
}
