package mesossim

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	rez "github.com/mesos/mesos-go/api/v1/lib/resources"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// testExecutor is the agent package's test executor (a real mesos-go executor), built once in TestMain.
var testExecutor string

func TestMain(m *testing.M) {
	// Agents with Linux isolators re-execute this binary as their launch helper.
	containerizer.MaybeRunHelper()
	dir, err := os.MkdirTemp("", "mesossim-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testExecutor = filepath.Join(dir, "testexecutor")
	cmd := exec.Command("go", "build", "-o", testExecutor, "github.com/kubemesos/kubemesos/mesossim/agent/internal/testexecutor")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the test executor:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// startCluster runs a real cluster (real agents, real executor processes) with manual allocation.
func startCluster(t *testing.T, agents int) (*Cluster, *harness) {
	t.Helper()
	c, err := StartCluster(ClusterConfig{
		Master:          Config{Log: quietLog()},
		Agents:          agents,
		AgentAttributes: "rack:r%d;zone:z1",
		WorkDir:         t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, &harness{t: t, m: c.Master, url: c.URL}
}

// ackUntil acknowledges the task's updates until it reaches want; it returns the states seen.
func (c *goClient) ackUntil(taskID string, want mesos.TaskState) []mesos.TaskState {
	c.t.Helper()
	var seen []mesos.TaskState
	for {
		st := c.next(scheduler.Event_UPDATE).Update.Status
		if st.TaskID.Value != taskID {
			continue
		}
		seen = append(seen, st.GetState())
		if len(st.UUID) > 0 {
			c.call(calls.Acknowledge(st.AgentID.Value, st.TaskID.Value, st.UUID))
		}
		if st.GetState() == want {
			return seen
		}
		if isTerminal(st.GetState()) {
			c.t.Fatalf("task %s ended %v (%s), want %v", taskID, st.GetState(), st.GetMessage(), want)
		}
	}
}

// TestClusterCommandTask: mesos-go scheduler, real agent, the agent's command executor.
func TestClusterCommandTask(t *testing.T) {
	cl, h := startCluster(t, 1)
	c := h.goSubscribe(&mesos.FrameworkInfo{User: "root", Name: "cmd"})
	cl.Master.Allocate()
	o := c.next(scheduler.Event_OFFERS).Offers.Offers[0]
	if len(o.Attributes) != 2 || o.Attributes[0].GetText().GetValue() != "r0" {
		t.Errorf("offer attributes %v, want rack:r0 and zone:z1", o.Attributes)
	}
	task := mesos.TaskInfo{Name: "echo", TaskID: mesos.TaskID{Value: "cmd-1"}, AgentID: o.AgentID,
		Command:   &mesos.CommandInfo{Value: proto.String("echo hello")},
		Resources: mesos.Resources{rez.NewCPUs(0.5).Resource, rez.NewMemory(64).Resource}}
	c.call(calls.Accept(calls.OfferOperations{calls.OpLaunch(task)}.WithOffers(o.ID)))
	seen := c.ackUntil("cmd-1", mesos.TASK_FINISHED)
	t.Logf("states: %v", seen)
	eventually(t, "task completed after the final acknowledgement", func() bool {
		return h.taskStates()["cmd-1"] == "completed:TASK_FINISHED"
	})
}

// TestClusterCustomExecutor: a scheduler written from the docs (JSON) launches a task on a custom
// executor process (the agent package's mesos-go test executor) and sees it finish.
func TestClusterCustomExecutor(t *testing.T) {
	cl, h := startCluster(t, 1)
	c := h.jsonSubscribe(fwInfo("custom", nil))
	cl.Master.Allocate()
	o := offersOf(c.next("OFFERS"))[0]
	task := commandTask("ex-1", o["agent_id"], 0.5, 64)
	delete(task, "command")
	task["data"] = base64.StdEncoding.EncodeToString([]byte("finish"))
	task["executor"] = map[string]any{
		"executor_id": map[string]any{"value": "test-executor"},
		"type":        "CUSTOM",
		"command":     map[string]any{"value": testExecutor, "shell": false, "arguments": []string{testExecutor}},
		"resources":   []any{scalar("cpus", 0.1), scalar("mem", 32)},
	}
	c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, task))
	var seen []string
	for {
		st := c.nextUpdate("ex-1")["update"].(map[string]any)["status"].(map[string]any)
		seen = append(seen, st["state"].(string))
		if u, ok := st["uuid"]; ok {
			c.mustCall("ACKNOWLEDGE", map[string]any{"acknowledge": map[string]any{"agent_id": st["agent_id"], "task_id": st["task_id"], "uuid": u}})
		}
		if st["state"] == "TASK_FINISHED" {
			break
		}
		if st["state"] != "TASK_STARTING" && st["state"] != "TASK_RUNNING" {
			t.Fatalf("unexpected state %v: %v", st["state"], st["message"])
		}
	}
	t.Logf("states: %v", seen)
	eventually(t, "task completed", func() bool { return h.taskStates()["ex-1"] == "completed:TASK_FINISHED" })

	// The executor keeps running: offers now name it, and killing it is a fault the scheduler sees.
	cl.Master.Allocate()
	o = offersOf(c.next("OFFERS"))[0]
	if ids, _ := o["executor_ids"].([]any); len(ids) != 1 {
		t.Errorf("offer executor_ids = %v, want the running executor", o["executor_ids"])
	}
	if err := cl.KillExecutor(str(o, "agent_id", "value"), c.fwID, "test-executor"); err != nil {
		t.Fatal(err)
	}
	if e := str(c.next("FAILURE"), "failure", "executor_id", "value"); e != "test-executor" {
		t.Errorf("FAILURE executor %q", e)
	}
}

// TestClusterPartitionRealAgent: a running custom-executor task on a partitioned agent becomes
// TASK_UNREACHABLE for a partition-aware framework and is RUNNING again after the heal.
func TestClusterPartitionRealAgent(t *testing.T) {
	cl, h := startCluster(t, 1)
	c := h.goSubscribe(&mesos.FrameworkInfo{User: "root", Name: "pa",
		Capabilities: []mesos.FrameworkInfo_Capability{{Type: mesos.FrameworkInfo_Capability_PARTITION_AWARE}}})
	cl.Master.Allocate()
	o := c.next(scheduler.Event_OFFERS).Offers.Offers[0]
	task := mesos.TaskInfo{Name: "w", TaskID: mesos.TaskID{Value: "wait-1"}, AgentID: o.AgentID, Data: []byte("wait"),
		Executor: &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "e"}, Type: mesos.ExecutorInfo_CUSTOM,
			Command: &mesos.CommandInfo{Value: proto.String(testExecutor), Shell: proto.Bool(false), Arguments: []string{testExecutor}}},
		Resources: mesos.Resources{rez.NewCPUs(0.5).Resource, rez.NewMemory(64).Resource}}
	c.call(calls.Accept(calls.OfferOperations{calls.OpLaunch(task)}.WithOffers(o.ID)))
	c.ackUntil("wait-1", mesos.TASK_RUNNING)
	if err := cl.PartitionAgent(o.AgentID.Value); err != nil {
		t.Fatal(err)
	}
	if st := c.next(scheduler.Event_UPDATE).Update.Status; st.GetState() != mesos.TASK_UNREACHABLE {
		t.Fatalf("after partition: %v", st.GetState())
	}
	if err := cl.HealAgent(o.AgentID.Value); err != nil {
		t.Fatal(err)
	}
	c.call(calls.Reconcile(calls.ReconcileTasks(map[string]string{"wait-1": o.AgentID.Value})))
	if st := c.next(scheduler.Event_UPDATE).Update.Status; st.GetState() != mesos.TASK_RUNNING || st.GetReason() != mesos.REASON_RECONCILIATION {
		t.Errorf("reconciled after heal: %v %v", st.GetState(), st.GetReason())
	}
	c.call(calls.Kill("wait-1", o.AgentID.Value))
	c.ackUntil("wait-1", mesos.TASK_KILLED)
}

