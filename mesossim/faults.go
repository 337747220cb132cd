package mesossim

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"
)

// agentLost takes an agent out of the cluster, as Mesos' master does when it removes an agent or marks
// it unreachable: its offers are rescinded, its tasks get state (mapped to TASK_LOST for frameworks
// that are not PARTITION_AWARE) with REASON_AGENT_REMOVED, and every framework gets FAILURE(agent_id).
func (m *Master) agentLost(ag *agentEntry, state mesos.TaskState, keepUnreachable bool, why string) {
	m.agentLostBy(ag, state, keepUnreachable, why, false)
}

// agentLostBy is agentLost; byOperator gives PARTITION_AWARE frameworks' tasks
// REASON_AGENT_REMOVED_BY_OPERATOR, as Master::__removeSlave does for an operator's removal.
func (m *Master) agentLostBy(ag *agentEntry, state mesos.TaskState, keepUnreachable bool, why string, byOperator bool) {
	id := ag.info.ID.Value
	m.withdrawAgent(id)
	aid := mesos.AgentID{Value: id}
	for _, f := range m.sortedFrameworks() {
		for _, t := range sortedTasks(f.tasks) {
			if t.task.AgentID.Value != id {
				continue
			}
			delete(f.tasks, t.task.TaskID.Value)
			wasTerminal := t.terminal
			t.terminal = true
			if !wasTerminal {
				reason := mesos.REASON_AGENT_REMOVED
				if byOperator && f.partitionAware() {
					reason = mesos.REASON_AGENT_REMOVED_BY_OPERATOR
				}
				f.send(m.masterUpdate(t.task.TaskID, &aid, lostState(f, state), reason, why))
			}
			if keepUnreachable && !wasTerminal {
				// As Mesos' master records it: TASK_UNREACHABLE in unreachable_tasks and in the answer
				// to reconciliation, until the agent re-registers.
				t.reachableState = t.task.GetState()
				st := lostState(f, state)
				t.task.State = &st
				f.unreachable[t.task.TaskID.Value] = t
				continue
			}
			st := lostState(f, state)
			t.task.State = &st
			f.addCompleted(t, m.cfg.MaxCompletedTasksPerFramework)
		}
		if !keepUnreachable {
			delete(f.executors, id)
		}
		f.send(&scheduler.Event{Type: scheduler.Event_FAILURE, Failure: &scheduler.Event_Failure{AgentID: &aid}})
	}
}

// RemoveAgent stops an agent for good (the machine is gone): TASK_GONE (TASK_LOST without
// PARTITION_AWARE) for its tasks, FAILURE to every framework, offers rescinded.
func (m *Master) RemoveAgent(id string) error {
	m.lock()
	defer m.unlock()
	ag := m.agents[id]
	if ag == nil {
		return fmt.Errorf("removing agent %s: %w", id, ErrUnknownAgent)
	}
	m.removeAgent(ag, mesos.TASK_GONE, "Agent "+ag.info.Hostname+" removed: agent stopped", false)
	return nil
}

// removeAgent removes and stops a registered agent, its tasks ending in state (why as the message).
func (m *Master) removeAgent(ag *agentEntry, state mesos.TaskState, why string, byOperator bool) {
	id := ag.info.ID.Value
	if !ag.unreachable {
		m.agentLostBy(ag, state, false, why, byOperator)
	}
	delete(m.agents, id)
	for _, f := range m.frameworks {
		for tid, t := range f.unreachable {
			if t.task.AgentID.Value == id {
				delete(f.unreachable, tid)
				f.addCompleted(t, m.cfg.MaxCompletedTasksPerFramework)
			}
		}
		delete(f.executors, id)
	}
	m.tellAndWait(ag, func(h Agent) { h.Stop() })
	m.log.WithField("agent", id).Info("agent removed")
}

