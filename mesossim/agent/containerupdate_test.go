package agent

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// cgroupsCPUAgent is an agent whose executors' containers have the cgroups/cpu isolator (in a cgroups
// root of the test's own), with its error log captured.
func cgroupsCPUAgent(t *testing.T, enableCFS bool) (*Agent, *fakeMaster, *logtest.Hook) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("cgroups isolators need root")
	}
	for _, s := range []string{"cpu", "cpuacct"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", s, "cgroup.procs")); err != nil {
			t.Skipf("no cgroup v1 hierarchy at /sys/fs/cgroup/%s: %v", s, err)
		}
	}
	root := fmt.Sprintf("kubemesos-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"))
	t.Cleanup(func() {
		for _, s := range []string{"cpu", "cpuacct"} {
			if err := os.Remove(filepath.Join("/sys/fs/cgroup", s, root)); err != nil && !os.IsNotExist(err) {
				t.Errorf("cgroups root left behind: %v", err)
			}
		}
	})
	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetLevel(logrus.WarnLevel)
	hook := logtest.NewLocal(log)
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) {
		c.Isolation = "filesystem/linux,cgroups/cpu"
		c.CgroupsRoot = root
		c.CgroupsEnableCFS = enableCFS
		c.Log = log
	})
	if !a.Isolating() {
		t.Fatal("not isolating")
	}
	return a, m, hook
}

// quotaRefused is the failure of cgroups/cpu when the kernel refuses a CFS quota, as Mesos words it
// (CgroupsIsolatorProcess::_update, CpuSubsystemProcess::update, stout's strerror).
const quotaRefused = "Failed to update subsystems: Failed to update 'cpu.cfs_quota_us': Invalid argument"

func cpuLimit(cpus float64) map[string]mesos.Value_Scalar {
	return map[string]mesos.Value_Scalar{"cpus": {Value: cpus}}
}

// launchLimitedNested starts, under the executor's container, a nested container with cgroups of its
// own and a CFS quota of cpus (LinuxInfo.share_cgroups false, as kubemesos' pod containers).
func launchLimitedNested(t *testing.T, a *Agent, parent mesos.ContainerID, cpus float64) {
	t.Helper()
	no := false
	ci := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), LinuxInfo: &mesos.LinuxInfo{ShareCgroups: &no}}
	call := agentcalls.LaunchContainer(mesos.ContainerID{Value: "limited", Parent: &parent}, shell("exec sleep 1000"), ci,
		scalars("cpus", cpus, "mem", 32.0))
	call.LaunchContainer.Limits = cpuLimit(cpus)
	if code, body := postCall(t, a, call); code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER: %d %s", code, body)
	}
}

func lastUpdate(m *fakeMaster, task string) *mesos.TaskStatus {
	u := m.updates(task)
	if len(u) == 0 {
		return &mesos.TaskStatus{}
	}
	return &u[len(u)-1]
}

// errorLogged returns the error lines logged so far.
func errorLogged(hook *logtest.Hook) []string {
	var out []string
	for _, e := range hook.AllEntries() {
		if e.Level <= logrus.ErrorLevel {
			out = append(out, e.Message)
		}
	}
	return out
}

