package agent

import (
	"context"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
)

// defaultExecutor stands in for mesos-default-executor, in-process: it runs the tasks of a task group
// as nested containers under its own container, reports TASK_STARTING, TASK_RUNNING and the terminal
// state of each task; when a task fails or is killed the rest of its group is killed, as the default
// executor does. KILL sends TASK_KILLING (with the capability) and SIGTERM, then SIGKILL after the
// grace period. It exits once every task is terminal and acknowledged. State is owned by run.
type defaultExecutor struct {
	a     *Agent
	e     *executorRun
	exits chan taskExit
	stop  chan struct{} // closed when run returns

	tasks  map[string]*groupTask
	groups [][]string
	done   bool
}

type groupTask struct {
	info         mesos.TaskInfo
	group        int
	container    *container
	killing      bool
	terminal     bool
	terminalUUID []byte
	acked        bool
	escalation   *timerHandle
}

type taskExit struct {
	id     string
	status int32
}

func newDefaultExecutor(a *Agent, e *executorRun) *defaultExecutor {
	return &defaultExecutor{a: a, e: e, exits: make(chan taskExit), stop: make(chan struct{}), tasks: map[string]*groupTask{}}
}

func (d *defaultExecutor) run(ctx context.Context) int32 {
	defer close(d.stop)
	sink := newQueue[executor.Event]()
	d.a.mu.Lock()
	code, _ := d.a.subscribeLocked(d.e.fw.info.GetID().GetValue(), d.e.info.ExecutorID.Value, executor.Call_Subscribe{}, sink)
	d.a.mu.Unlock()
	if code != 200 {
		return 1 << 8
	}
	for !d.done {
		select {
		case <-sink.ready():
			events, closed := sink.drain()
			for _, ev := range events {
				d.handle(ev)
			}
			if closed && !d.done {
				return d.abort()
			}
		case x := <-d.exits:
			d.onExit(x)
		case <-ctx.Done():
			return d.abort()
		}
		if len(d.tasks) > 0 && d.allAcked() {
			d.done = true
		}
	}
	return 0
}

func (d *defaultExecutor) allAcked() bool {
	for _, t := range d.tasks {
		if !t.acked {
			return false
		}
	}
	return true
}

// abort kills every container; the agent reaps them (they are nested in the executor's container).
func (d *defaultExecutor) abort() int32 {
	d.a.mu.Lock()
	for _, t := range d.tasks {
		t.escalation.cancel()
		if t.container != nil {
			t.container.killLocked(syscall.SIGKILL)
		}
	}
	d.a.mu.Unlock()
	return int32(syscall.SIGKILL)
}

func (d *defaultExecutor) handle(ev executor.Event) {
	switch ev.Type {
	case executor.Event_LAUNCH_GROUP:
		d.launch(ev.LaunchGroup.TaskGroup.Tasks)
	case executor.Event_LAUNCH:
		d.launch([]mesos.TaskInfo{ev.Launch.Task})
	case executor.Event_KILL:
		if t := d.tasks[ev.Kill.TaskID.Value]; t != nil {
			d.killGroup(t.group, ev.Kill.KillPolicy)
		}
	case executor.Event_SHUTDOWN:
		if len(d.tasks) == 0 {
			d.done = true
		}
		for g := range d.groups {
			d.killGroup(g, nil)
		}
	case executor.Event_ACKNOWLEDGED:
		if t := d.tasks[ev.Acknowledged.TaskID.Value]; t != nil && t.terminal && string(ev.Acknowledged.UUID) == string(t.terminalUUID) {
			t.acked = true
		}
	}
}

