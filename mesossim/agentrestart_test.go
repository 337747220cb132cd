package mesossim

import (
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	rez "github.com/mesos/mesos-go/api/v1/lib/resources"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// TestClusterRestartAgent: an agent restarted under running executors keeps the checkpointing
// framework's task RUNNING at the master (the executor re-subscribes to the new agent, which kills
// the task through it afterwards), while the task of a framework without checkpointing is lost when
// the agent disconnects (TASK_LOST, REASON_AGENT_DISCONNECTED) and its executor is gone.
func TestClusterRestartAgent(t *testing.T) {
	cl, h := startCluster(t, 1)
	launch := func(c *goClient, taskID string) mesos.AgentID {
		cl.Master.Allocate()
		o := c.next(scheduler.Event_OFFERS).Offers.Offers[0]
		task := mesos.TaskInfo{Name: taskID, TaskID: mesos.TaskID{Value: taskID}, AgentID: o.AgentID, Data: []byte("wait"),
			Executor: &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "e-" + taskID}, Type: mesos.ExecutorInfo_CUSTOM,
				Command: &mesos.CommandInfo{Value: proto.String(testExecutor), Shell: proto.Bool(false), Arguments: []string{testExecutor}}},
			Resources: mesos.Resources{rez.NewCPUs(0.5).Resource, rez.NewMemory(64).Resource}}
		c.call(calls.Accept(calls.OfferOperations{calls.OpLaunch(task)}.WithOffers(o.ID)))
		c.ackUntil(taskID, mesos.TASK_RUNNING)
		return o.AgentID
	}
	ck := h.goSubscribe(&mesos.FrameworkInfo{User: "root", Name: "checkpointing", Checkpoint: proto.Bool(true)})
	agentID := launch(ck, "ck-1")
	nock := h.goSubscribe(&mesos.FrameworkInfo{User: "root", Name: "not-checkpointing"})
	launch(nock, "nock-1")
	before := cl.Agents()[0].Executors()

	a, err := cl.RestartAgent(agentID.Value, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if st := nock.next(scheduler.Event_UPDATE).Update.Status; st.GetState() != mesos.TASK_LOST ||
		st.GetReason() != mesos.REASON_AGENT_DISCONNECTED || st.GetMessage() != "Agent mesos-agent-0 disconnected" {
		t.Errorf("not-checkpointing task after the restart: %v", st)
	}
	after := a.Executors()
	if len(after) != 1 || after[0].Info.ExecutorID.Value != "e-ck-1" || after[0].ContainerID != findExecutor(before, "e-ck-1").ContainerID {
		t.Fatalf("executors after the restart = %+v, want e-ck-1's run from before %+v", after, before)
	}
	if got := h.taskStates()["ck-1"]; got != "TASK_RUNNING" {
		t.Errorf("master's ck-1 = %q, want TASK_RUNNING", got)
	}
	ck.call(calls.Reconcile(calls.ReconcileTasks(map[string]string{"ck-1": agentID.Value})))
	if st := ck.next(scheduler.Event_UPDATE).Update.Status; st.GetState() != mesos.TASK_RUNNING {
		t.Errorf("reconciled ck-1: %v", st.GetState())
	}
	ck.call(calls.Kill("ck-1", agentID.Value))
	ck.ackUntil("ck-1", mesos.TASK_KILLED)
	// The agent offers again (to the framework with the lower share).
	cl.Master.Allocate()
	if o := nock.next(scheduler.Event_OFFERS).Offers.Offers[0]; o.AgentID != agentID {
		t.Errorf("offer from %v", o.AgentID)
	}
}

func findExecutor(ex []agent.ExecutorState, id string) agent.ExecutorState {
	for _, e := range ex {
		if e.Info.ExecutorID.Value == id {
			return e
		}
	}
	return agent.ExecutorState{}
}

// An agent re-registering with tasks of a framework the master does not know gets one
// ShutdownFrameworkMessage for it, not one per task (Master::reregisterSlave).
func TestReregisterShutsDownUnknownFrameworkOnce(t *testing.T) {
	h := newHarness(t, Config{}, 1, "cpus:4;mem:1024")
	a := h.agents[0]
	if err := h.m.DisconnectAgent(a.id); err != nil {
		t.Fatal(err)
	}
	gone := mesos.FrameworkID{Value: "gone-0000"}
	var tasks []agent.TaskState
	for _, id := range []string{"t1", "t2", "t3"} {
		tasks = append(tasks, agent.TaskState{FrameworkID: gone, ExecutorID: mesos.ExecutorID{Value: "e"},
			Task: mesos.TaskInfo{Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: mesos.AgentID{Value: a.id}}, State: mesos.TASK_RUNNING})
	}
	rs, err := ParseResources("cpus:4;mem:1024")
	if err != nil {
		t.Fatal(err)
	}
	info := mesos.AgentInfo{ID: &mesos.AgentID{Value: a.id}, Hostname: "host-0", Resources: rs}
	if err := h.m.ReregisterAgent(info, a, tasks, nil); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range a.calls() {
		if c == "shutdown-framework" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d ShutdownFramework calls for the unknown framework, want 1 (calls %q)", n, a.calls())
	}
}