// A task's end shrinks its executor's container (Slave::_statusUpdate); the kernel refuses a CFS quota
// below a nested container's (cgroup v1: EINVAL). Mesos then destroys the executor's container and its
// other tasks end TASK_LOST (TASK_GONE for a partition-aware framework) with
// REASON_CONTAINER_UPDATE_FAILED (Slave::__statusUpdate); the ended task keeps its own update.
func TestFailedContainerUpdateOnTerminalUpdateDestroysTheExecutor(t *testing.T) {
	for _, tc := range []struct {
		name  string
		caps  []mesos.FrameworkInfo_Capability_Type
		state mesos.TaskState
	}{
		{"not partition-aware", nil, mesos.TASK_LOST},
		{"partition-aware", []mesos.FrameworkInfo_Capability_Type{mesos.FrameworkInfo_Capability_PARTITION_AWARE}, mesos.TASK_GONE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, m, hook := cgroupsCPUAgent(t, true)
			fw := testFramework(false, tc.caps...)
			exec := processExecutor("exec-1", nil)
			exec.Resources = scalars("cpus", 0.1, "mem", 32.0)
			limited := dataTask("limited", "wait")
			limited.Resources = scalars("cpus", 0.5, "mem", 32.0)
			limited.Limits = cpuLimit(2) // the executor's quota: 2 + 0.1 + 0.1 cpus
			other := dataTask("other", "wait")
			other.Resources = scalars("cpus", 0.1, "mem", 32.0)
			a.Launch(fw, exec, []mesos.TaskInfo{limited, other}, false)
			waitFor(t, "both tasks running", func() bool {
				return lastUpdate(m, "limited").GetState() == mesos.TASK_RUNNING && lastUpdate(m, "other").GetState() == mesos.TASK_RUNNING
			})
			container := a.Executors()[0].ContainerID
			launchLimitedNested(t, a, container, 1.5)

			// Without "limited" the executor is left its requests, 0.2 cpus: below the nested 1.5.
			a.Kill(*fw.ID, limited.TaskID, nil)
			waitFor(t, "the executor terminated", func() bool { return len(m.all("exited")) == 1 })
			waitFor(t, "the other task ended", func() bool { return isTerminal(lastUpdate(m, "other").GetState()) })

			if st := lastUpdate(m, "limited"); st.GetState() != mesos.TASK_KILLED || st.GetSource() != mesos.SOURCE_EXECUTOR {
				t.Errorf("the killed task ended %s from %s, want its executor's TASK_KILLED", st.GetState(), st.GetSource())
			}
			st := lastUpdate(m, "other")
			const text = "Failed to update resources for container: " + quotaRefused
			if st.GetState() != tc.state || st.GetReason() != mesos.REASON_CONTAINER_UPDATE_FAILED ||
				st.GetSource() != mesos.SOURCE_AGENT || st.GetMessage() != text {
				t.Errorf("the other task ended %s %s from %s with %q, want %s REASON_CONTAINER_UPDATE_FAILED from the agent with %q",
					st.GetState(), st.GetReason(), st.GetSource(), st.GetMessage(), tc.state, text)
			}
			want := "Failed to update resources for container " + container.Value + " of executor 'exec-1' running task limited " +
				"on status update for terminal task, destroying container: " + quotaRefused
			if got := errorLogged(hook); len(got) != 1 || got[0] != want {
				t.Errorf("error log %q, want one line %q", got, want)
			}
		})
	}
}

// A task added to a running executor grows its container first (Slave::__run); when that update fails
// (here a limit below a nested container's quota, without --cgroups_enable_cfs), the task is never
// sent to the executor (Slave::___run), the container is destroyed, and every task ends TASK_LOST with
// REASON_CONTAINER_UPDATE_FAILED.
func TestFailedContainerUpdateOnLaunchDestroysTheExecutor(t *testing.T) {
	a, m, hook := cgroupsCPUAgent(t, false)
	fw := testFramework(false)
	exec := processExecutor("exec-1", nil)
	exec.Resources = scalars("cpus", 0.1, "mem", 32.0)
	first := dataTask("first", "wait")
	first.Resources = scalars("mem", 32.0) // no cpus, no limit: the container has no CFS quota
	a.Launch(fw, exec, []mesos.TaskInfo{first}, false)
	waitFor(t, "the first task running", func() bool { return lastUpdate(m, "first").GetState() == mesos.TASK_RUNNING })
	container := a.Executors()[0].ContainerID
	launchLimitedNested(t, a, container, 1.5)

	// With it the executor's limit becomes 0.5 + 0.1 cpus: below the nested 1.5.
	second := dataTask("second", "finish")
	second.Resources = scalars("cpus", 0.5, "mem", 32.0)
	second.Limits = cpuLimit(0.5)
	a.Launch(fw, exec, []mesos.TaskInfo{second}, false)
	waitFor(t, "the executor terminated", func() bool { return len(m.all("exited")) == 1 })
	waitFor(t, "both tasks ended", func() bool {
		return isTerminal(lastUpdate(m, "first").GetState()) && isTerminal(lastUpdate(m, "second").GetState())
	})
	for _, id := range []string{"first", "second"} {
		st := lastUpdate(m, id)
		if st.GetState() != mesos.TASK_LOST || st.GetReason() != mesos.REASON_CONTAINER_UPDATE_FAILED ||
			st.GetMessage() != "Failed to update resources for container: "+quotaRefused {
			t.Errorf("task %s ended %s %s %q, want TASK_LOST REASON_CONTAINER_UPDATE_FAILED", id, st.GetState(), st.GetReason(), st.GetMessage())
		}
	}
	for _, st := range m.updates("second") {
		if st.GetSource() == mesos.SOURCE_EXECUTOR {
			t.Errorf("the second task reached the executor: %s", st.GetState())
		}
	}
	want := "Failed to update resources for container " + container.Value + " of executor 'exec-1' of framework fw-1, " +
		"destroying container: " + quotaRefused
	if got := errorLogged(hook); len(got) != 1 || got[0] != want {
		t.Errorf("error log %q, want one line %q", got, want)
	}
}