func (d *defaultExecutor) launch(tasks []mesos.TaskInfo) {
	g := len(d.groups)
	var ids []string
	for _, ti := range tasks {
		d.tasks[ti.TaskID.Value] = &groupTask{info: ti, group: g}
		ids = append(ids, ti.TaskID.Value)
		d.update(ti.TaskID, mesos.TASK_STARTING, "")
	}
	d.groups = append(d.groups, ids)
	failed := false
	for _, id := range ids {
		t := d.tasks[id]
		parent := d.e.containerID
		cid := mesos.ContainerID{Value: id, Parent: &parent}
		d.a.mu.Lock()
		c, code, msg := d.a.launchContainerLocked(cid, t.info.Command, t.info.Container, false)
		d.a.mu.Unlock()
		if code != 200 {
			t.terminalUUID = d.update(t.info.TaskID, mesos.TASK_FAILED, "Failed to launch nested container: "+msg)
			t.terminal = true
			failed = true
			continue
		}
		t.container = c
		go func() {
			<-c.done
			d.a.mu.Lock()
			st := c.status
			d.a.mu.Unlock()
			select {
			case d.exits <- taskExit{id, st}:
			case <-d.stop:
			}
		}()
	}
	for _, id := range ids {
		if t := d.tasks[id]; !t.terminal {
			d.update(t.info.TaskID, mesos.TASK_RUNNING, "")
		}
	}
	if failed {
		d.killGroup(g, nil)
	}
}

// killGroup kills every live task of a group: TASK_KILLING, SIGTERM, SIGKILL after the grace period.
func (d *defaultExecutor) killGroup(g int, policy *mesos.KillPolicy) {
	capable := hasCapability(d.e.fw.info, mesos.FrameworkInfo_Capability_TASK_KILLING_STATE)
	for _, id := range d.groups[g] {
		t := d.tasks[id]
		if t.terminal || t.killing || t.container == nil {
			continue
		}
		t.killing = true
		grace := d.e.gracePeriod()
		if t.info.KillPolicy != nil && t.info.KillPolicy.GracePeriod != nil {
			grace = time.Duration(t.info.KillPolicy.GracePeriod.Nanoseconds)
		}
		if policy != nil && policy.GracePeriod != nil {
			grace = time.Duration(policy.GracePeriod.Nanoseconds)
		}
		c := t.container
		d.a.mu.Lock()
		t.escalation = d.a.afterLocked(grace, func() { c.killLocked(syscall.SIGKILL) })
		c.killLocked(syscall.SIGTERM)
		d.a.mu.Unlock()
		if capable {
			d.update(t.info.TaskID, mesos.TASK_KILLING, "")
		}
	}
}

func (d *defaultExecutor) onExit(x taskExit) {
	t := d.tasks[x.id]
	if t == nil || t.terminal {
		return
	}
	t.escalation.cancel()
	msg := "Command " + describeWaitStatus(x.status)
	state := mesos.TASK_FAILED
	switch {
	case t.killing:
		state = mesos.TASK_KILLED
	case x.status == 0:
		state = mesos.TASK_FINISHED
	}
	t.terminal = true
	t.terminalUUID = d.update(t.info.TaskID, state, msg)
	if state != mesos.TASK_FINISHED {
		d.killGroup(t.group, nil)
	}
}

// update sends a status update as the executor would with an UPDATE call; it returns the UUID.
func (d *defaultExecutor) update(id mesos.TaskID, state mesos.TaskState, msg string) []byte {
	return executorUpdate(d.a, d.e, id, state, msg)
}

// executorUpdate is an UPDATE call made by an in-process executor.
func executorUpdate(a *Agent, e *executorRun, id mesos.TaskID, state mesos.TaskState, msg string) []byte {
	st := mesos.TaskStatus{
		TaskID: id,
		State:  state.Enum(),
		Source: mesos.SOURCE_EXECUTOR.Enum(),
		UUID:   newUUID(),
	}
	if msg != "" {
		st.Message = &msg
	}
	eid := e.info.ExecutorID
	st.ExecutorID = &eid
	a.mu.Lock()
	if e.state != executorTerminated {
		a.statusUpdateLocked(e.fw, st, true)
	}
	a.mu.Unlock()
	return st.UUID
}
