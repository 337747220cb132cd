package agent

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// restartConfig is an agent config for restart tests: a fixed work dir, executors that retry
// SUBSCRIBE quickly.
func restartConfig(t *testing.T, m *fakeMaster) Config {
	// Both agents' logs, printed when the test fails: a restart's timing is the usual suspect.
	log, _ := testLog(t)
	return Config{
		ID:                            mesos.AgentID{Value: "agent-S0"},
		Hostname:                      "agent0.example",
		Resources:                     mustResources(t, "cpus:4;mem:1024"),
		WorkDir:                       t.TempDir(),
		Master:                        m,
		Log:                           log,
		SubscriptionBackoffMax:        200 * time.Millisecond,
		RecoveryTimeout:               time.Minute,
		ExecutorReregistrationTimeout: 5 * time.Second,
	}
}

func taskState(a *Agent, id string) (TaskState, bool) {
	for _, ts := range a.Tasks() {
		if ts.Task.TaskID.Value == id {
			return ts, true
		}
	}
	return TaskState{}, false
}

func TestRestartRecoversCheckpointedExecutor(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	cfg := restartConfig(t, m)
	a1 := startAgent(t, m, cfg)
	fw := testFramework(true)
	a1.Launch(fw, processExecutor("exec-1", nil), []mesos.TaskInfo{dataTask("t1", "wait"), dataTask("t2", "finish-on-disconnect")}, false)
	for _, id := range []string{"t1", "t2"} {
		waitFor(t, id+" running", func() bool { return len(m.states(id)) == 1 })
	}
	waitFor(t, "RUNNING acknowledged", func() bool {
		ts, _ := taskState(a1, "t2")
		return len(ts.Unacknowledged) == 0
	})
	before := a1.Executors()
	if len(before) != 1 {
		t.Fatalf("executors = %+v", before)
	}
	procs := processesIn(cfg.WorkDir)

	cfg.ListenAddress = a1.Endpoint() // the executor knows the agent by its endpoint
	a1.StopForRestart()
	if diff := cmp.Diff(procs, processesIn(cfg.WorkDir)); diff != "" {
		t.Fatalf("the executor process did not survive the agent (-before +after):\n%s", diff)
	}
	// Let the executor notice: t2 finishes while the agent is away; its update can only reach the
	// next agent through SUBSCRIBE's unacknowledged_updates.
	time.Sleep(300 * time.Millisecond)

	a2 := startAgent(t, m, cfg)
	waitFor(t, "the executor re-subscribed", func() bool {
		ts, ok := taskState(a2, "t2")
		return ok && ts.State == mesos.TASK_FINISHED
	})
	<-a2.Recovered()
	after := a2.Executors()
	if len(after) != 1 || after[0].ContainerID != before[0].ContainerID || after[0].Directory != before[0].Directory {
		t.Fatalf("executors after the restart = %+v, want the same run as %+v", after, before)
	}
	if ts, ok := taskState(a2, "t1"); !ok || ts.State != mesos.TASK_RUNNING {
		t.Fatalf("t1 after the restart = %+v (known %v), want TASK_RUNNING", ts, ok)
	}
	if got := m.states("t2"); len(got) != 1 {
		t.Fatalf("t2 updates before re-registration = %v: they must wait for the master", got)
	}
	a2.Reregistered()
	waitFor(t, "t2's update from the downtime", func() bool { return len(m.states("t2")) == 2 })
	if u := m.updates("t2")[1]; u.GetState() != mesos.TASK_FINISHED || u.GetMessage() != "finished while the agent was away" {
		t.Errorf("t2's last update = %v", u)
	}
	// The same executor takes a KILL from the new agent.
	a2.Kill(*fw.GetID(), mesos.TaskID{Value: "t1"}, nil)
	waitFor(t, "t1 killed", func() bool { return len(m.states("t1")) == 2 })
	if diff := cmp.Diff([]string{"TASK_RUNNING", "TASK_KILLED"}, m.states("t1")); diff != "" {
		t.Errorf("t1 states (-want +got):\n%s", diff)
	}
	if e := m.all("exited"); len(e) != 0 {
		t.Errorf("executor reported terminated: %+v", e)
	}
}

func TestRestartLosesExecutorsOfFrameworksWithoutCheckpointing(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	cfg := restartConfig(t, m)
	a1 := startAgent(t, m, cfg)
	a1.Launch(testFramework(false), processExecutor("exec-1", nil), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "t1 running", func() bool { return len(m.states("t1")) == 1 })
	cfg.ListenAddress = a1.Endpoint()
	a1.StopForRestart()

	a2 := startAgent(t, m, cfg)
	<-a2.Recovered()
	if ex, ts := a2.Executors(), a2.Tasks(); len(ex) != 0 || len(ts) != 0 {
		t.Errorf("recovered %+v and %+v from a framework that does not checkpoint", ex, ts)
	}
	waitFor(t, "the executor gone", func() bool { return len(processesIn(cfg.WorkDir)) == 0 })
	if _, err := os.Stat(filepath.Join(cfg.WorkDir, "meta", "slaves", "agent-S0", "frameworks")); !os.IsNotExist(err) {
		t.Errorf("a framework without checkpointing was checkpointed: %v", err)
	}
}

