package agent

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// Agent restart and recovery, as Mesos 1.x does it (src/slave/slave.cpp recover(), state.cpp,
// docs/agent-recovery.md). StopForRestart is the agent process going away while the executors it
// launched keep running; New with the same WorkDir and ID is the agent coming back: it reads its
// checkpoint (checkpoint.go), recovers the frameworks that checkpoint, their live executor runs and
// their tasks with their unacknowledged status updates, waits --executor_reregistration_timeout for
// those executors to subscribe again and kills the ones that did not (their tasks TASK_LOST, TASK_GONE
// when partition-aware, REASON_EXECUTOR_REREGISTRATION_TIMEOUT). Its status updates wait until the
// master has it again (Reregistered), then the checkpointed streams are resent.
//
// The simulator's agents live in one process, so the executor processes a stopped agent leaves
// behind are still children of that process: the goroutine that waits for one hands its exit to the
// next agent through a registry keyed by pid (what the Mesos launcher learns from the pid and its
// checkpointed termination). A process that is not a child is watched through a pidfd.
//
// Nested containers of the recovered executors pass to the new agent the same way (their waiting
// goroutine hands their exit to whichever agent owns them), and in isolating mode the containerizer
// holding the live containers does too (its state stands for what Mesos reads back from
// --runtime_dir). Not recovered (they die with the agent, unlike in Mesos where they are processes of
// their own): in-process executors (the command executor, the default executor, ExecutorHook
// executors) and sessions (they end with their connection). Their tasks end as when their executor
// terminates.

// detachedExit is the exit of a process an agent left running when it stopped for a restart.
type detachedExit struct {
	agent  string                   // the agent that left it
	cz     *containerizer.Container // the executor's container in isolating mode
	done   chan struct{}
	status int32
	once   sync.Once
}

var detachedProcs = struct {
	sync.Mutex
	byPid map[int]*detachedExit
}{byPid: map[int]*detachedExit{}}

func detachProcess(agentID string, pid int, cz *containerizer.Container) {
	detachedProcs.Lock()
	defer detachedProcs.Unlock()
	// One entry per process until it exits: every agent that waits for it, across restarts, waits
	// on the same one.
	if d := detachedProcs.byPid[pid]; d != nil {
		d.agent, d.cz = agentID, cz
		return
	}
	detachedProcs.byPid[pid] = &detachedExit{agent: agentID, cz: cz, done: make(chan struct{})}
}

// In isolating mode the containerizer an agent stopped for a restart leaves its containers running
// in passes to the next agent of the same ID: its state is what MesosContainerizer::recover reads
// back from --runtime_dir, which the simulator does not checkpoint.
var detachedContainerizers = struct {
	sync.Mutex
	byAgent map[string]*containerizer.Containerizer
}{byAgent: map[string]*containerizer.Containerizer{}}

func takeContainerizer(agentID string) *containerizer.Containerizer {
	detachedContainerizers.Lock()
	defer detachedContainerizers.Unlock()
	z := detachedContainerizers.byAgent[agentID]
	delete(detachedContainerizers.byAgent, agentID)
	return z
}

// publishExit records the exit of a detached process for whoever recovers it.
func publishExit(pid int, status int32) {
	detachedProcs.Lock()
	d := detachedProcs.byPid[pid]
	delete(detachedProcs.byPid, pid)
	detachedProcs.Unlock()
	if d != nil {
		d.once.Do(func() { d.status = status; close(d.done) })
	}
}

// claimDetached takes the registry entries of an agent's detached processes.
func claimDetached(agentID string) map[int]*detachedExit {
	detachedProcs.Lock()
	defer detachedProcs.Unlock()
	out := map[int]*detachedExit{}
	for pid, d := range detachedProcs.byPid {
		if d.agent == agentID {
			out[pid] = d
			d.agent = ""
		}
	}
	return out
}

