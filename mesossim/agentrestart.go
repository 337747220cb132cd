package mesossim

import (
	"fmt"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// DisconnectAgent is Master::exited for an agent whose process went away (an agent restart): the agent
// is deactivated (its offers and inverse offers rescinded, nothing offered from it) but its tasks stay
// as they are, since the agent will recover them; the tasks of frameworks that do not checkpoint are
// lost at once (TASK_LOST, REASON_AGENT_DISCONNECTED, "Agent <hostname> disconnected"), as their
// executors do not survive the restart.
func (m *Master) DisconnectAgent(id string) error {
	m.lock()
	defer m.unlock()
	ag := m.agents[id]
	if ag == nil {
		return fmt.Errorf("disconnecting agent %s: %w", id, ErrUnknownAgent)
	}
	if ag.disconnected || ag.unreachable {
		return nil
	}
	ag.disconnected = true
	m.withdrawAgent(id)
	aid := mesos.AgentID{Value: id}
	for _, f := range m.sortedFrameworks() {
		if f.info.GetCheckpoint() {
			continue
		}
		for _, t := range sortedTasks(f.tasks) {
			if t.task.AgentID.Value != id {
				continue
			}
			delete(f.tasks, t.task.TaskID.Value)
			if !t.terminal {
				t.terminal = true
				st := mesos.TASK_LOST
				t.task.State = &st
				ev := m.masterUpdate(t.task.TaskID, &aid, st, mesos.REASON_AGENT_DISCONNECTED, "Agent "+ag.info.Hostname+" disconnected")
				if t.task.ExecutorID != nil {
					eid := *t.task.ExecutorID
					ev.Update.Status.ExecutorID = &eid
				}
				f.send(ev)
			}
			f.addCompleted(t, m.cfg.MaxCompletedTasksPerFramework)
		}
		delete(f.executors, id)
	}
	m.log.WithField("agent", id).Info("agent disconnected")
	return nil
}

// ReregisterAgent is Master::reregisterSlave for a known agent that was disconnected (a restarted
// agent, with the same ID, that recovered its state): its resources count again with the allocations
// of the tasks and executors it still has, the executors it no longer has are removed, and the tasks
// the master knows but the agent does not are reconciled through the agent (reconcileKnownSlave),
// which answers TASK_LOST or TASK_DROPPED for them. Frameworks the master does not know are shut down
// on the agent. The agent then forwards its status updates (agent.Agent.Reregistered).
func (m *Master) ReregisterAgent(info mesos.AgentInfo, a Agent, tasks []agent.TaskState, executors []agent.ExecutorState) error {
	if info.ID == nil || info.ID.Value == "" {
		return fmt.Errorf("re-registering agent %q: agent ID is required", info.Hostname)
	}
	m.lock()
	defer m.unlock()
	id := info.ID.Value
	ag := m.agents[id]
	if ag == nil {
		return fmt.Errorf("re-registering agent %s: %w", id, ErrUnknownAgent)
	}
	ag.info = info
	ag.handle = a
	ag.disconnected = false
	now := m.clock.Now()
	ag.reregistered = &now
	reported := map[[2]string]bool{}
	for _, t := range tasks {
		reported[[2]string{t.FrameworkID.Value, t.Task.TaskID.Value}] = true
	}
	hasExecutor := map[[2]string]bool{}
	for _, e := range executors {
		hasExecutor[[2]string{e.FrameworkID.Value, e.Info.ExecutorID.Value}] = true
	}
	shutdown := map[string]bool{} // one ShutdownFrameworkMessage per unknown framework, as reregisterSlave
	for _, t := range tasks {
		if fid := t.FrameworkID; m.frameworks[fid.Value] == nil && !shutdown[fid.Value] {
			shutdown[fid.Value] = true
			m.later(func() { a.ShutdownFramework(fid) })
		}
	}
	if !ag.unreachable {
		m.alloc.AddAgent(id, info.Resources)
	}
	rec, _ := a.(interface {
		ReconcileTasks(mesos.FrameworkInfo, []mesos.TaskID)
	})
	for _, f := range m.sortedFrameworks() {
		var unknown []mesos.TaskID
		for _, t := range sortedTasks(f.tasks) {
			if t.task.AgentID.Value != id || t.terminal {
				continue
			}
			if !reported[[2]string{f.id, t.task.TaskID.Value}] {
				m.log.WithFields(logrus.Fields{"agent": id, "task": t.task.TaskID.Value}).
					Warn("task unknown to the agent during re-registration: reconciling with the agent")
				unknown = append(unknown, t.task.TaskID)
			}
			if !ag.unreachable {
				m.alloc.Allocated(id, f.id, t.role, t.task.Resources)
			}
		}
		for eid, e := range f.executors[id] {
			if !hasExecutor[[2]string{f.id, eid}] {
				m.log.WithFields(logrus.Fields{"agent": id, "executor": eid}).Warn("executor possibly unknown to the agent")
				delete(f.executors[id], eid)
				continue
			}
			if !ag.unreachable {
				m.alloc.Allocated(id, f.id, roleOf(e.Resources, f.roles), e.Resources)
			}
		}
		if len(unknown) > 0 && rec != nil {
			fw := f.info
			m.later(func() { rec.ReconcileTasks(fw, unknown) })
		}
	}
	if r, ok := a.(interface{ Reregistered() }); ok {
		m.later(r.Reregistered)
	}
	m.log.WithFields(logrus.Fields{"agent": id, "hostname": info.Hostname}).Info("agent re-registered after a restart")
	m.kick()
	return nil
}

// RestartAgent restarts an agent as an operator restarting mesos-agent does (an upgrade): the
// process goes away (the master notices the agent disconnected), stays down for downtime, and a new
// agent with the same work dir, ID and endpoint recovers its checkpointed state, waits for its
// executors to re-subscribe (--executor_reregistration_timeout) and re-registers with the master.
// Executors of frameworks that checkpoint keep running throughout; the others are lost. It returns
// the new agent once it has re-registered.
func (c *Cluster) RestartAgent(id string, downtime time.Duration) (*agent.Agent, error) {
	c.mu.Lock()
	cfg, ok := c.configs[id]
	idx := -1
	var old *agent.Agent
	for i, a := range c.agents {
		if a.ID().Value == id {
			idx, old = i, a
		}
	}
	c.mu.Unlock()
	if !ok || idx < 0 {
		return nil, fmt.Errorf("restarting agent %s: %w", id, ErrUnknownAgent)
	}
	cfg.ListenAddress = old.Endpoint() // executors find their agent again at the same address
	if err := c.Master.DisconnectAgent(id); err != nil {
		return nil, err
	}
	old.StopForRestart()
	time.Sleep(downtime)
	a, err := agent.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("restarting agent %s: %w", id, err)
	}
	c.mu.Lock()
	c.agents[idx] = a
	c.mu.Unlock()
	<-a.Recovered()
	if err := c.Master.ReregisterAgent(a.Info(), a, a.Tasks(), a.Executors()); err != nil {
		return a, err
	}
	return a, nil
}
