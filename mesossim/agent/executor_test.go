package agent

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	testclock "k8s.io/utils/clock/testing"
)

func TestExecutorProcessEnvironmentAcceptedByFromEnv(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, nil)
	fw := testFramework(true)
	info := processExecutor("exec-1", map[string]string{"TEST_FROM_COMMAND": "yes"})
	info.ShutdownGracePeriod = &mesos.DurationInfo{Nanoseconds: int64(90 * time.Second)}
	a.Launch(fw, info, []mesos.TaskInfo{dataTask("t1", "env")}, false)
	waitFor(t, "TASK_FINISHED", func() bool { return len(m.states("t1")) == 2 })

	ups := m.updates("t1")
	if diff := cmp.Diff([]string{"TASK_RUNNING", "TASK_FINISHED"}, m.states("t1")); diff != "" {
		t.Fatalf("states (-want +got):\n%s", diff)
	}
	var env map[string]string
	if err := json.Unmarshal(ups[len(ups)-1].Data, &env); err != nil {
		t.Fatalf("task data: %v", err)
	}
	dir := env["MESOS_DIRECTORY"]
	wantPrefix := filepath.Join(a.cfg.WorkDir, "slaves", "agent-S0", "frameworks", "fw-1", "executors", "exec-1", "runs") + "/"
	if !strings.HasPrefix(dir, wantPrefix) {
		t.Errorf("MESOS_DIRECTORY = %q, want under %q", dir, wantPrefix)
	}
	want := map[string]string{
		"MESOS_FRAMEWORK_ID":                   "fw-1",
		"MESOS_EXECUTOR_ID":                    "exec-1",
		"MESOS_DIRECTORY":                      dir,
		"MESOS_SANDBOX":                        dir,
		"MESOS_AGENT_ENDPOINT":                 a.Endpoint(),
		"MESOS_SLAVE_ID":                       "agent-S0",
		"MESOS_SLAVE_PID":                      "slave(1)@" + a.Endpoint(),
		"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "90secs", // ExecutorInfo.shutdown_grace_period (90 s), as stout prints it
		"MESOS_CHECKPOINT":                     "1",
		"MESOS_RECOVERY_TIMEOUT":               "15mins",
		"MESOS_SUBSCRIPTION_BACKOFF_MAX":       "2secs",
		"MESOS_HTTP_COMMAND_EXECUTOR":          "0",
		"LIBPROCESS_IP":                        "127.0.0.1",
		"LIBPROCESS_PORT":                      "0",
		"TEST_FROM_COMMAND":                    "yes",
	}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("executor environment (-want +got):\n%s", diff)
	}
	for _, f := range []string{"stdout", "stderr"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("sandbox file %s: %v", f, err)
		}
	}
	waitFor(t, "completed task forgotten", func() bool { return len(a.Tasks()) == 0 })
}

func TestCustomExecutorUpdatesAcknowledgedInOrder(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, nil)
	fw := testFramework(false)
	a.Launch(fw, processExecutor("exec-1", nil), []mesos.TaskInfo{dataTask("t1", "finish")}, false)
	a.Launch(fw, processExecutor("exec-1", nil), []mesos.TaskInfo{dataTask("t2", "finish"), dataTask("t3", "finish")}, true)
	for _, id := range []string{"t1", "t2", "t3"} {
		waitFor(t, id+" finished", func() bool { return len(m.states(id)) == 2 })
		if diff := cmp.Diff([]string{"TASK_RUNNING", "TASK_FINISHED"}, m.states(id)); diff != "" {
			t.Errorf("%s states (-want +got):\n%s", id, diff)
		}
		for _, u := range m.updates(id) {
			if u.GetSource() != mesos.SOURCE_EXECUTOR || u.AgentID == nil || u.AgentID.Value != "agent-S0" || u.ExecutorID.GetValue() != "exec-1" {
				t.Errorf("%s update not stamped by the agent: %v", id, u)
			}
		}
	}
	waitFor(t, "tasks completed", func() bool { return len(a.Tasks()) == 0 })
	if ex := a.Executors(); len(ex) != 1 || ex[0].ContainerID.Value == "" {
		t.Errorf("executors = %+v, want the one live executor with a container", ex)
	}
}