// StopForRestart is the agent process exiting (an upgrade, a crash): nothing more reaches the
// master, the HTTP endpoint closes (executors see their subscriptions end), in-process executors
// and nested containers die, and executor processes are left running for the next agent of the
// same WorkDir and ID to recover. It returns once the agent's goroutines are gone.
func (a *Agent) StopForRestart() {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return
	}
	a.stopped = true
	for _, f := range a.frameworks {
		for _, e := range f.executors {
			e.regTimer.cancel()
			e.graceTimer.cancel()
			if e.pid > 0 && !e.command && e.state < executorTerminated {
				e.detached = true
				var cz *containerizer.Container
				if c := a.containers[e.containerID.Value]; c != nil {
					cz = c.cz
				}
				detachProcess(a.cfg.ID.Value, e.pid, cz)
				if e.sink != nil {
					e.sink.close()
					e.sink = nil
				}
				e.releaseLocked()
				continue
			}
			e.killProcessLocked()
		}
	}
	var left []*container
	for _, c := range a.containers {
		if c.executor != nil {
			continue
		}
		root := a.containers[strings.SplitN(c.key, "/", 2)[0]]
		if c.exited || c.sessionOut != nil || root == nil || root.executor == nil || !root.executor.detached {
			c.killLocked(sigkill) // sessions end with their connection; containers of lost executors die
			continue
		}
		// A nested container of an executor that lives on lives on too (in Mesos it is a process
		// of its own, found again by the containerizer's recovery).
		if c.release != nil {
			c.release()
			c.release = nil
		}
		left = append(left, c)
	}
	detachedContainers.Lock()
	detachedContainers.byAgent[a.cfg.ID.Value] = append(detachedContainers.byAgent[a.cfg.ID.Value], left...)
	detachedContainers.Unlock()
	if a.cz != nil {
		detachedContainerizers.Lock()
		detachedContainerizers.byAgent[a.cfg.ID.Value] = a.cz
		detachedContainerizers.Unlock()
	}
	a.mu.Unlock()
	a.cancel()
	_ = a.server.Close()
	a.wg.Wait()
	a.procs.Wait()
	a.outbox.close()
	<-a.outboxDone
	a.log.WithField("nestedContainers", len(left)).Info("agent stopped for a restart; executors left running")
}

// Recovered is closed when recovery is over: the executors recovered have re-subscribed or were
// killed at --executor_reregistration_timeout (at once when there was nothing to recover). Mesos'
// agent registers with the master only then.
func (a *Agent) Recovered() <-chan struct{} { return a.recovered }

// Reregistered tells a recovered agent that the master has it again: its status update streams
// (the checkpointed ones first) are forwarded.
func (a *Agent) Reregistered() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.recovering {
		return
	}
	a.recovering = false
	for _, k := range a.updates.keys() {
		a.updates.resetBackoff(k)
		a.forwardHeadLocked(k)
	}
}

// recover reads the checkpoint left by an earlier run of this agent (New calls it before serving).
func (a *Agent) recover() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	orphans := claimDetached(a.cfg.ID.Value)
	dir := a.metaAgentDir()
	_, statErr := os.Stat(dir)
	if statErr == nil && a.cfg.Recover == "cleanup" {
		// --recover=cleanup: kill what the old agent left and start afresh.
		for pid := range orphans {
			killGroup(pid, syscall.SIGKILL)
		}
		a.log.Info("--recover=cleanup: killed the executors of the previous agent")
		close(a.recovered)
		return os.RemoveAll(dir)
	}
	if statErr != nil {
		a.killOrphansLocked(orphans, nil)
		close(a.recovered)
		return checkpointMessage(filepath.Join(dir, "slave.info"), &a.info)
	}
	a.recovering = true
	claimed := map[int]bool{}
	fws, _ := os.ReadDir(filepath.Join(dir, "frameworks"))
	recovered := 0
	for _, fe := range fws {
		var info mesos.FrameworkInfo
		fdir := filepath.Join(dir, "frameworks", fe.Name())
		if err := readMessage(filepath.Join(fdir, "framework.info"), &info); err != nil {
			a.log.WithError(err).WithField("framework", fe.Name()).Warn("skipping a framework whose info cannot be read")
			continue
		}
		exs, _ := os.ReadDir(filepath.Join(fdir, "executors"))
		if len(exs) == 0 {
			// Slave::recoverFramework: nothing to recover, its directories are collected.
			a.garbageCollectLocked(a.workFrameworkDir(fe.Name()))
			a.garbageCollectLocked(fdir)
			continue
		}
		f := &framework{info: info, executors: map[string]*executorRun{}, tasks: map[string]*task{}}
		a.frameworks[fe.Name()] = f
		for _, ee := range exs {
			if e := a.recoverExecutorLocked(f, filepath.Join(fdir, "executors", ee.Name()), orphans); e != nil {
				claimed[e.pid] = true
				recovered++
			}
		}
		a.maybeRemoveFrameworkLocked(fe.Name())
	}
	a.killOrphansLocked(orphans, claimed)
	a.adoptContainersLocked()
	a.log.WithField("executors", recovered).Info("agent recovered its checkpointed state")
	if recovered == 0 {
		close(a.recovered) // no executor to wait for
		return nil
	}
	timeout := a.cfg.ExecutorReregistrationTimeout
	a.afterLocked(timeout, func() { a.reregisterExecutorTimeoutLocked(timeout) })
	return nil
}

// detachedContainers are the nested containers agents stopped for a restart left running, by agent.
var detachedContainers = struct {
	sync.Mutex
	byAgent map[string][]*container
}{byAgent: map[string][]*container{}}