// PartitionAgent cuts an agent off from the master: the master marks it unreachable (TASK_UNREACHABLE,
// or TASK_LOST without PARTITION_AWARE; FAILURE; offers rescinded) and nothing from it arrives until
// HealAgent.
func (m *Master) PartitionAgent(id string) error {
	m.lock()
	defer m.unlock()
	ag := m.agents[id]
	if ag == nil {
		return fmt.Errorf("partitioning agent %s: %w", id, ErrUnknownAgent)
	}
	if ag.unreachable {
		return nil
	}
	ag.unreachable = true
	ag.unreachableT = m.clock.Now()
	m.tellAndWait(ag, func(h Agent) { h.Partition(true) })
	m.agentLost(ag, mesos.TASK_UNREACHABLE, true, "Agent "+ag.info.Hostname+" is unreachable")
	m.log.WithField("agent", id).Info("agent partitioned (unreachable)")
	return nil
}

// HealAgent ends a partition: the agent re-registers. As in Mesos 1.x, tasks of PARTITION_AWARE
// frameworks keep running and are known again (frameworks learn it by reconciling); tasks of other
// frameworks are killed on the agent (their TASK_KILLED updates are forwarded).
func (m *Master) HealAgent(id string) error {
	m.lock()
	defer m.unlock()
	ag := m.agents[id]
	if ag == nil {
		return fmt.Errorf("healing agent %s: %w", id, ErrUnknownAgent)
	}
	if !ag.unreachable {
		return nil
	}
	ag.unreachable = false
	now := m.clock.Now()
	ag.reregistered = &now
	m.alloc.AddAgent(id, ag.info.Resources)
	m.tellAndWait(ag, func(h Agent) { h.Partition(false) })
	for _, f := range m.sortedFrameworks() {
		killAll := false
		for _, t := range sortedTasks(f.unreachable) {
			if t.task.AgentID.Value != id {
				continue
			}
			delete(f.unreachable, t.task.TaskID.Value)
			if f.partitionAware() {
				t.terminal = false
				st := t.reachableState
				t.task.State = &st
				f.tasks[t.task.TaskID.Value] = t
				m.alloc.Allocated(id, f.id, t.role, t.task.Resources)
			} else {
				killAll = true
				f.addCompleted(t, m.cfg.MaxCompletedTasksPerFramework)
			}
		}
		if killAll {
			delete(f.executors, id)
			fid := mesos.FrameworkID{Value: f.id}
			m.tell(ag, func(h Agent) { h.ShutdownFramework(fid) })
			continue
		}
		for _, e := range f.executors[id] {
			m.alloc.Allocated(id, f.id, roleOf(e.Resources, f.roles), e.Resources)
		}
	}
	m.log.WithField("agent", id).Info("agent re-registered after partition")
	m.kick()
	return nil
}

// KillExecutor kills an executor process on an agent (fault); the agent reports its termination.
func (m *Master) KillExecutor(agentID, frameworkID, executorID string) error {
	m.mu.Lock()
	ag := m.agents[agentID]
	m.mu.Unlock()
	if ag == nil {
		return fmt.Errorf("killing executor %s on %s: %w", executorID, agentID, ErrUnknownAgent)
	}
	k, ok := ag.handle.(ExecutorKiller)
	if !ok {
		return fmt.Errorf("killing executor %s on %s: agent does not support killing executors", executorID, agentID)
	}
	if err := k.KillExecutor(mesos.FrameworkID{Value: frameworkID}, mesos.ExecutorID{Value: executorID}); err != nil {
		return fmt.Errorf("killing executor %s on %s: %w", executorID, agentID, err)
	}
	return nil
}

// Failover simulates a leading-master failover: a new master ID, every subscription stream dropped
// (frameworks must re-subscribe with their FrameworkID), outstanding offers gone. Agents, frameworks'
// tasks and executors are kept, as agents re-register them with the new leader.
func (m *Master) Failover() {
	m.lock()
	defer m.unlock()
	for _, o := range m.offers {
		m.removeOffer(o, true, 0)
	}
	for _, f := range m.sortedFrameworks() {
		if f.stream != nil {
			m.disconnect(f, false)
		}
	}
	m.elect()
	m.failovers++
	m.log.WithField("master_id", m.info.ID).Info("master failed over")
}

