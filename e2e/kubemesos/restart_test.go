package kubemesos

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Must show 8, and the earlier bridge's restart lessons: the framework process crashes (SIGKILL)
// while a Deployment of 20 pods is being placed, and comes back: it ends with exactly 20 pods Running
// and 20 RUNNING tasks in Mesos, one per pod, none duplicated, none orphaned, no task killed, under
// the same FrameworkID. Then it restarts with CHANGED flags (offer hold, refuse filter, pod overhead,
// and even the executor's resources): the running pods and their executors stay untouched, and new
// pods still land, on the executors already running.
func TestFrameworkRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	e.createDeployment(deployment("many", 20, podSpec(sleeper)))
	sel := selector(map[string]string{"app": "many"})

	// Crash as soon as placement has begun.
	var bound, runningAtCrash int
	e.eventually("the first pod bound", time.Minute, func(ctx context.Context) (bool, error) {
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
		return bound > 0, nil
	})
	e.stopFramework(true)
	t.Logf("framework killed with %d of 20 pods bound and %d running", bound, runningAtCrash)
	e.startFramework()

	pods := e.waitRunningPods(sel, 20, 3*time.Minute)
	e.waitDeploymentReady("many", 20, time.Minute)
	st, err := e.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ids := frameworkIDs(st, frameworkName); len(ids) != 1 {
		t.Errorf("Mesos knows %d frameworks named %s (%v), want 1: the restarted framework must resume its FrameworkID", len(ids), frameworkName, ids)
	}
	ts := tasksOf(st, frameworkName)
	if len(ts.Active) != 20 || len(ts.Completed) != 0 || len(ts.Unreachable) != 0 {
		t.Errorf("Mesos: %d active, %d completed, %d unreachable tasks, want 20, 0, 0", len(ts.Active), len(ts.Completed), len(ts.Unreachable))
	}
	for _, task := range ts.Completed {
		t.Logf("completed task %s: %v", task.TaskID.Value, task.GetState())
	}
	e.checkOneExecutorPerAgent(st)
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
	pods = e.waitRunningPods(sel, 26, 3*time.Minute)
	e.waitDeploymentReady("many", 26, time.Minute)

	st, err = e.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts = tasksOf(st, frameworkName)
	if len(ts.Completed) != 0 {
		t.Errorf("Mesos: %d completed tasks after the restart with changed flags, want 0 (no pod ended)", len(ts.Completed))
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
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.RestartCount != 0 {
				t.Errorf("pod %s: container restarted %d times", p.Name, cs.RestartCount)
			}
		}
	}
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