func TestExecutorCrashFailsItsTasks(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, nil)
	fw := testFramework(false)
	info := processExecutor("exec-1", nil)
	info.Resources = mustResources(t, "cpus:0.1")
	a.Launch(fw, info, []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "t1 running", func() bool { return len(m.states("t1")) == 1 })
	a.Launch(fw, info, []mesos.TaskInfo{dataTask("t2", "crash")}, false)
	waitFor(t, "executor terminated", func() bool { return len(m.all("exited")) == 1 })
	waitFor(t, "t1 failed", func() bool { return len(m.states("t1")) == 2 })

	got := m.updates("t1")[1]
	if got.GetState() != mesos.TASK_FAILED || got.GetSource() != mesos.SOURCE_AGENT || got.GetReason() != mesos.REASON_EXECUTOR_TERMINATED {
		t.Errorf("t1 final update = %v, want TASK_FAILED from SOURCE_AGENT with REASON_EXECUTOR_TERMINATED", got)
	}
	if ex := m.all("exited")[0]; ex.ExecutorID != "exec-1" || ex.ExitStatus != 3<<8 {
		t.Errorf("ExecutorTerminated = %+v, want exec-1 with wait status %d", ex, 3<<8)
	}
	waitFor(t, "executor resources recovered", func() bool {
		for _, r := range m.all("recovered") {
			if r.Resources == "cpus:0.1" {
				return true
			}
		}
		return false
	})
}

func TestKillExecutorFault(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, nil)
	a.Launch(testFramework(false), processExecutor("exec-1", nil), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "t1 running", func() bool { return len(m.states("t1")) == 1 })
	if err := a.KillExecutor(mesos.FrameworkID{Value: "fw-1"}, mesos.ExecutorID{Value: "exec-1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "t1 failed", func() bool { return len(m.states("t1")) == 2 })
	if diff := cmp.Diff([]string{"TASK_RUNNING", "TASK_FAILED"}, m.states("t1")); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	waitFor(t, "ExecutorTerminated", func() bool { return len(m.all("exited")) == 1 })
	if st := m.all("exited")[0].ExitStatus; st != int32(syscall.SIGKILL) {
		t.Errorf("exit status = %d, want %d (SIGKILL)", st, syscall.SIGKILL)
	}
	if err := a.KillExecutor(mesos.FrameworkID{Value: "fw-1"}, mesos.ExecutorID{Value: "nope"}); err == nil {
		t.Error("KillExecutor of an unknown executor succeeded")
	}
}

func TestKillTaskAndShutdownExecutor(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, nil)
	fw := testFramework(false)
	a.Launch(fw, processExecutor("exec-1", nil), []mesos.TaskInfo{dataTask("t1", "wait"), dataTask("t2", "wait")}, true)
	waitFor(t, "tasks running", func() bool { return len(m.states("t1")) == 1 && len(m.states("t2")) == 1 })

	a.Kill(mesos.FrameworkID{Value: "fw-1"}, mesos.TaskID{Value: "t1"}, nil)
	waitFor(t, "t1 killed", func() bool { return len(m.states("t1")) == 2 })
	if diff := cmp.Diff([]string{"TASK_RUNNING", "TASK_KILLED"}, m.states("t1")); diff != "" {
		t.Errorf("t1 states (-want +got):\n%s", diff)
	}

	// Unknown task of a known framework: TASK_LOST from the agent.
	a.Kill(mesos.FrameworkID{Value: "fw-1"}, mesos.TaskID{Value: "ghost"}, nil)
	waitFor(t, "ghost lost", func() bool { return len(m.states("ghost")) == 1 })
	if u := m.updates("ghost")[0]; u.GetState() != mesos.TASK_LOST || u.GetSource() != mesos.SOURCE_AGENT {
		t.Errorf("kill of unknown task = %v, want TASK_LOST from the agent", u)
	}

	a.ShutdownExecutor(mesos.FrameworkID{Value: "fw-1"}, mesos.ExecutorID{Value: "exec-1"})
	waitFor(t, "executor exited", func() bool { return len(m.all("exited")) == 1 })
	if diff := cmp.Diff([]string{"TASK_RUNNING", "TASK_KILLED"}, m.states("t2")); diff != "" {
		t.Errorf("t2 states (-want +got):\n%s", diff)
	}
	if st := m.all("exited")[0].ExitStatus; st != 0 {
		t.Errorf("executor exit status = %d, want 0 (it shut down by itself)", st)
	}
}