// adoptContainersLocked takes over the nested containers the previous agent left, under the
// executors recovered; the others are destroyed.
func (a *Agent) adoptContainersLocked() {
	detachedContainers.Lock()
	left := detachedContainers.byAgent[a.cfg.ID.Value]
	delete(detachedContainers.byAgent, a.cfg.ID.Value)
	detachedContainers.Unlock()
	adopted := 0
	for _, c := range left {
		old := c.lockOwner() // the lock order is new agent, then old one
		root := a.containers[strings.SplitN(c.key, "/", 2)[0]]
		if !c.exited && root != nil && root.executor != nil && root.executor.state < executorTerminated {
			c.owner.Store(a)
			a.procs.Add(1)
			c.release = a.procs.Done
			a.containers[c.key] = c
			adopted++
		} else if !c.exited {
			c.killLocked(sigkill)
		}
		old.mu.Unlock()
	}
	if adopted > 0 {
		a.log.WithField("containers", adopted).Info("recovered nested containers")
	}
}

// killOrphansLocked destroys what the previous agent left that is not checkpointed (executors of
// frameworks without checkpointing): the containerizer's recovery destroys such orphans in Mesos.
func (a *Agent) killOrphansLocked(orphans map[int]*detachedExit, claimed map[int]bool) {
	for pid := range orphans {
		if !claimed[pid] {
			a.log.WithField("pid", pid).Info("destroying an orphan executor left by the previous agent")
			killGroup(pid, syscall.SIGKILL)
		}
	}
}

// recoverExecutorLocked recovers the latest run of one executor with its tasks. It returns the run
// when its process lives on.
func (a *Agent) recoverExecutorLocked(f *framework, edir string, orphans map[int]*detachedExit) *executorRun {
	fid := f.info.GetID().GetValue()
	// Framework::recoverExecutor: an executor without info or latest run is collected whole.
	skip := func() *executorRun {
		a.garbageCollectLocked(a.workExecutorDir(fid, filepath.Base(edir)))
		a.garbageCollectLocked(edir)
		return nil
	}
	var info mesos.ExecutorInfo
	if err := readMessage(filepath.Join(edir, "executor.info"), &info); err != nil {
		a.log.WithError(err).WithField("dir", edir).Warn("skipping an executor whose info cannot be read")
		return skip()
	}
	latest, err := os.Readlink(filepath.Join(edir, "runs", "latest"))
	if err != nil {
		return skip()
	}
	cid := filepath.Base(latest)
	run := filepath.Join(edir, "runs", cid)
	e := &executorRun{
		a:           a,
		fw:          f,
		info:        info,
		containerID: mesos.ContainerID{Value: cid},
		dir: filepath.Join(a.cfg.WorkDir, "slaves", a.cfg.ID.Value, "frameworks", fid, "executors",
			info.ExecutorID.Value, "runs", cid),
		state:     executorRegistering,
		recovered: true,
		log:       a.log.WithFields(logrus.Fields{"frameworkID": fid, "executorID": info.ExecutorID.Value, "containerID": cid}),
	}
	_, sentinelErr := os.Stat(filepath.Join(run, "executor.sentinel"))
	completed := sentinelErr == nil
	pid, pidErr := readPid(filepath.Join(run, "pids", "forked.pid"))
	a.recoverTasksLocked(f, e, filepath.Join(run, "tasks"))
	a.recoverRunsGCLocked(fid, info.ExecutorID.Value, cid, completed)
	if completed {
		e.state = executorTerminated
		e.removed = true // its directories were scheduled just now
		return nil
	}
	f.executors[info.ExecutorID.Value] = e
	a.containers[cid] = &container{id: e.containerID, key: cid, dir: e.dir, executor: e, done: make(chan struct{})}
	if pidErr != nil || pid <= 0 || !processAlive(pid) && orphans[pid] == nil {
		// Nothing to reconnect to (an in-process executor, or its process is gone): it terminated.
		e.log.Info("recovered executor is not running")
		a.executorExitedLocked(e, -1)
		return nil
	}
	e.pid = pid
	e.kill = func() { killGroup(pid, syscall.SIGKILL) }
	if d := orphans[pid]; d != nil {
		a.containers[cid].cz = d.cz
	}
	a.procs.Add(1)
	e.counted = true
	go a.watchRecovered(e, pid, orphans[pid])
	e.log.WithField("pid", pid).Info("recovered executor; waiting for it to re-subscribe")
	return e
}