// TestClusterExecutorHook: with an in-process executor hook, an executor that returns without
// subscribing fails its task as Mesos does (TASK_FAILED from the agent) and the scheduler gets FAILURE.
func TestClusterExecutorHook(t *testing.T) {
	envs := make(chan map[string]string, 1)
	cl, err := StartCluster(ClusterConfig{
		Master: Config{Log: quietLog()}, Agents: 1, WorkDir: t.TempDir(),
		ExecutorHook: func(_ context.Context, env map[string]string) error {
			envs <- env
			return errors.New("exiting without subscribing")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	h := &harness{t: t, m: cl.Master, url: cl.URL}
	c := h.goSubscribe(&mesos.FrameworkInfo{User: "root", Name: "hook"})
	cl.Master.Allocate()
	o := c.next(scheduler.Event_OFFERS).Offers.Offers[0]
	task := mesos.TaskInfo{Name: "h", TaskID: mesos.TaskID{Value: "hook-1"}, AgentID: o.AgentID,
		Executor: &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "hooked"}, Type: mesos.ExecutorInfo_CUSTOM,
			Command: &mesos.CommandInfo{Value: proto.String("unused")}},
		Resources: mesos.Resources{rez.NewCPUs(0.5).Resource, rez.NewMemory(64).Resource}}
	c.call(calls.Accept(calls.OfferOperations{calls.OpLaunch(task)}.WithOffers(o.ID)))
	select {
	case env := <-envs:
		if env["MESOS_EXECUTOR_ID"] != "hooked" || env["MESOS_FRAMEWORK_ID"] != c.fwID {
			t.Errorf("hook env %v", env)
		}
	case <-time.After(waitTimeout):
		t.Fatal("hook not called")
	}
	st := c.next(scheduler.Event_UPDATE).Update.Status
	if st.GetState() != mesos.TASK_FAILED || st.GetSource() != mesos.SOURCE_AGENT {
		t.Errorf("update %v from %v, want TASK_FAILED from SOURCE_AGENT", st.GetState(), st.GetSource())
	}
	if f := c.next(scheduler.Event_FAILURE).Failure; f.GetExecutorID().GetValue() != "hooked" {
		t.Errorf("FAILURE %v", f)
	}
}

// TestClusterAllocationLoop: with an allocation interval, offers come by themselves; a declined offer
// (refuse_seconds 0) comes back in a later cycle.
func TestClusterAllocationLoop(t *testing.T) {
	cl, err := StartCluster(ClusterConfig{Master: Config{Log: quietLog(), AllocationInterval: 20 * time.Millisecond}, Agents: 2, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	h := &harness{t: t, m: cl.Master, url: cl.URL}
	c := h.jsonSubscribe(fwInfo("loop", nil))
	got := map[string]bool{}
	for len(got) < 2 {
		for _, o := range offersOf(c.next("OFFERS")) {
			got[str(o, "agent_id", "value")] = true
			c.mustCall("DECLINE", map[string]any{"decline": map[string]any{"offer_ids": []any{o["id"]}, "filters": map[string]any{"refuse_seconds": 0}}})
		}
	}
	if n := len(offersOf(c.next("OFFERS"))); n == 0 {
		t.Error("declined resources not offered again")
	}
}
