package agent

import (
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Master is what an agent needs from the master it is registered with. In real Mesos this is the
// internal agent↔master protocol; here it is an in-process interface implemented by mesossim.Master.
// Calls may arrive from any goroutine and must not block for long.
type Master interface {
	// StatusUpdate forwards a task status update (with a UUID) to the task's framework. The agent keeps
	// resending the head of each task's queue with back-off until Agent.Acknowledge is called for it.
	StatusUpdate(agentID mesos.AgentID, frameworkID mesos.FrameworkID, status mesos.TaskStatus)
	// ExecutorMessage forwards executor → scheduler data (scheduler event MESSAGE).
	ExecutorMessage(agentID mesos.AgentID, frameworkID mesos.FrameworkID, executorID mesos.ExecutorID, data []byte)
	// ExecutorTerminated reports that an executor process exited (scheduler event FAILURE with status) and
	// that its resources are free again. status is the exit status (as Mesos reports wait status).
	ExecutorTerminated(agentID mesos.AgentID, frameworkID mesos.FrameworkID, executorID mesos.ExecutorID, status int32)
	// ResourcesRecovered tells the master that resources used by a terminal task or a removed executor are
	// free on this agent (the master returns them to the allocator). The agent calls it exactly once per
	// task, with TaskInfo.resources, when the task's first terminal status is recorded (before that update
	// is acknowledged, like Mesos' latest_state), and once per custom executor, with
	// ExecutorInfo.resources, right after ExecutorTerminated. A master uses either this call or its own
	// bookkeeping of terminal updates and ExecutorTerminated (as Mesos' master does), never both;
	// mesossim.Master does the latter and only logs this call. Nothing is called while the agent is
	// partitioned: on heal the master rebuilds its view from Tasks()/Executors() (as on reregistration).
	ResourcesRecovered(agentID mesos.AgentID, frameworkID mesos.FrameworkID, resources mesos.Resources)
}

// Ordering and delivery: every Master call is made from one goroutine per agent, outside the agent's
// lock, in the order the agent produced them; a Master implementation may call back into the agent
// (e.g. Acknowledge from inside StatusUpdate). After Stop nothing more is called. While partitioned,
// StatusUpdate is held (forwarded again on heal), ExecutorMessage is dropped, ExecutorTerminated and
// ResourcesRecovered are not sent. Command executors (tasks launched without an ExecutorInfo) never
// produce ExecutorTerminated, as in Mesos.

// The master drives an agent through these methods of *Agent (implemented in this package):
//
//	Launch(fw mesos.FrameworkInfo, executor *mesos.ExecutorInfo, tasks []mesos.TaskInfo, group bool)
//	    executor == nil: command tasks (the agent runs its command executor). group: LAUNCH_GROUP.
//	    Tasks are already validated by the master against the offer. As in real Mesos the master
//	    records them as TASK_STAGING without sending an update; the first update comes from the
//	    executor (TASK_STARTING/TASK_RUNNING). An executor that cannot start or exits without
//	    subscribing yields TASK_FAILED (SOURCE_AGENT, REASON_EXECUTOR_TERMINATED) for its tasks and
//	    Master.ExecutorTerminated.
//	Kill(frameworkID, taskID, killPolicy *mesos.KillPolicy)
//	Acknowledge(frameworkID, taskID, uuid []byte)
//	ShutdownExecutor(frameworkID, executorID)
//	ShutdownFramework(frameworkID)
//	FrameworkMessage(frameworkID, executorID, data []byte)
//	Tasks() []TaskState   // what is running here, for reconciliation and reregistration
//	Stop()                // agent process goes away: executors and containers killed
//	Partition(bool)       // while partitioned no updates reach the master; queued updates wait
//
// Added by the agent side (additive, see /work/notes/sim-interface-requests.md):
//
//	New(Config) (*Agent, error)   // starts the agent's HTTP listener (Config.ListenAddress, default 127.0.0.1:0)
//	ID(), Info() mesos.AgentInfo, Endpoint() "host:port", PID()
//	Executors() []ExecutorState   // live executors (with their container IDs)
//	KillExecutor(frameworkID, executorID) error          // fault: SIGKILL the executor
//	SetUpdateFaults(UpdateFaults{Delay, Duplicate})        // fault hooks on update forwarding
//	ImageCommandsFlag / ParseImageCommand                  // for mesos-sim --image-command image=cmd