func TestFrameworkAndExecutorMessages(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, nil)
	a.Launch(testFramework(false), processExecutor("exec-1", nil), []mesos.TaskInfo{dataTask("t1", "message")}, false)
	waitFor(t, "executor message", func() bool { return len(m.all("message")) == 1 })
	a.FrameworkMessage(mesos.FrameworkID{Value: "fw-1"}, mesos.ExecutorID{Value: "exec-1"}, []byte("ping"))
	waitFor(t, "echo", func() bool { return len(m.all("message")) == 2 })
	var got []string
	for _, c := range m.all("message") {
		got = append(got, c.ExecutorID+":"+c.Data)
	}
	if diff := cmp.Diff([]string{"exec-1:hello", "exec-1:echo:ping"}, got); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}

func TestRegistrationTimeout(t *testing.T) {
	clk := testclock.NewFakeClock(time.Unix(1e9, 0))
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) { c.Clock = clk })
	never := "sleep 1000"
	info := &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "mute"}, Command: &mesos.CommandInfo{Value: &never}}
	a.Launch(testFramework(false), info, []mesos.TaskInfo{dataTask("t1", "finish")}, false)
	waitFor(t, "executor process started", func() bool { return len(processesIn(a.cfg.WorkDir)) > 0 })
	clk.Step(DefaultExecutorRegistrationTimeout)
	waitFor(t, "task failed", func() bool { return len(m.states("t1")) == 1 })
	u := m.updates("t1")[0]
	if u.GetState() != mesos.TASK_FAILED || u.GetReason() != mesos.REASON_EXECUTOR_REGISTRATION_TIMEOUT || u.GetSource() != mesos.SOURCE_AGENT {
		t.Errorf("update = %v, want TASK_FAILED, REASON_EXECUTOR_REGISTRATION_TIMEOUT, SOURCE_AGENT", u)
	}
	waitFor(t, "ExecutorTerminated", func() bool { return len(m.all("exited")) == 1 })
}

func TestExecutorThatCannotStart(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, nil)
	missing := "/nonexistent/executor"
	no := false
	info := &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "e"}, Command: &mesos.CommandInfo{Value: &missing, Shell: &no}}
	a.Launch(testFramework(false), info, []mesos.TaskInfo{dataTask("t1", "finish")}, false)
	// A CUSTOM executor needs a command.
	a.Launch(testFramework(false), &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "d"}, Type: mesos.ExecutorInfo_CUSTOM},
		[]mesos.TaskInfo{dataTask("t2", "finish")}, true)
	for _, id := range []string{"t1", "t2"} {
		waitFor(t, id+" failed", func() bool { return len(m.states(id)) == 1 })
		if u := m.updates(id)[0]; u.GetState() != mesos.TASK_FAILED || u.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED {
			t.Errorf("%s update = %v, want TASK_FAILED with REASON_CONTAINER_LAUNCH_FAILED", id, u)
		}
	}
}

func TestKillBeforeSubscriptionAndLaunchOnTerminatingExecutor(t *testing.T) {
	clk := testclock.NewFakeClock(time.Unix(1e9, 0))
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) { c.Clock = clk })
	never := "sleep 1000"
	fw := testFramework(false, mesos.FrameworkInfo_Capability_PARTITION_AWARE)
	info := &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "mute"}, Command: &mesos.CommandInfo{Value: &never}}
	a.Launch(fw, info, []mesos.TaskInfo{dataTask("t1", "finish")}, false)
	waitFor(t, "executor process started", func() bool { return len(processesIn(a.cfg.WorkDir)) > 0 })

	a.Kill(mesos.FrameworkID{Value: "fw-1"}, mesos.TaskID{Value: "t1"}, nil)
	waitFor(t, "t1 killed", func() bool { return len(m.states("t1")) == 1 })
	u := m.updates("t1")[0]
	if u.GetState() != mesos.TASK_KILLED || u.GetReason() != mesos.REASON_TASK_KILLED_DURING_LAUNCH || u.GetSource() != mesos.SOURCE_AGENT {
		t.Errorf("kill before delivery = %v, want TASK_KILLED, REASON_TASK_KILLED_DURING_LAUNCH, SOURCE_AGENT", u)
	}
	// With nothing left to run, the executor that never subscribed is killed.
	waitFor(t, "executor terminated", func() bool { return len(m.all("exited")) == 1 })

	// An executor shutting down takes no new tasks (partition-aware framework: TASK_DROPPED).
	a.Launch(fw, processExecutor("exec-2", nil), []mesos.TaskInfo{dataTask("t2", "wait")}, false)
	waitFor(t, "t2 running", func() bool { return len(m.states("t2")) == 1 })
	a.ShutdownExecutor(mesos.FrameworkID{Value: "fw-1"}, mesos.ExecutorID{Value: "exec-2"})
	a.Launch(fw, processExecutor("exec-2", nil), []mesos.TaskInfo{dataTask("t3", "finish")}, false)
	waitFor(t, "t3 dropped", func() bool { return len(m.states("t3")) == 1 })
	if u := m.updates("t3")[0]; u.GetState() != mesos.TASK_DROPPED {
		t.Errorf("launch on a terminating executor = %v, want TASK_DROPPED", u)
	}
}

