package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	testclock "k8s.io/utils/clock/testing"
)

func TestCommandTasks(t *testing.T) {
	tests := []struct {
		name        string
		command     string
		caps        []mesos.FrameworkInfo_Capability_Type
		kill        bool
		wantStates  []string
		wantMessage string
	}{
		{name: "finishes", command: "echo hello", wantStates: []string{"TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"},
			wantMessage: "Command exited with status 0"},
		{name: "fails with exit status", command: "exit 3", wantStates: []string{"TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"},
			wantMessage: "Command exited with status 3"},
		{name: "killed with TASK_KILLING_STATE", command: "sleep 1000", kill: true,
			caps:       []mesos.FrameworkInfo_Capability_Type{mesos.FrameworkInfo_Capability_TASK_KILLING_STATE},
			wantStates: []string{"TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"}, wantMessage: "Command terminated with signal Terminated"},
		{name: "killed without TASK_KILLING_STATE", command: "sleep 1000", kill: true,
			wantStates: []string{"TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"}, wantMessage: "Command terminated with signal Terminated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &fakeMaster{autoAck: true}
			a := newTestAgent(t, m, nil)
			a.Launch(testFramework(false, tc.caps...), nil, []mesos.TaskInfo{commandTask("t1", tc.command)}, false)
			if tc.kill {
				waitFor(t, "running", func() bool { return len(m.states("t1")) == 2 })
				a.Kill(mesos.FrameworkID{Value: "fw-1"}, mesos.TaskID{Value: "t1"}, nil)
			}
			waitFor(t, "terminal update", func() bool { return len(m.states("t1")) == len(tc.wantStates) })
			if diff := cmp.Diff(tc.wantStates, m.states("t1")); diff != "" {
				t.Errorf("states (-want +got):\n%s", diff)
			}
			ups := m.updates("t1")
			last := ups[len(ups)-1]
			if last.GetMessage() != tc.wantMessage || last.GetSource() != mesos.SOURCE_EXECUTOR || last.GetExecutorID().GetValue() != "t1" {
				t.Errorf("terminal update = %v, want message %q from the command executor t1", last, tc.wantMessage)
			}
			waitFor(t, "command executor gone after the acknowledgement", func() bool { return len(a.Executors()) == 0 && len(a.Tasks()) == 0 })
			if n := len(m.all("exited")); n != 0 {
				t.Errorf("ExecutorTerminated sent for a command executor")
			}
		})
	}
}

func TestCommandTaskOutputAndEnvironmentInSandbox(t *testing.T) {
	m := &fakeMaster{} // nothing is acknowledged, so the command executor stays around
	a := newTestAgent(t, m, nil)
	tk := commandTask("t1", `echo "$MESOS_HTTP_COMMAND_EXECUTOR $GREETING"; echo oops >&2`)
	v := "hi"
	tk.Command.Environment = &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "GREETING", Value: &v}}}
	a.Launch(testFramework(false), nil, []mesos.TaskInfo{tk}, false)
	waitFor(t, "finished on the agent", func() bool {
		ts := a.Tasks()
		return len(ts) == 1 && ts[0].State == mesos.TASK_FINISHED
	})
	ex := a.Executors()
	if len(ex) != 1 || !ex[0].Command || ex[0].Info.ExecutorID.Value != "t1" {
		t.Fatalf("executors = %+v, want the command executor t1", ex)
	}
	out, _ := os.ReadFile(filepath.Join(ex[0].Directory, "stdout"))
	errOut, _ := os.ReadFile(filepath.Join(ex[0].Directory, "stderr"))
	if diff := cmp.Diff([2]string{"1 hi\n", "oops\n"}, [2]string{string(out), string(errOut)}); diff != "" {
		t.Errorf("sandbox stdout/stderr (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"TASK_STARTING"}, m.states("t1")); diff != "" {
		t.Errorf("only the head is outstanding (-want +got):\n%s", diff)
	}
}

func TestCommandTaskKillEscalatesAfterGracePeriod(t *testing.T) {
	clk := testclock.NewFakeClock(time.Unix(1e9, 0))
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) { c.Clock = clk })
	fw := testFramework(false, mesos.FrameworkInfo_Capability_TASK_KILLING_STATE)
	a.Launch(fw, nil, []mesos.TaskInfo{commandTask("t1", "trap '' TERM; echo trapped; sleep 1000")}, false)
	waitFor(t, "running", func() bool { return len(m.states("t1")) == 2 })
	// RUNNING comes as the shell starts: on a loaded machine a SIGTERM before its trap ended the task at
	// once (TASK_KILLED by SIGTERM) and the wait for TASK_KILLING alone missed it.
	waitFor(t, "the trap set", func() bool {
		ex := a.Executors()
		if len(ex) != 1 {
			return false
		}
		out, _ := os.ReadFile(filepath.Join(ex[0].Directory, "stdout"))
		return string(out) == "trapped\n"
	})
	grace := int64(2 * time.Second)
	a.Kill(mesos.FrameworkID{Value: "fw-1"}, mesos.TaskID{Value: "t1"}, &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: grace}})
	waitFor(t, "killing", func() bool { return len(m.states("t1")) == 3 })
	clk.Step(2 * time.Second)
	waitFor(t, "killed", func() bool { return len(m.states("t1")) == 4 })
	ups := m.updates("t1")
	if last := ups[len(ups)-1]; last.GetState() != mesos.TASK_KILLED || last.GetMessage() != "Command terminated with signal Killed" {
		t.Errorf("final update = %v, want TASK_KILLED by SIGKILL", last)
	}
}
