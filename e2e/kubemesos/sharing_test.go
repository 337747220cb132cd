package kubemesos

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/master"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Must show 7: a second, plain command-task framework ("batch") keeps getting its share of the
// cluster while kubemesos runs pods, and neither launches onto resources the other holds.
//
// Both want more than the cluster has (12 cpus): batch keeps 8 short tasks of 1 cpu going, kubemesos
// runs a Deployment of 8 pods of 1.5 cpu. Pods that do not fit stay Pending and kubemesos keeps
// receiving offers it cannot use: if it held them (the earlier bridge's offer leak), batch would
// starve. Mesos' DRF allocator decides who gets what; the test checks that batch keeps completing
// tasks and holds a fair part of the cluster, and, on every sample, that the tasks and executors of
// both frameworks fit in each agent without sharing a port.
func TestSharesClusterWithAnotherFramework(t *testing.T) {
	e := newEnv(t, envOptions{})
	batch := startBatchFramework(t, e.sim.URL, "batch", 8, 1, 64, func(n int) string { return fmt.Sprintf("sleep %d", 1+n%3) })
	e.eventually("batch running 8 tasks", time.Minute, func(ctx context.Context) (bool, error) {
		s := batch.stats()
		return s.Running == 8, nil
	})

	spec := podSpec(sleeper)
	spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("1500m")
	e.createDeployment(deployment("greedy", 8, spec))
	sel := selector(map[string]string{"app": "greedy"})

	// kubemesos gets part of the cluster, and some pods stay Pending.
	e.eventually("some greedy pods running and some pending", 2*time.Minute, func(ctx context.Context) (bool, error) {
		pods, err := e.pods(ctx, sel)
		if err != nil {
			return false, err
		}
		running, pending := 0, 0
		for _, p := range pods {
			switch {
			case p.Status.Phase == corev1.PodRunning && podReady(&p):
				running++
			case p.Status.Phase == corev1.PodPending && p.Spec.NodeName == "":
				pending++
			}
		}
		st, err := e.mesosState(ctx)
		if err != nil {
			return false, err
		}
		if err := checkNoOverlap(st); err != nil {
			return false, fatalf("%v", err)
		}
		return running >= 2 && pending >= 1, fmt.Errorf("%d running, %d pending", running, pending)
	})

	// While pods are pending, batch keeps cycling tasks: 24 more must finish (about three rounds).
	// Every poll samples both frameworks' allocations in Mesos and checks that they do not overlap.
	start := batch.stats()
	var shares []map[string]float64
	e.eventually("batch finishing 24 more tasks while kubemesos has pending pods", 2*time.Minute, func(ctx context.Context) (bool, error) {
		st, err := e.mesosState(ctx)
		if err != nil {
			return false, err
		}
		if err := checkNoOverlap(st); err != nil {
			return false, fatalf("%v", err)
		}
		shares = append(shares, frameworkCPUs(st))
		s := batch.stats()
		return s.Finished >= start.Finished+24, fmt.Errorf("%d finished", s.Finished-start.Finished)
	})

	end := batch.stats()
	mean := map[string]float64{}
	for _, s := range shares {
		for fw, cpus := range s {
			mean[fw] += cpus / float64(len(shares))
		}
	}
	t.Logf("batch: %d tasks finished in the window (%d offers in all); mean cpus over %d samples: %v",
		end.Finished-start.Finished, end.Offers, len(shares), mean)
	if len(end.Failed) > 0 || len(end.Errs) > 0 {
		t.Errorf("batch framework: failed tasks %v, errors %v", end.Failed, end.Errs)
	}
	// Shares by Mesos' own accounting: both hold at least a quarter of the cluster on average (for
	// kubemesos: the 2 pods of 1.5 cpus it had when the window opened, never fewer).
	const eps = 1e-6
	if mean["batch"] < 3-eps {
		t.Errorf("batch held %.2f cpus on average, want at least 3 of 12 (its share)", mean["batch"])
	}
	if mean[frameworkName] < 3-eps {
		t.Errorf("kubemesos held %.2f cpus on average, want at least 3 of 12", mean[frameworkName])
	}
	// Every kubemesos task is a running pod of this test, once the pods bound last have started (a task
	// still STARTING has a Pending pod).
	e.eventually("kubemesos tasks matching the running pods", time.Minute, func(ctx context.Context) (bool, error) {
		st, err := e.mesosState(ctx)
		if err != nil {
			return false, err
		}
		pods, err := e.pods(ctx, sel)
		if err != nil {
			return false, err
		}
		var running []corev1.Pod
		for _, p := range pods {
			if p.Status.Phase == corev1.PodRunning {
				running = append(running, p)
			}
		}
		if diff := checkTasksMatchPods(st, running); diff != "" {
			return false, errors.New(diff)
		}
		return true, nil
	})
}

// frameworkCPUs sums the cpus of active tasks by framework name.
func frameworkCPUs(st *master.Response_GetState) map[string]float64 {
	names := map[string]string{}
	for _, f := range st.GetGetFrameworks().GetFrameworks() {
		names[f.FrameworkInfo.ID.Value] = f.FrameworkInfo.Name
	}
	out := map[string]float64{}
	for _, task := range st.GetGetTasks().GetTasks() {
		out[names[task.FrameworkID.Value]] += scalarOf(task.Resources, "cpus")
	}
	return out
}

// checkNoOverlap: on every agent, the active tasks and executors of all frameworks fit in the agent's
// total resources, and no port is held twice.
func checkNoOverlap(st *master.Response_GetState) error {
	type usage struct {
		cpus, mem float64
		ports     map[uint64]string
	}
	total := map[string]usage{}
	for _, a := range st.GetGetAgents().GetAgents() {
		total[a.AgentInfo.ID.Value] = usage{cpus: scalarOf(a.TotalResources, "cpus"), mem: scalarOf(a.TotalResources, "mem")}
	}
	used := map[string]*usage{}
	add := func(agent, holder string, cpus, mem float64, ports []uint64) error {
		u := used[agent]
		if u == nil {
			u = &usage{ports: map[uint64]string{}}
			used[agent] = u
		}
		u.cpus += cpus
		u.mem += mem
		for _, p := range ports {
			if other, ok := u.ports[p]; ok {
				return fmt.Errorf("agent %s: port %d held by %s and %s", agent, p, other, holder)
			}
			u.ports[p] = holder
		}
		return nil
	}
	for _, task := range st.GetGetTasks().GetTasks() {
		if err := add(task.AgentID.Value, "task "+task.TaskID.Value, scalarOf(task.Resources, "cpus"), scalarOf(task.Resources, "mem"), portsOf(task.Resources)); err != nil {
			return err
		}
	}
	for _, ex := range st.GetGetExecutors().GetExecutors() {
		r := ex.ExecutorInfo.Resources
		if err := add(ex.AgentID.Value, "executor "+ex.ExecutorInfo.ExecutorID.Value, scalarOf(r, "cpus"), scalarOf(r, "mem"), portsOf(r)); err != nil {
			return err
		}
	}
	const eps = 1e-9
	for agent, u := range used {
		tot, ok := total[agent]
		if !ok {
			continue // removed agent
		}
		if u.cpus > tot.cpus+eps || u.mem > tot.mem+eps {
			return fmt.Errorf("agent %s: tasks and executors use cpus %.2f mem %.0f, more than its %.2f/%.0f", agent, u.cpus, u.mem, tot.cpus, tot.mem)
		}
	}
	return nil
}
