package kubemesos

import (
	"context"
	"fmt"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Must show 1: a Deployment of 3 replicas reaches 3/3 Ready on Nodes that are the Mesos agents, with
// 3 RUNNING tasks of the framework in Mesos; scaling to 10 and back to 2 converges on both sides and
// leaves no task behind.
func TestDeploymentScale(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createDeployment(deployment("web", 3, podSpec(sleeper)))
	sel := selector(map[string]string{"app": "web"})

	pods := e.waitRunningPods(sel, 3, 2*time.Minute)
	e.waitDeploymentReady("web", 3, time.Minute)
	e.checkPodsOnAgents(pods)

	e.scale("web", 10)
	pods = e.waitRunningPods(sel, 10, 2*time.Minute)
	e.waitDeploymentReady("web", 10, time.Minute)
	e.checkPodsOnAgents(pods)
	all := map[string]bool{}
	for _, p := range pods {
		all[string(p.UID)] = true
	}

	e.scale("web", 2)
	pods = e.waitRunningPods(sel, 2, 2*time.Minute)
	e.waitDeploymentReady("web", 2, time.Minute)

	// The 8 removed pods' tasks ended KILLED; nothing else of the framework is active.
	ctx := context.Background()
	st, err := e.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts := tasksOf(st, frameworkName)
	if len(ts.Active) != 2 || len(ts.Unreachable) != 0 {
		t.Errorf("Mesos: %d active and %d unreachable tasks of the framework, want 2 and 0", len(ts.Active), len(ts.Unreachable))
	}
	killed := 0
	for _, task := range ts.Completed {
		if all[taskPodUID(task)] {
			if task.GetState() != mesos.TASK_KILLED {
				t.Errorf("task %s of a scaled-down pod ended %v, want TASK_KILLED", task.TaskID.Value, task.GetState())
			}
			killed++
		}
	}
	if killed != 8 {
		t.Errorf("%d completed tasks of scaled-down pods, want 8", killed)
	}
	// Each agent still runs exactly one kubemesos executor, however many pods came and went.
	e.checkOneExecutorPerAgent(st)
	if diff := e.checkAgentsAgree(st); diff != "" {
		t.Errorf("agents and master disagree: %s", diff)
	}
}

// checkPodsOnAgents: every pod's Node is a Mesos agent of this cluster (Node name = agent hostname,
// labels from the agent) and its Mesos task runs on that agent.
func (e *env) checkPodsOnAgents(pods []corev1.Pod) {
	e.t.Helper()
	ctx := context.Background()
	st, err := e.mesosState(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	hosts := agentHostnames(st)
	byHost := map[string]string{}
	for id, h := range hosts {
		byHost[h] = id
	}
	for _, p := range pods {
		agentID, ok := byHost[p.Spec.NodeName]
		if !ok {
			e.t.Errorf("pod %s is bound to %q, not to a Mesos agent (agents: %v)", p.Name, p.Spec.NodeName, hosts)
			continue
		}
		node, err := e.kube.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			e.t.Errorf("Node of pod %s: %v", p.Name, err)
			continue
		}
		wantLabels := map[string]string{
			"kubernetes.io/hostname": p.Spec.NodeName,
			"kubemesos.io/agent-id":  agentID,
			"kubemesos.io/attr-rack": fmt.Sprintf("r%c", p.Spec.NodeName[len(p.Spec.NodeName)-1]),
		}
		for k, v := range wantLabels {
			if node.Labels[k] != v {
				e.t.Errorf("Node %s: label %s=%q, want %q", node.Name, k, node.Labels[k], v)
			}
		}
		if nodeReadyStatus(node) != corev1.ConditionTrue {
			e.t.Errorf("Node %s is not Ready", node.Name)
		}
	}
	if diff := checkTasksMatchPods(st, pods); diff != "" {
		e.t.Errorf("Mesos tasks do not match the pods: %s", diff)
	}
}

// checkOneExecutorPerAgent: every agent runs at most one kubemesos executor.
func (e *env) checkOneExecutorPerAgent(st *master.Response_GetState) {
	e.t.Helper()
	perAgent := map[string]int{}
	for _, ex := range st.GetGetExecutors().GetExecutors() {
		if ex.ExecutorInfo.ExecutorID.Value == executorID {
			perAgent[ex.AgentID.Value]++
		}
	}
	for agent, n := range perAgent {
		if n != 1 {
			e.t.Errorf("agent %s has %d kubemesos executors, want 1", agent, n)
		}
	}
}
