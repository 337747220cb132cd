package agent

import (
	"context"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
)

// commandExecutor behaves like Mesos' HTTP command executor, in-process: it subscribes, runs the
// task's command in the sandbox (own process group), reports TASK_STARTING, TASK_RUNNING and then
// TASK_FINISHED / TASK_FAILED with the exit status; KILL sends TASK_KILLING (if the framework has the
// TASK_KILLING_STATE capability), SIGTERM, SIGKILL after the grace period, then TASK_KILLED. It exits
// once its terminal update is acknowledged. All its state is owned by the run goroutine.
type commandExecutor struct {
	a   *Agent
	e   *executorRun
	env map[string]string

	pid      atomic.Int64 // process group of the running task; 0 when none
	procExit chan int32

	task         *mesos.TaskInfo
	running      bool // process started and not yet reaped
	killed       bool
	terminal     bool
	terminalUUID []byte
	done         bool
	escalation   *timerHandle
}

func newCommandExecutor(a *Agent, e *executorRun, env map[string]string) *commandExecutor {
	return &commandExecutor{a: a, e: e, env: env, procExit: make(chan int32, 1)}
}

// killAll kills the task's process group at once. Called under the agent's lock.
func (c *commandExecutor) killAll() { killGroup(int(c.pid.Load()), syscall.SIGKILL) }

func (c *commandExecutor) run(ctx context.Context) int32 {
	sink := newQueue[executor.Event]()
	c.a.mu.Lock()
	code, _ := c.a.subscribeLocked(c.e.fw.info.GetID().GetValue(), c.e.info.ExecutorID.Value, executor.Call_Subscribe{}, sink)
	c.a.mu.Unlock()
	if code != 200 {
		return 1 << 8
	}
	for !c.done {
		select {
		case <-sink.ready():
			events, closed := sink.drain()
			for _, ev := range events {
				c.handle(ev)
			}
			if closed && !c.done {
				return c.abort()
			}
		case st := <-c.procExit:
			c.onExit(st)
		case <-ctx.Done():
			return c.abort()
		}
	}
	return 0
}

// abort kills the task and reaps it; the executor "process" ends as if killed.
func (c *commandExecutor) abort() int32 {
	c.escalation.cancel()
	if c.running {
		c.killAll()
		<-c.procExit
		c.running = false
	}
	return int32(syscall.SIGKILL)
}

func (c *commandExecutor) handle(ev executor.Event) {
	switch ev.Type {
	case executor.Event_LAUNCH:
		c.launch(ev.Launch.Task)
	case executor.Event_KILL:
		c.kill(ev.Kill.KillPolicy)
	case executor.Event_SHUTDOWN:
		if c.task == nil || c.terminal {
			c.done = true
			return
		}
		c.kill(nil)
	case executor.Event_ACKNOWLEDGED:
		if c.terminal && string(ev.Acknowledged.UUID) == string(c.terminalUUID) {
			c.done = true
		}
	}
}

func (c *commandExecutor) launch(t mesos.TaskInfo) {
	if c.task != nil {
		c.update(t.TaskID, mesos.TASK_FAILED, "Attempted to run multiple tasks using a \"command\" executor")
		return
	}
	c.task = &t
	c.update(t.TaskID, mesos.TASK_STARTING, "")
	var ci mesos.CommandInfo
	if t.Command != nil {
		ci = *t.Command
	}
	if ci.GetValue() == "" {
		if cmd, ok := c.a.imageCommand(t.Container); ok {
			ci.Value = &cmd
			ci.Shell = nil
		}
	}
	env := map[string]string{}
	for k, v := range c.env {
		env[k] = v
	}
	for _, v := range ci.GetEnvironment().GetVariables() {
		env[v.Name] = v.GetValue()
	}
	cmd, files, err := startSandboxProcess(ci, c.e.dir, mergeEnv(os.Environ(), env))
	if err != nil {
		c.finish(mesos.TASK_FAILED, "Failed to launch task: "+err.Error())
		return
	}
	pid := cmd.Process.Pid
	c.pid.Store(int64(pid))
	c.running = true
	go func() {
		st := waitStatus(cmd.Wait())
		killGroup(pid, syscall.SIGKILL)
		files.close()
		c.procExit <- st
	}()
	c.update(t.TaskID, mesos.TASK_RUNNING, "")
}

func (c *commandExecutor) kill(policy *mesos.KillPolicy) {
	if c.task == nil || c.terminal || c.killed {
		return
	}
	c.killed = true
	killing := hasCapability(c.e.fw.info, mesos.FrameworkInfo_Capability_TASK_KILLING_STATE)
	if !c.running {
		if killing {
			c.update(c.task.TaskID, mesos.TASK_KILLING, "")
		}
		c.finish(mesos.TASK_KILLED, "Command killed before it started")
		return
	}
	grace := c.e.gracePeriod()
	if c.task.KillPolicy != nil && c.task.KillPolicy.GracePeriod != nil {
		grace = time.Duration(c.task.KillPolicy.GracePeriod.Nanoseconds)
	}
	if policy != nil && policy.GracePeriod != nil {
		grace = time.Duration(policy.GracePeriod.Nanoseconds)
	}
	// The escalation timer is armed before TASK_KILLING is reported, so whoever sees TASK_KILLING can
	// rely on the grace period having started.
	pid := int(c.pid.Load())
	c.a.mu.Lock()
	c.escalation = c.a.afterLocked(grace, func() { killGroup(pid, syscall.SIGKILL) })
	c.a.mu.Unlock()
	killGroup(pid, syscall.SIGTERM)
	if killing {
		c.update(c.task.TaskID, mesos.TASK_KILLING, "")
	}
}

func (c *commandExecutor) onExit(status int32) {
	c.running = false
	c.pid.Store(0)
	c.escalation.cancel()
	msg := "Command " + describeWaitStatus(status)
	switch {
	case c.killed:
		c.finish(mesos.TASK_KILLED, msg)
	case status == 0:
		c.finish(mesos.TASK_FINISHED, msg)
	default:
		c.finish(mesos.TASK_FAILED, msg)
	}
}

func (c *commandExecutor) finish(state mesos.TaskState, msg string) {
	c.terminal = true
	c.terminalUUID = c.update(c.task.TaskID, state, msg)
}

// update sends a status update as the executor would with an UPDATE call; it returns the UUID.
func (c *commandExecutor) update(id mesos.TaskID, state mesos.TaskState, msg string) []byte {
	return executorUpdate(c.a, c.e, id, state, msg)
}