func TestExecutorHeartbeats(t *testing.T) {
	clk := testclock.NewFakeClock(time.Unix(1e9, 0))
	m := &fakeMaster{}
	a := newTestAgent(t, m, func(c *Config) { c.Clock = clk; c.ExecutorHeartbeatInterval = 30 * time.Second })
	never := "sleep 1000"
	a.Launch(testFramework(true), &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "plain"}, Command: &mesos.CommandInfo{Value: &never}},
		[]mesos.TaskInfo{dataTask("t1", "x")}, false)
	body := `{"type":"SUBSCRIBE","framework_id":{"value":"fw-1"},"executor_id":{"value":"plain"},"subscribe":{}}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.Endpoint()+"/api/v1/executor", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	var types []string
	for i := 0; i < 2; i++ { // SUBSCRIBED, LAUNCH
		var ev map[string]any
		_ = json.Unmarshal(readRecord(t, r), &ev)
		types = append(types, ev["type"].(string))
	}
	waitFor(t, "heartbeat ticker armed", func() bool { return clk.HasWaiters() })
	clk.Step(30 * time.Second)
	var ev map[string]any
	_ = json.Unmarshal(readRecord(t, r), &ev)
	types = append(types, ev["type"].(string))
	if diff := cmp.Diff([]string{"SUBSCRIBED", "LAUNCH", "HEARTBEAT"}, types); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestStateEndpoint(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) { c.ExecutorHook = hookExecutor })
	a.Launch(testFramework(false), hookExecutorInfo("e"), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "running", func() bool { return len(m.states("t1")) == 1 })
	resp, err := http.Get("http://" + a.Endpoint() + "/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var state struct {
		ID         string `json:"id"`
		Hostname   string `json:"hostname"`
		Frameworks []struct {
			ID        string `json:"id"`
			Executors []struct {
				ID    string `json:"id"`
				Tasks []struct {
					ID    string `json:"id"`
					State string `json:"state"`
				} `json:"tasks"`
			} `json:"executors"`
		} `json:"frameworks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&state); err != nil {
		t.Fatal(err)
	}
	got := []string{state.ID, state.Hostname}
	for _, f := range state.Frameworks {
		for _, e := range f.Executors {
			for _, tk := range e.Tasks {
				got = append(got, f.ID+"/"+e.ID+"/"+tk.ID+"="+tk.State)
			}
		}
	}
	if diff := cmp.Diff([]string{"agent-S0", "agent0.example", "fw-1/e/t1=TASK_RUNNING"}, got); diff != "" {
		t.Errorf("/state (-want +got):\n%s", diff)
	}
}