func TestRestartKillsExecutorsThatDoNotReregister(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	cfg := restartConfig(t, m)
	a1 := startAgent(t, m, cfg)
	a1.Launch(testFramework(true), processExecutor("exec-1", nil), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "t1 running", func() bool { return len(m.states("t1")) == 1 })
	// A hung executor: it will not subscribe again.
	procs := processesIn(cfg.WorkDir)
	if len(procs) == 0 {
		t.Fatal("no executor process runs in the work dir")
	}
	t.Logf("stopping %v", procs)
	for _, p := range procs {
		pid, _ := strconv.Atoi(strings.SplitN(p, ":", 2)[0])
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	cfg.ListenAddress = a1.Endpoint()
	cfg.ExecutorReregistrationTimeout = 500 * time.Millisecond
	a1.StopForRestart()

	a2 := startAgent(t, m, cfg)
	<-a2.Recovered()
	a2.Reregistered()
	waitFor(t, "t1 lost", func() bool { return len(m.states("t1")) == 2 })
	u := m.updates("t1")[1]
	if u.GetState() != mesos.TASK_LOST || u.GetReason() != mesos.REASON_EXECUTOR_REREGISTRATION_TIMEOUT ||
		u.GetMessage() != "Executor did not reregister within 500ms" || u.GetSource() != mesos.SOURCE_AGENT {
		t.Errorf("t1's update = %v", u)
	}
	waitFor(t, "the executor killed", func() bool { return len(processesIn(cfg.WorkDir)) == 0 })
}

func TestRestartAfterTheExecutorExited(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	cfg := restartConfig(t, m)
	a1 := startAgent(t, m, cfg)
	// Without checkpointing in its own environment the executor exits when the agent goes away.
	ex := processExecutor("exec-1", map[string]string{"MESOS_CHECKPOINT": "0"})
	a1.Launch(testFramework(true), ex, []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "t1 running", func() bool { return len(m.states("t1")) == 1 })
	cfg.ListenAddress = a1.Endpoint()
	a1.StopForRestart()
	waitFor(t, "the executor gone", func() bool { return len(processesIn(cfg.WorkDir)) == 0 })

	a2 := startAgent(t, m, cfg)
	<-a2.Recovered()
	a2.Reregistered()
	waitFor(t, "t1 failed", func() bool { return len(m.states("t1")) == 2 })
	if u := m.updates("t1")[1]; u.GetState() != mesos.TASK_FAILED || u.GetReason() != mesos.REASON_EXECUTOR_TERMINATED {
		t.Errorf("t1's update = %v", u)
	}
	if e := m.all("exited"); len(e) != 1 || e[0].ExecutorID != "exec-1" {
		t.Errorf("executor terminations = %+v", e)
	}
}

func TestRestartResendsUnacknowledgedUpdatesFromTheCheckpoint(t *testing.T) {
	m := &fakeMaster{}
	cfg := restartConfig(t, m)
	a1 := startAgent(t, m, cfg)
	fw := testFramework(true)
	a1.Launch(fw, processExecutor("exec-1", nil), []mesos.TaskInfo{dataTask("t1", "finish")}, false)
	waitFor(t, "t1 running", func() bool { return len(m.states("t1")) == 1 })
	running := m.updates("t1")[0]
	cfg.ListenAddress = a1.Endpoint()
	a1.StopForRestart()

	m2 := &fakeMaster{autoAck: true}
	cfg.Master = m2
	a2 := startAgent(t, m2, cfg)
	<-a2.Recovered()
	a2.Reregistered()
	// The stream is resent from its head: RUNNING (same UUID), then FINISHED once it is acknowledged.
	waitFor(t, "t1's stream", func() bool { return len(m2.states("t1")) == 2 })
	if got := m2.updates("t1")[0]; string(got.UUID) != string(running.UUID) {
		t.Errorf("first update after the restart = %v, want the unacknowledged %v", got, running)
	}
	if diff := cmp.Diff([]string{"TASK_RUNNING", "TASK_FINISHED"}, m2.states("t1")); diff != "" {
		t.Errorf("t1 (-want +got):\n%s", diff)
	}
	waitFor(t, "t1 completed", func() bool { return len(a2.Tasks()) == 0 })
}

func TestRecoverCleanupKillsExecutors(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	cfg := restartConfig(t, m)
	a1 := startAgent(t, m, cfg)
	a1.Launch(testFramework(true), processExecutor("exec-1", nil), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "t1 running", func() bool { return len(m.states("t1")) == 1 })
	cfg.ListenAddress = a1.Endpoint()
	a1.StopForRestart()
	cfg.Recover = "cleanup"
	a2 := startAgent(t, m, cfg)
	if len(a2.Executors()) != 0 || len(a2.Tasks()) != 0 {
		t.Errorf("--recover=cleanup recovered %+v %+v", a2.Executors(), a2.Tasks())
	}
	waitFor(t, "the executor killed", func() bool { return len(processesIn(cfg.WorkDir)) == 0 })
}

func TestUpdateRecordRoundTrip(t *testing.T) {
	st := mesos.TaskStatus{TaskID: mesos.TaskID{Value: "t1"}, State: mesos.TASK_RUNNING.Enum(), UUID: newUUID(),
		ExecutorID: &mesos.ExecutorID{Value: "e"}, Timestamp: ptrF(12.5)}
	b, err := encodeUpdateRecord(recordUpdate, "fw", "ag", &st, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeUpdateRecord(b)
	if err != nil || r.kind != recordUpdate || !r.status.Equal(&st) {
		t.Fatalf("decoded %+v, %v; want %v", r, err, st)
	}
	b, _ = encodeUpdateRecord(recordAck, "fw", "ag", nil, st.UUID)
	if r, err := decodeUpdateRecord(b); err != nil || r.kind != recordAck || string(r.uuid) != string(st.UUID) {
		t.Fatalf("decoded ack %+v, %v", r, err)
	}
}

func ptrF(f float64) *float64 { return &f }

func TestRestartKeepsNestedContainersOfRecoveredExecutors(t *testing.T) {
	t.Run("process mode", func(t *testing.T) { testRestartKeepsNestedContainers(t, false) })
	t.Run("isolating", func(t *testing.T) { testRestartKeepsNestedContainers(t, true) })
}

func testRestartKeepsNestedContainers(t *testing.T, isolating bool) {
	m := &fakeMaster{autoAck: true}
	cfg := restartConfig(t, m)
	if isolating {
		if os.Geteuid() != 0 {
			t.Skip("isolation needs root")
		}
		cfg.Isolation = linuxIsolation
		cfg.RuntimeDir = t.TempDir()
	}
	a1 := startAgent(t, m, cfg)
	if a1.Isolating() != isolating {
		t.Fatalf("isolating = %v", a1.Isolating())
	}
	a1.Launch(testFramework(true), processExecutor("exec-1", nil), []mesos.TaskInfo{dataTask("t1", "nested:sleep 300")}, false)
	nested := func(a *Agent) (key string, pid int) {
		a.mu.Lock()
		defer a.mu.Unlock()
		for k, c := range a.containers {
			if c.executor == nil && strings.HasSuffix(k, "/t1") && !c.exited {
				return k, c.pid
			}
		}
		return "", 0
	}
	waitFor(t, "the nested container", func() bool { _, pid := nested(a1); return pid > 0 })
	key, pid := nested(a1)
	cfg.ListenAddress = a1.Endpoint()
	a1.StopForRestart()
	if !processAlive(pid) {
		t.Fatal("the nested container died with the agent")
	}
	if isolating {
		// A restart that fails (its port taken) gives the containerizer back for the next attempt.
		busy, err := net.Listen("tcp", cfg.ListenAddress)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := New(cfg); err == nil {
			t.Fatal("New on a taken port succeeded")
		}
		busy.Close()
	}
	a2 := startAgent(t, m, cfg)
	if k, p := nested(a2); k != key || p != pid {
		t.Fatalf("nested container after the restart = %q pid %d, want %q pid %d", k, p, key, pid)
	}
	a2.Reregistered()
	if isolating && a2.cz != a1.cz {
		t.Error("the containerizer holding the containers was not recovered")
	}
	// The recovered executor launches more nested containers under the new agent.
	a2.Launch(testFramework(true), processExecutor("exec-1", nil), []mesos.TaskInfo{dataTask("t2", "nested:true")}, false)
	waitFor(t, "t2 finished", func() bool { s := m.states("t2"); return len(s) == 2 })
	if diff := cmp.Diff([]string{"TASK_RUNNING", "TASK_FINISHED"}, m.states("t2")); diff != "" {
		t.Errorf("t2 (-want +got):\n%s", diff)
	}
	if k, p := nested(a2); k != key || p != pid {
		t.Fatalf("nested container after the restart = %q pid %d, want %q pid %d", k, p, key, pid)
	}
	// The new agent owns it: killing it through the new agent ends it and the new agent sees it.
	a2.mu.Lock()
	c := a2.containers[key]
	c.killLocked(syscall.SIGKILL)
	a2.mu.Unlock()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the adopted container's exit was not seen")
	}
	a2.mu.Lock()
	exited, status := c.exited, c.status
	a2.mu.Unlock()
	if !exited || !syscall.WaitStatus(status).Signaled() {
		t.Errorf("exited %v status %d", exited, status)
	}
}
