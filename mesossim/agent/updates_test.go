package agent

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	testclock "k8s.io/utils/clock/testing"
)

func hookExecutorInfo(id string) *mesos.ExecutorInfo {
	unused := "in-process"
	return &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: id}, Command: &mesos.CommandInfo{Value: &unused}}
}

func unacked(a *Agent, taskID string) int {
	for _, ts := range a.Tasks() {
		if ts.Task.TaskID.Value == taskID {
			return len(ts.Unacknowledged)
		}
	}
	return 0
}

func TestUpdatesResentWithBackoffUntilAcknowledgedInOrder(t *testing.T) {
	clk := testclock.NewFakeClock(time.Unix(1e9, 0))
	m := &fakeMaster{}
	a := newTestAgent(t, m, func(c *Config) { c.Clock = clk; c.ExecutorHook = hookExecutor })
	fw := mesos.FrameworkID{Value: "fw-1"}
	a.Launch(testFramework(false), hookExecutorInfo("e"), []mesos.TaskInfo{dataTask("t1", "finish")}, false)
	waitFor(t, "RUNNING forwarded and FINISHED queued", func() bool { return len(m.updates("t1")) == 1 && unacked(a, "t1") == 2 })

	clk.Step(DefaultStatusUpdateRetryMin)
	waitFor(t, "first resend", func() bool { return len(m.updates("t1")) == 2 })
	clk.Step(2 * DefaultStatusUpdateRetryMin)
	waitFor(t, "second resend after a doubled interval", func() bool { return len(m.updates("t1")) == 3 })

	running := m.updates("t1")[0]
	a.Acknowledge(fw, running.TaskID, running.UUID)
	waitFor(t, "FINISHED forwarded", func() bool { return len(m.updates("t1")) == 4 })
	ups := m.updates("t1")
	var got []string
	for _, u := range ups {
		got = append(got, u.GetState().String())
	}
	if diff := cmp.Diff([]string{"TASK_RUNNING", "TASK_RUNNING", "TASK_RUNNING", "TASK_FINISHED"}, got); diff != "" {
		t.Fatalf("forwarded updates (-want +got):\n%s", diff)
	}
	for _, u := range ups[1:3] {
		if string(u.UUID) != string(running.UUID) {
			t.Errorf("resend has UUID %x, want the original %x", u.UUID, running.UUID)
		}
	}
	a.Acknowledge(fw, ups[3].TaskID, ups[3].UUID)
	waitFor(t, "task completed", func() bool { return len(a.Tasks()) == 0 })
}

func TestPartitionHoldsUpdatesUntilHealed(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) { c.ExecutorHook = hookExecutor })
	info := hookExecutorInfo("e")
	info.Resources = mustResources(t, "cpus:0.5")
	a.Partition(true)
	tk := dataTask("t1", "finish")
	tk.Resources = mustResources(t, "cpus:1")
	a.Launch(testFramework(false), info, []mesos.TaskInfo{tk}, false)
	waitFor(t, "both updates held", func() bool { return unacked(a, "t1") == 2 })
	if n := len(m.all("update")) + len(m.all("recovered")); n != 0 {
		t.Fatalf("master heard %d calls while partitioned", n)
	}
	if ts := a.Tasks(); len(ts) != 1 || ts[0].State != mesos.TASK_FINISHED {
		t.Fatalf("Tasks() while partitioned = %+v, want t1 TASK_FINISHED", ts)
	}
	a.Partition(false)
	waitFor(t, "updates delivered after heal", func() bool { return len(m.states("t1")) == 2 })
	if diff := cmp.Diff([]string{"TASK_RUNNING", "TASK_FINISHED"}, m.states("t1")); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	waitFor(t, "task completed", func() bool { return len(a.Tasks()) == 0 })
}

func TestDuplicateUpdatesFault(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) { c.ExecutorHook = hookExecutor })
	a.SetUpdateFaults(UpdateFaults{Duplicate: true})
	a.Launch(testFramework(false), hookExecutorInfo("e"), []mesos.TaskInfo{dataTask("t1", "finish")}, false)
	waitFor(t, "task completed", func() bool { return len(m.updates("t1")) == 4 && len(a.Tasks()) == 0 })
	ups := m.updates("t1")
	var got []string
	for _, u := range ups {
		got = append(got, u.GetState().String())
	}
	if diff := cmp.Diff([]string{"TASK_RUNNING", "TASK_RUNNING", "TASK_FINISHED", "TASK_FINISHED"}, got); diff != "" {
		t.Errorf("forwarded (-want +got):\n%s", diff)
	}
	if string(ups[0].UUID) != string(ups[1].UUID) {
		t.Error("duplicate has a different UUID")
	}
}

func TestDelayedUpdatesFault(t *testing.T) {
	clk := testclock.NewFakeClock(time.Unix(1e9, 0))
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) { c.Clock = clk; c.ExecutorHook = hookExecutor })
	a.SetUpdateFaults(UpdateFaults{Delay: 3 * time.Second})
	a.Launch(testFramework(false), hookExecutorInfo("e"), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "agent has the update", func() bool { return unacked(a, "t1") == 1 })
	if n := len(m.updates("t1")); n != 0 {
		t.Fatalf("master saw %d updates before the delay elapsed", n)
	}
	clk.Step(3 * time.Second)
	waitFor(t, "delayed update delivered", func() bool { return len(m.updates("t1")) == 1 })
}

func TestShutdownFrameworkDropsUpdatesAndExecutors(t *testing.T) {
	m := &fakeMaster{}
	a := newTestAgent(t, m, func(c *Config) { c.ExecutorHook = hookExecutor })
	a.Launch(testFramework(false), hookExecutorInfo("e"), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "RUNNING", func() bool { return len(m.updates("t1")) == 1 })
	a.ShutdownFramework(mesos.FrameworkID{Value: "fw-1"})
	waitFor(t, "framework gone", func() bool { return len(a.Executors()) == 0 && len(a.Tasks()) == 0 })
	if n := len(m.all("exited")); n != 0 {
		t.Errorf("ExecutorTerminated sent %d times for a framework being shut down", n)
	}
}