func TestShutdownKillsAnExecutorThatIgnoresIt(t *testing.T) {
	clk := testclock.NewFakeClock(time.Unix(1e9, 0))
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) { c.Clock = clk })
	never := "sleep 1000" // a stubborn executor: this test subscribes for it and ignores SHUTDOWN
	a.Launch(testFramework(true), &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "stubborn"}, Command: &mesos.CommandInfo{Value: &never}},
		[]mesos.TaskInfo{dataTask("t1", "x")}, false)
	waitFor(t, "executor process started", func() bool { return len(processesIn(a.cfg.WorkDir)) > 0 })
	body := `{"type":"SUBSCRIBE","framework_id":{"value":"fw-1"},"executor_id":{"value":"stubborn"},"subscribe":{}}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.Endpoint()+"/api/v1/executor", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	readRecord(t, r) // SUBSCRIBED
	readRecord(t, r) // LAUNCH

	a.ShutdownExecutor(mesos.FrameworkID{Value: "fw-1"}, mesos.ExecutorID{Value: "stubborn"})
	var ev map[string]any
	_ = json.Unmarshal(readRecord(t, r), &ev)
	if ev["type"] != "SHUTDOWN" {
		t.Fatalf("event = %v, want SHUTDOWN", ev)
	}
	if n := len(m.all("exited")); n != 0 {
		t.Fatalf("executor killed before the grace period")
	}
	clk.Step(DefaultExecutorShutdownGracePeriod)
	waitFor(t, "executor killed after the grace period", func() bool { return len(m.all("exited")) == 1 })
	if st := m.all("exited")[0].ExitStatus; st != int32(syscall.SIGKILL) {
		t.Errorf("exit status = %d, want SIGKILL", st)
	}
	waitFor(t, "t1 failed", func() bool { return len(m.states("t1")) == 1 })
	if u := m.updates("t1")[0]; u.GetState() != mesos.TASK_FAILED || u.GetSource() != mesos.SOURCE_AGENT {
		t.Errorf("t1 = %v, want TASK_FAILED from the agent", u)
	}
}

func TestDefaultExecutorRunsTaskGroupsAsNestedContainers(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, nil)
	fw := testFramework(false, mesos.FrameworkInfo_Capability_TASK_KILLING_STATE)
	info := &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "default"}, Type: mesos.ExecutorInfo_DEFAULT}
	a.Launch(fw, info, []mesos.TaskInfo{commandTask("ok", "true"), commandTask("long", "sleep 1000")}, true)
	waitFor(t, "ok finished, long running", func() bool { return len(m.states("ok")) == 3 && len(m.states("long")) == 2 })
	// A failing task takes the rest of its group down; other groups are untouched.
	a.Launch(fw, info, []mesos.TaskInfo{commandTask("bad", "exit 2"), commandTask("victim", "sleep 1000")}, true)
	waitFor(t, "group 2 done", func() bool { return len(m.states("bad")) == 3 && len(m.states("victim")) == 4 })
	a.Kill(mesos.FrameworkID{Value: "fw-1"}, mesos.TaskID{Value: "long"}, nil)
	waitFor(t, "long killed", func() bool { return len(m.states("long")) == 4 })

	got := map[string][]string{}
	for _, id := range []string{"ok", "long", "bad", "victim"} {
		got[id] = m.states(id)
	}
	want := map[string][]string{
		"ok":     {"TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"},
		"long":   {"TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"},
		"bad":    {"TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"},
		"victim": {"TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if u := m.updates("bad"); u[len(u)-1].GetMessage() != "Command exited with status 2" {
		t.Errorf("bad: %v", u[len(u)-1])
	}
	waitFor(t, "default executor exited after its tasks", func() bool { return len(m.all("exited")) == 1 })
	if st := m.all("exited")[0].ExitStatus; st != 0 {
		t.Errorf("default executor exit status = %d, want 0", st)
	}
}

// Each executor run's sandbox is executors/<id>/runs/<container ID> with executors/<id>/runs/latest
// pointing at the current run (Mesos' createExecutorDirectory), so a sibling executor finds another's
// sandbox from its own: <MESOS_SANDBOX>/../../../<id>/runs/latest. A new run moves the link.
func TestExecutorRunsLatestSymlink(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, nil)
	fw := testFramework(false)
	a.Launch(fw, processExecutor("kubelet", nil), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	a.Launch(fw, processExecutor("pod-1", nil), []mesos.TaskInfo{dataTask("t2", "wait")}, false)
	waitFor(t, "tasks running", func() bool { return len(m.states("t1")) == 1 && len(m.states("t2")) == 1 })
	dirs := map[string]string{}
	for _, e := range a.Executors() {
		dirs[e.Info.ExecutorID.Value] = e.Directory
	}
	sibling := filepath.Join(dirs["kubelet"], "..", "..", "..", "pod-1", "runs", "latest")
	if got, err := filepath.EvalSymlinks(sibling); err != nil || got != dirs["pod-1"] {
		t.Fatalf("%s resolves to %q (%v), want pod-1's sandbox %s", sibling, got, err, dirs["pod-1"])
	}
	if err := os.WriteFile(filepath.Join(sibling, "portforward.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	a.ShutdownExecutor(mesos.FrameworkID{Value: "fw-1"}, mesos.ExecutorID{Value: "pod-1"})
	waitFor(t, "pod-1 exited", func() bool { return len(m.all("exited")) == 1 })
	a.Launch(fw, processExecutor("pod-1", nil), []mesos.TaskInfo{dataTask("t3", "wait")}, false)
	waitFor(t, "t3 running", func() bool { return len(m.states("t3")) == 1 })
	var second string
	for _, e := range a.Executors() {
		if e.Info.ExecutorID.Value == "pod-1" {
			second = e.Directory
		}
	}
	if second == "" || second == dirs["pod-1"] {
		t.Fatalf("second run's sandbox %q, first %q: want a new run", second, dirs["pod-1"])
	}
	if got, err := os.Readlink(sibling); err != nil || got != second {
		t.Errorf("runs/latest -> %q (%v), want the second run %s", got, err, second)
	}
	if _, err := os.Stat(filepath.Join(dirs["pod-1"], "portforward.sock")); err != nil {
		t.Errorf("the first run's sandbox is gone: %v", err)
	}
}

// Slave::subscribe: a staging task sent to the executor that its next SUBSCRIBE does not list (the
// LAUNCH went out on a connection the executor had given up before its response began) never reached
// it, and is dropped at that SUBSCRIBE; a task it lists stays. Without that, the task stayed STAGING
// and its KILL reached an executor that did not know it: a pod's sandbox lived on.
func TestSubscribeDropsStagingTasksUnknownToTheExecutor(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, nil)
	never := "sleep 1000"
	fw := testFramework(true, mesos.FrameworkInfo_Capability_PARTITION_AWARE)
	a.Launch(fw, &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "plain"}, Command: &mesos.CommandInfo{Value: &never}},
		[]mesos.TaskInfo{dataTask("lost", "x"), dataTask("known", "y")}, false)
	subscribe := func(body string) (*http.Response, *bufio.Reader) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Endpoint()+"/api/v1/executor", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("SUBSCRIBE: %s", resp.Status)
		}
		return resp, bufio.NewReader(resp.Body)
	}
	resp, r := subscribe(`{"type":"SUBSCRIBE","framework_id":{"value":"fw-1"},"executor_id":{"value":"plain"},"subscribe":{}}`)
	var types []string
	for i := 0; i < 3; i++ { // SUBSCRIBED, LAUNCH, LAUNCH
		var ev map[string]any
		_ = json.Unmarshal(readRecord(t, r), &ev)
		types = append(types, ev["type"].(string))
	}
	if diff := cmp.Diff([]string{"SUBSCRIBED", "LAUNCH", "LAUNCH"}, types); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	resp.Body.Close()

	// The executor knows only "known" (it got its LAUNCH, sent no update yet).
	resp, r = subscribe(`{"type":"SUBSCRIBE","framework_id":{"value":"fw-1"},"executor_id":{"value":"plain"},` +
		`"subscribe":{"unacknowledged_tasks":[{"name":"known","task_id":{"value":"known"},"agent_id":{"value":"` + a.cfg.ID.Value + `"}}]}}`)
	defer resp.Body.Close()
	readRecord(t, r) // SUBSCRIBED
	waitFor(t, "the unknown task dropped", func() bool { return len(m.states("lost")) == 1 })
	u := m.updates("lost")[0]
	if u.GetState() != mesos.TASK_DROPPED || u.GetReason() != mesos.REASON_AGENT_RESTARTED || u.GetSource() != mesos.SOURCE_AGENT ||
		u.GetMessage() != "Task launched during agent restart" {
		t.Errorf("update = %v, want Mesos' TASK_DROPPED (REASON_SLAVE_RESTARTED, SOURCE_AGENT, \"Task launched during agent restart\")", u)
	}
	if got := m.states("known"); len(got) != 0 {
		t.Errorf("the task the executor listed got updates %v, want none", got)
	}
}