// recoverTasksLocked replays each task's task.info and task.updates: its state, latest status and the
// updates not yet acknowledged (to be resent), as the status update manager's recover does.
func (a *Agent) recoverTasksLocked(f *framework, e *executorRun, tdir string) {
	ents, _ := os.ReadDir(tdir)
	fid := f.info.GetID().GetValue()
	for _, te := range ents {
		var info mesos.TaskInfo
		if err := readMessage(filepath.Join(tdir, te.Name(), "task.info"), &info); err != nil {
			continue
		}
		t := &task{info: info, executor: e, state: mesos.TASK_STAGING, launched: true}
		k := streamKey{fid, info.TaskID.Value}
		recs, _ := readMessages(filepath.Join(tdir, te.Name(), "task.updates"))
		terminalAcked := false
		for _, b := range recs {
			r, err := decodeUpdateRecord(b)
			if err != nil {
				a.log.WithError(err).WithField("taskID", info.TaskID.Value).Warn("ignoring a damaged status update record")
				break
			}
			switch r.kind {
			case recordUpdate:
				if _, dup := a.updates.add(k, pendingUpdate{status: r.status, fromExecutor: r.status.GetSource() == mesos.SOURCE_EXECUTOR}); dup {
					continue
				}
				s := r.status
				t.latest = &s
				t.state = s.GetState()
				t.terminal = t.terminal || isTerminal(t.state)
			case recordAck:
				if acked, _, ok := a.updates.ack(k, r.uuid); ok && isTerminal(acked.status.GetState()) {
					terminalAcked = true
				}
			}
		}
		if terminalAcked && len(a.updates.pendingFor(k)) == 0 {
			// Complete: its terminal update was acknowledged (Executor::recoverTask completes it).
			a.garbageCollectLocked(filepath.Join(tdir, te.Name()))
			continue
		}
		f.tasks[info.TaskID.Value] = t
	}
}

// watchRecovered waits for a recovered executor's process to end.
func (a *Agent) watchRecovered(e *executorRun, pid int, d *detachedExit) {
	var status int32 = -1
	if d != nil {
		<-d.done // also across a further restart: the next agent waits on the same entry
		status = d.status
	} else {
		waitPidfd(pid)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e.releaseLocked()
	if e.detached {
		publishExit(pid, status)
		return
	}
	a.executorExitedLocked(e, status)
}

// reregisterExecutorTimeoutLocked is Slave::reregisterExecutorTimeout: recovered executors that
// have not subscribed again are killed.
func (a *Agent) reregisterExecutorTimeoutLocked(timeout interface{ Nanoseconds() int64 }) {
	var ids []string
	for fid := range a.frameworks {
		ids = append(ids, fid)
	}
	sort.Strings(ids)
	for _, fid := range ids {
		for _, e := range a.frameworks[fid].executors {
			if !e.recovered || e.state != executorRegistering {
				continue
			}
			e.log.Info("Killing un-reregistered executor")
			e.terminateLocked(termination{lostOrGone(e.fw.info), mesos.REASON_EXECUTOR_REREGISTRATION_TIMEOUT,
				"Executor did not reregister within " + formatDuration(timeout)})
			e.state = executorTerminating
			e.killProcessLocked()
		}
	}
	close(a.recovered)
}

// lostOrGone is TASK_GONE for partition-aware frameworks, else TASK_LOST.
func lostOrGone(fw mesos.FrameworkInfo) mesos.TaskState {
	if hasCapability(fw, mesos.FrameworkInfo_Capability_PARTITION_AWARE) {
		return mesos.TASK_GONE
	}
	return mesos.TASK_LOST
}

func sortedTaskIDs(f *framework, e *executorRun) []string {
	var ids []string
	for id, t := range f.tasks {
		if t.executor == e {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// processAlive reports whether pid runs (a zombie counts as gone).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' {
			return i+2 < len(b) && b[i+2] != 'Z'
		}
	}
	return true
}

// waitPidfd blocks until a process that is not our child exits.
func waitPidfd(pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err == nil || !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// ReconcileTasks is the agent's side of the master's reconciliation on re-registration
// (ReconcileTasksMessage in SlaveReregisteredMessage): a task the master knows and the agent does not
// gets TASK_LOST (TASK_DROPPED for partition-aware frameworks) from the agent.
func (a *Agent) ReconcileTasks(fw mesos.FrameworkInfo, taskIDs []mesos.TaskID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return
	}
	f := a.frameworks[fw.GetID().GetValue()]
	if f == nil {
		// Unlike statusUpdate(), the update manager takes updates of unknown frameworks.
		f = &framework{info: fw, executors: map[string]*executorRun{}, tasks: map[string]*task{}}
		a.frameworks[fw.GetID().GetValue()] = f
		// Forgotten again without collecting anything: Mesos creates no framework here.
		defer delete(a.frameworks, fw.GetID().GetValue())
	}
	for _, id := range taskIDs {
		if f.tasks[id.Value] != nil {
			continue
		}
		a.log.WithField("taskID", id.Value).Warn("Agent reconciling task: task unknown to the agent")
		a.agentUpdateLocked(f, id, nil, lostOrDropped(fw), mesos.REASON_RECONCILIATION,
			"Reconciliation: task unknown to the agent")
	}
}