// SetStatusUpdateFaults delays (by delay, on the master's clock) and/or duplicates every status update
// forwarded to frameworks from now on. Zero and false restore normal delivery.
func (m *Master) SetStatusUpdateFaults(delay time.Duration, duplicate bool) {
	m.lock()
	defer m.unlock()
	m.faults = updateFaults{delay: delay, duplicate: duplicate}
	m.log.WithFields(logrus.Fields{"delay": delay, "duplicate": duplicate}).Info("status update faults set")
}

// serveAdmin is the simulator's fault endpoint, separate from every Mesos API:
//
//	POST /admin/agents/{id}/remove | /partition | /heal
//	POST /admin/executors/kill?agent=A&framework=F&executor=E
//	POST /admin/failover
//	POST /admin/status-updates?delay=2s&duplicate=true
//	POST /admin/allocate   (one allocation cycle now; answers {"offers": n})
func (m *Master) serveAdmin(w http.ResponseWriter, r *http.Request) {
	mux := http.NewServeMux()
	agentVerb := func(f func(string) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { adminResult(w, f(r.PathValue("id"))) }
	}
	mux.HandleFunc("POST /admin/agents/{id}/remove", agentVerb(m.RemoveAgent))
	mux.HandleFunc("POST /admin/agents/{id}/partition", agentVerb(m.PartitionAgent))
	mux.HandleFunc("POST /admin/agents/{id}/heal", agentVerb(m.HealAgent))
	mux.HandleFunc("POST /admin/executors/kill", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("agent") == "" || q.Get("framework") == "" || q.Get("executor") == "" {
			httpError(w, http.StatusBadRequest, "agent, framework and executor query parameters are required")
			return
		}
		adminResult(w, m.KillExecutor(q.Get("agent"), q.Get("framework"), q.Get("executor")))
	})
	mux.HandleFunc("POST /admin/failover", func(w http.ResponseWriter, r *http.Request) {
		m.Failover()
		adminResult(w, nil)
	})
	mux.HandleFunc("POST /admin/status-updates", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var delay time.Duration
		var dup bool
		var err error
		if s := q.Get("delay"); s != "" {
			if delay, err = time.ParseDuration(s); err != nil || delay < 0 {
				httpError(w, http.StatusBadRequest, fmt.Sprintf("bad delay %q", s))
				return
			}
		}
		if s := q.Get("duplicate"); s != "" {
			if dup, err = strconv.ParseBool(s); err != nil {
				httpError(w, http.StatusBadRequest, fmt.Sprintf("bad duplicate %q", s))
				return
			}
		}
		m.SetStatusUpdateFaults(delay, dup)
		adminResult(w, nil)
	})
	mux.HandleFunc("POST /admin/allocate", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]int{"offers": m.Allocate()})
	})
	mux.ServeHTTP(w, r)
}

func adminResult(w http.ResponseWriter, err error) {
	switch {
	case err == nil:
		writeJSON(w, map[string]string{"result": "ok"})
	case errors.Is(err, ErrUnknownAgent):
		httpError(w, http.StatusNotFound, err.Error())
	default:
		httpError(w, http.StatusConflict, err.Error())
	}
}

// withdrawAgent takes an agent out of allocation, as Master::removeSlave and Master::exited do: its
// offers and inverse offers are rescinded and the allocator forgets it.
func (m *Master) withdrawAgent(id string) {
	for _, oid := range sortedKeys(m.offers) {
		if o := m.offers[oid]; o.offer.AgentID.Value == id {
			m.rescind(o, false, 0)
		}
	}
	for _, ioid := range sortedKeys(m.maint.inverse) {
		if io := m.maint.inverse[ioid]; io.offer.AgentID.Value == id {
			m.removeInverseOffer(io, true)
		}
	}
	m.alloc.RemoveAgent(id)
}
