package main

import (
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// faultAgentRestart restarts an agent as an operator upgrading mesos-agent does: the process goes
// away for agentRestartDowntime and a new one recovers its checkpointed executors (the framework
// checkpoints), which keep their pods running (mesossim.Cluster.RestartAgent).
const faultAgentRestart = "agent restart"

const agentRestartDowntime = 3 * time.Second

// restarting serializes restarts: an agent comes back on its old endpoint, so two restarts of one
// agent may not overlap.
var restarting sync.Mutex

// restartAgent injects one agent restart on its own goroutine (heal waits for it).
func (w *world) restartAgent(f fault, log *logrus.Entry, heal *sync.WaitGroup) {
	agents := w.sim.Agents()
	a := agents[f.pick%uint64(len(agents))]
	id := a.ID().Value
	log.WithField("agent", id).Info("injecting")
	heal.Add(1)
	go func() {
		defer heal.Done()
		restarting.Lock()
		defer restarting.Unlock()
		if _, err := w.sim.RestartAgent(id, agentRestartDowntime); err != nil {
			w.log.WithError(err).WithField("agent", id).Warn("restarting the agent")
		}
	}()
}
