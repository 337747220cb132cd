package kubemesos

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
)

// Must show 8, and the earlier bridge's restart lessons: the framework process crashes (SIGKILL)
// while a Deployment of 20 pods is being placed, and comes back: it ends with exactly 20 pods Running
// and 20 RUNNING tasks in Mesos, one per pod, none duplicated, none orphaned, no started pod ended,
// under the same FrameworkID. Then it restarts with CHANGED flags (offer hold, refuse filter, pod overhead,
// and even the executor's resources): the running pods and their executors stay untouched, and new
// pods still land, on the executors already running.
func TestFrameworkRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	e.createDeployment(deployment("many", 20, podSpec(sleeper)))
	sel := selector(map[string]string{"app": "many"})

	// Crash once the first pods run, while others are still being placed or started.
	var bound, runningAtCrash int
	e.eventually("the first pod running", time.Minute, func(ctx context.Context) (bool, error) {
		pods, err := e.pods(ctx, sel)
		if err != nil {
			return false, err
		}
		bound, runningAtCrash = 0, 0
		for _, p := range pods {
			if p.Spec.NodeName != "" {
				bound++
			}
			if p.Status.Phase == corev1.PodRunning {
				runningAtCrash++
			}
		}
		return runningAtCrash > 0, nil
	})
	e.stopFramework(true)
	t.Logf("framework killed with %d of 20 pods bound and %d running", bound, runningAtCrash)
	e.startFramework()

	// 20 live pods, each with one RUNNING task. (A pod whose launch the crash broke, e.g. while its
	// agent was fetching the executor from the dying framework's HTTP server, may have failed before
	// it ever ran; its ReplicaSet replaced it. That is allowed, killing a started pod is not.)
	pods := e.waitLivePods(sel, 20, 3*time.Minute)
	e.waitDeploymentReady("many", 20, time.Minute)
	st, err := e.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ids := frameworkIDs(st, frameworkName); len(ids) != 1 {
		t.Errorf("Mesos knows %d frameworks named %s (%v), want 1: the restarted framework must resume its FrameworkID", len(ids), frameworkName, ids)
	}
	ts := tasksOf(st, frameworkName)
	if len(ts.Active) != 20 || len(ts.Unreachable) != 0 {
		t.Errorf("Mesos: %d active and %d unreachable tasks, want 20 and 0", len(ts.Active), len(ts.Unreachable))
	}
	all, err := e.pods(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	byUID := map[string]corev1.Pod{}
	for _, p := range all {
		byUID[string(p.UID)] = p
	}
	endedAtCrash := map[string]bool{}
	for _, task := range ts.Completed {
		p, ok := byUID[taskPodUID(task)]
		t.Logf("task ended around the crash: %s %v (pod %s %s %s)", task.TaskID.Value, task.GetState(), p.Name, p.Status.Phase, containerSummary(&p))
		if !ok || task.GetState() != mesos.TASK_FAILED || podEverRan(&p) {
			t.Errorf("task %s ended %v and its pod ran or is gone: the restart ended a started pod", task.TaskID.Value, task.GetState())
		}
		endedAtCrash[task.TaskID.Value] = true
	}
	if len(ts.Completed) > 1 {
		t.Errorf("%d tasks ended around the crash; at most the one being launched may", len(ts.Completed))
	}
	e.checkOneExecutorPerAgent(st)
	if diff := e.checkAgentsAgree(st); diff != "" {
		t.Errorf("agents and master disagree: %s", diff)
	}
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.RestartCount != 0 {
				t.Errorf("pod %s: container restarted %d times", p.Name, cs.RestartCount)
			}
		}
	}

	// Restart with changed flags.
	uids := map[string]bool{}
	for _, p := range pods {
		uids[string(p.UID)] = true
	}
	executors := e.executorContainers()
	e.stopFramework(false)
	e.startFramework("--offer-hold=200ms", "--refuse-seconds=2", "--pod-overhead-cpus=0.05", "--pod-overhead-mem=16", "--executor-cpus=0.2", "--executor-mem=96")
	e.scale("many", 26)
	pods = e.waitLivePods(sel, 26, 3*time.Minute)
	e.waitDeploymentReady("many", 26, time.Minute)

	st, err = e.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts = tasksOf(st, frameworkName)
	for _, task := range ts.Completed {
		if !endedAtCrash[task.TaskID.Value] {
			t.Errorf("task %s ended %v across the restart with changed flags; no pod may end", task.TaskID.Value, task.GetState())
		}
	}
	kept, added := 0, 0
	for _, task := range ts.Active {
		cpus := scalarOf(task.Resources, "cpus")
		want := 0.15 // 100m requested + the new overhead
		if uids[taskPodUID(task)] {
			kept++
			want = 0.1
		} else {
			added++
		}
		if math.Abs(cpus-want) > 1e-6 {
			t.Errorf("task %s has %.3f cpus, want %.3f", task.TaskID.Value, cpus, want)
		}
	}
	if kept != 20 || added != 6 {
		t.Errorf("%d tasks kept and %d added, want 20 and 6", kept, added)
	}
	if diff := changedEntries(executors, e.executorContainers()); diff != "" {
		t.Errorf("kubemesos executors changed across the restart with changed flags (agent: before -> after): %s", diff)
	}
	e.checkOneExecutorPerAgent(st)
	if diff := e.checkAgentsAgree(st); diff != "" {
		t.Errorf("agents and master disagree: %s", diff)
	}
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.RestartCount != 0 {
				t.Errorf("pod %s: container restarted %d times", p.Name, cs.RestartCount)
			}
		}
	}
}

// podEverRan reports whether any container of the pod started.
func podEverRan(p *corev1.Pod) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil || cs.RestartCount > 0 {
			return true
		}
	}
	return false
}

// executorContainers maps each agent to the container ID of its live kubemesos executor, as the
// agents themselves know it: a relaunched executor has a new container ID.
func (e *env) executorContainers() map[string]string {
	out := map[string]string{}
	for _, a := range e.sim.Agents() {
		for _, ex := range a.Executors() {
			if ex.Info.ExecutorID.Value == executorID {
				out[a.ID().Value] = ex.ContainerID.Value
			}
		}
	}
	return out
}

// changedEntries lists the entries of a that b lacks or changes (new entries of b are fine: an agent
// without an executor may get one).
func changedEntries(a, b map[string]string) string {
	var out string
	for k, v := range a {
		if b[k] != v {
			out += fmt.Sprintf(" %s: %q -> %q", k, v, b[k])
		}
	}
	return out
}
