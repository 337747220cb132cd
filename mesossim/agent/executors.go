package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/internal/deathsig"
)

type executorState int

const (
	executorRegistering executorState = iota
	executorRunning
	executorTerminating
	executorTerminated
)

// launchItem is a LAUNCH (one task) or LAUNCH_GROUP waiting for the executor to subscribe.
type launchItem struct {
	tasks []string
	group bool
}

// termination is why the agent ended an executor; it decides the state of the tasks left behind.
type termination struct {
	state   mesos.TaskState
	reason  mesos.TaskStatus_Reason
	message string
}

// executorRun is one run (container) of an executor.
type executorRun struct {
	a           *Agent
	fw          *framework
	info        mesos.ExecutorInfo
	containerID mesos.ContainerID
	dir         string
	command     bool // the agent's command executor for a command task
	state       executorState
	queued      []launchItem
	sink        *queue[executor.Event] // the current subscription, nil when not connected
	kill        func()                 // kills the process group / cancels the hook; nil before start
	pid         int                    // the executor process's pid; 0 for in-process executors
	killPending bool                   // kill requested before the process started
	pending     *termination
	// destroying: a failed update of its container is destroying it (containerize.go); the container
	// gets no further updates.
	destroying bool
	// recovered: the run was recovered from the checkpoint after an agent restart (it has to
	// re-subscribe within --executor_reregistration_timeout).
	recovered bool
	// detached: the agent stopped for a restart and left the process running (agent recovery); its
	// exit is published to the next agent through the process registry (recover.go).
	detached bool
	// counted: the run holds a.procs (runExecutor, or a recovered run's watcher, has not returned).
	counted bool
	// removed: Slave::removeExecutor has been done; its directories are scheduled for gc (gc.go).
	removed    bool
	regTimer   *timerHandle
	graceTimer *timerHandle
	log        logrus.FieldLogger
}

func (e *executorRun) send(ev executor.Event) {
	if e.sink != nil {
		e.sink.push(ev)
	}
}

// hasLiveTasksLocked reports whether any non-terminal task is assigned to e.
func (e *executorRun) hasLiveTasksLocked(f *framework) bool {
	for _, t := range f.tasks {
		if t.executor == e && !t.terminal {
			return true
		}
	}
	return false
}

func (e *executorRun) killProcessLocked() {
	if e.kill != nil {
		e.kill()
		return
	}
	e.killPending = true
}

// destroyLocked kills the executor at once (agent stop).
func (e *executorRun) destroyLocked() {
	e.regTimer.cancel()
	e.graceTimer.cancel()
	e.killProcessLocked()
}

// gracePeriod is ExecutorInfo.shutdown_grace_period, or the agent's executor_shutdown_grace_period.
func (e *executorRun) gracePeriod() time.Duration {
	if g := e.info.GetShutdownGracePeriod(); g != nil && g.Nanoseconds >= 0 {
		return time.Duration(g.Nanoseconds)
	}
	return e.a.cfg.ExecutorShutdownGracePeriod
}

func (e *executorRun) terminateLocked(t termination) {
	if e.pending == nil {
		e.pending = &t
	}
}

// commandExecutorInfo is the ExecutorInfo the agent generates for a command task (ExecutorID = TaskID).
func commandExecutorInfo(fw mesos.FrameworkInfo, t mesos.TaskInfo) mesos.ExecutorInfo {
	var cmd mesos.CommandInfo
	if t.Command != nil {
		cmd = *t.Command
	}
	name := fmt.Sprintf("Command Executor (Task: %s) (Command: sh -c '%s')", t.TaskID.Value, cmd.GetValue())
	source := t.TaskID.Value
	info := mesos.ExecutorInfo{
		ExecutorID: mesos.ExecutorID{Value: t.TaskID.Value},
		Command:    &cmd,
		Name:       &name,
		Source:     &source,
		Type:       mesos.ExecutorInfo_DEFAULT,
	}
	if fw.ID != nil {
		fid := *fw.ID
		info.FrameworkID = &fid
	}
	return info
}

func (a *Agent) newExecutorLocked(f *framework, info mesos.ExecutorInfo, command bool) *executorRun {
	fid := f.info.GetID().GetValue()
	cid := uuidString(newUUID())
	e := &executorRun{
		a:           a,
		fw:          f,
		info:        info,
		containerID: mesos.ContainerID{Value: cid},
		dir: filepath.Join(a.cfg.WorkDir, "slaves", a.cfg.ID.Value, "frameworks", fid, "executors",
			info.ExecutorID.Value, "runs", cid),
		command: command,
		log:     a.log.WithFields(logrus.Fields{"frameworkID": fid, "executorID": info.ExecutorID.Value, "containerID": cid}),
	}
	a.unscheduleExecutorLocked(fid, info.ExecutorID.Value)
	f.executors[info.ExecutorID.Value] = e
	a.containers[cid] = &container{id: e.containerID, key: cid, dir: e.dir, executor: e, done: make(chan struct{})}
	a.checkpointExecutorLocked(e)
	return e
}

// startExecutorLocked arms the registration timeout and starts the executor asynchronously: sandbox,
// fetcher, then the process (or hook, or in-process command executor).
func (a *Agent) startExecutorLocked(e *executorRun) {
	timeout := a.cfg.ExecutorRegistrationTimeout
	e.regTimer = a.afterLocked(timeout, func() {
		if e.state != executorRegistering {
			return
		}
		e.log.Warn("executor did not subscribe within the registration timeout")
		e.terminateLocked(termination{mesos.TASK_FAILED, mesos.REASON_EXECUTOR_REGISTRATION_TIMEOUT,
			"Executor did not register within " + formatDuration(timeout)})
		e.state = executorTerminating
		e.killProcessLocked()
	})
	a.procs.Add(1)
	e.counted = true
	go a.runExecutor(e)
}

// releaseLocked ends the run's hold on a.procs (Stop waits for the processes it kills, not for the
// ones it leaves running).
func (e *executorRun) releaseLocked() {
	if e.counted {
		e.counted = false
		e.a.procs.Done()
	}
}

func (a *Agent) runExecutor(e *executorRun) {
	defer func() {
		a.mu.Lock()
		e.releaseLocked()
		a.mu.Unlock()
	}()
	var uris []mesos.CommandInfo_URI
	if e.info.Command != nil {
		uris = e.info.Command.URIs
	}
	err := createExecutorDirectory(e.dir)
	if err == nil {
		user := e.info.Command.GetUser() // the fetch runs as the executor's user, keying its cache entries
		if user == "" {
			a.mu.Lock()
			user = e.fw.info.User // a re-registering framework may rewrite it
			a.mu.Unlock()
		}
		err = fetchAll(a.ctx, a.cfg.HTTPClient, uris, e.dir, a.fetchCache, user)
	}

	a.mu.Lock()
	if err != nil {
		e.log.WithError(err).Warn("executor container launch failed")
		e.terminateLocked(termination{mesos.TASK_FAILED, mesos.REASON_CONTAINER_LAUNCH_FAILED,
			"Failed to launch container: " + err.Error()})
		a.executorExitedLocked(e, -1)
		a.mu.Unlock()
		return
	}
	if e.killPending || a.stopped {
		a.executorExitedLocked(e, int32(syscall.SIGKILL))
		a.mu.Unlock()
		return
	}
	env := a.executorEnvLocked(e)
	var wait func() int32
	switch {
	case e.command:
		ce := newCommandExecutor(a, e, env)
		ctx, cancel := context.WithCancel(a.ctx)
		e.kill = func() { cancel(); ce.killAll() }
		wait = func() int32 { return ce.run(ctx) }
	case a.cfg.ExecutorHook != nil && (a.cfg.ExecutorHookFor == nil || a.cfg.ExecutorHookFor(e.info)):
		ctx, cancel := context.WithCancel(a.ctx)
		e.kill = cancel
		hook := a.cfg.ExecutorHook
		wait = func() int32 {
			if err := hook(ctx, env); err != nil {
				e.log.WithError(err).Info("in-process executor returned an error")
				return 1 << 8
			}
			return 0
		}
	case e.info.Command == nil && e.info.Type == mesos.ExecutorInfo_DEFAULT:
		de := newDefaultExecutor(a, e)
		ctx, cancel := context.WithCancel(a.ctx)
		e.kill = cancel
		wait = func() int32 { return de.run(ctx) }
	case e.info.Command == nil:
		e.terminateLocked(termination{mesos.TASK_FAILED, mesos.REASON_CONTAINER_LAUNCH_FAILED,
			"Failed to launch container: a custom executor needs a command"})
		a.executorExitedLocked(e, -1)
		a.mu.Unlock()
		return
	case a.cz != nil:
		// Mesos runs an executor's container through the containerizer as well.
		var l *isolatedExecutorLaunch
		var pid int
		if l, err = a.prepareIsolatedExecutorLocked(e, env); err == nil {
			a.mu.Unlock()
			pid, wait, err = l.launch(a)
			a.mu.Lock()
		}
		if err != nil {
			e.log.WithError(err).Warn("executor container failed to launch")
			e.terminateLocked(termination{mesos.TASK_FAILED, mesos.REASON_CONTAINER_LAUNCH_FAILED,
				"Failed to launch container: " + err.Error()})
			a.executorExitedLocked(e, -1)
			a.mu.Unlock()
			return
		}
		l.launchedLocked(a, e, pid)
		a.checkpointPidLocked(e)
	default:
		cmd, files, err := startSandboxProcess(*e.info.Command, e.dir, mergeEnv(os.Environ(), env))
		if err != nil {
			e.log.WithError(err).Warn("executor process failed to start")
			e.terminateLocked(termination{mesos.TASK_FAILED, mesos.REASON_CONTAINER_LAUNCH_FAILED,
				"Failed to launch container: " + err.Error()})
			a.executorExitedLocked(e, -1)
			a.mu.Unlock()
			return
		}
		pid := cmd.Process.Pid
		e.pid = pid
		e.kill = func() { killGroup(pid, syscall.SIGKILL) }
		a.checkpointPidLocked(e)
		e.log.WithField("pid", pid).Debug("executor process started")
		wait = func() int32 {
			status := waitStatus(cmd.Wait())
			killGroup(pid, syscall.SIGKILL) // nothing of the executor outlives it
			files.close()
			return status
		}
	}
	a.mu.Unlock()

	status := wait()

	a.mu.Lock()
	if e.detached {
		publishExit(e.pid, status)
	} else {
		a.executorExitedLocked(e, status)
	}
	a.mu.Unlock()
}

// createExecutorDirectory is Mesos' paths::createExecutorDirectory: the run's sandbox, and the
// executor's runs/latest symlink moved to it, by which a sibling executor (a pod's kubelet executor)
// finds another's current sandbox without knowing its container ID.
func createExecutorDirectory(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	latest := filepath.Join(filepath.Dir(dir), "latest")
	if err := os.Remove(latest); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("Failed to remove latest symlink '%s': %w", latest, err)
	}
	if err := os.Symlink(dir, latest); err != nil {
		return fmt.Errorf("Failed to symlink '%s' to '%s': %w", dir, latest, err)
	}
	return nil
}

// executorEnvLocked is the environment a Mesos 1.x agent gives an executor.
func (a *Agent) executorEnvLocked(e *executorRun) map[string]string {
	host, _, _ := net.SplitHostPort(a.endpoint)
	checkpoint := e.fw.info.GetCheckpoint()
	env := map[string]string{
		"MESOS_FRAMEWORK_ID":                   e.fw.info.GetID().GetValue(),
		"MESOS_EXECUTOR_ID":                    e.info.ExecutorID.Value,
		"MESOS_DIRECTORY":                      e.dir,
		"MESOS_SANDBOX":                        e.dir,
		"MESOS_AGENT_ENDPOINT":                 a.endpoint,
		"MESOS_SLAVE_ID":                       a.cfg.ID.Value,
		"MESOS_SLAVE_PID":                      a.PID(),
		"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": formatDuration(e.gracePeriod()),
		"MESOS_CHECKPOINT":                     boolEnv(checkpoint),
		"MESOS_HTTP_COMMAND_EXECUTOR":          boolEnv(e.command),
		"LIBPROCESS_IP":                        host,
		"LIBPROCESS_PORT":                      "0",
	}
	// --executor_environment_variables: the agent's own variables are set over them, except
	// LIBPROCESS_IP, which they may override (slave.cpp's executorEnvironment).
	for k, v := range a.cfg.ExecutorEnvironmentVariables {
		if _, own := env[k]; !own || k == "LIBPROCESS_IP" {
			env[k] = v
		}
	}
	if checkpoint {
		env["MESOS_RECOVERY_TIMEOUT"] = formatDuration(a.cfg.RecoveryTimeout)
		env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = formatDuration(a.cfg.SubscriptionBackoffMax)
	}
	if token := a.executorToken(env["MESOS_FRAMEWORK_ID"], e.info.ExecutorID.Value, e.containerID.Value); token != "" {
		env[ExecutorTokenEnv] = token
	}
	if e.info.Command != nil && !e.command {
		for _, v := range e.info.Command.GetEnvironment().GetVariables() {
			env[v.Name] = v.GetValue()
		}
	}
	return env
}

// executorExitedLocked handles the end of an executor: its live tasks fail, the master hears about it.
func (a *Agent) executorExitedLocked(e *executorRun, status int32) {
	if e.state == executorTerminated {
		return
	}
	e.state = executorTerminated
	e.regTimer.cancel()
	e.graceTimer.cancel()
	if e.sink != nil {
		e.sink.close()
		e.sink = nil
	}
	f := e.fw
	fid := f.info.GetID().GetValue()
	eid := e.info.ExecutorID.Value
	if f.executors[eid] == e {
		delete(f.executors, eid)
	}
	if !a.stopped {
		a.checkpointSentinelLocked(e)
	}
	a.destroyContainerTreeLocked(e.containerID.Value, status)
	e.log.WithField("status", status).Info("executor terminated")

	term := termination{mesos.TASK_FAILED, mesos.REASON_EXECUTOR_TERMINATED, "Executor terminated: " + describeWaitStatus(status)}
	if e.pending != nil {
		term = *e.pending
	}
	var ids []string
	for id, t := range f.tasks {
		if t.executor == e {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		t := f.tasks[id]
		if f.terminating || a.stopped {
			delete(f.tasks, id)
			continue
		}
		if !t.terminal {
			a.agentUpdateLocked(f, t.info.TaskID, e, term.state, term.reason, term.message)
		}
	}
	a.removeExecutorLocked(e)
	if !a.stopped && !f.terminating && !e.command {
		agentID, fwID, execID := a.cfg.ID, mesos.FrameworkID{Value: fid}, e.info.ExecutorID
		a.toMasterLocked(func() { a.cfg.Master.ExecutorTerminated(agentID, fwID, execID, status) })
		if res := e.info.Resources; len(res) > 0 && !a.partitioned {
			a.toMasterLocked(func() { a.cfg.Master.ResourcesRecovered(agentID, fwID, res) })
		}
	}
	a.maybeRemoveFrameworkLocked(fid)
}

// shutdownExecutorLocked sends SHUTDOWN and kills the executor after the grace period; an executor
// that never subscribed is killed at once.
func (a *Agent) shutdownExecutorLocked(e *executorRun) {
	if e.state >= executorTerminating {
		return
	}
	wasRunning := e.state == executorRunning
	e.state = executorTerminating
	e.regTimer.cancel()
	if !wasRunning {
		e.killProcessLocked()
		return
	}
	e.send(executor.Event{Type: executor.Event_SHUTDOWN})
	e.graceTimer = a.afterLocked(e.gracePeriod(), func() {
		if e.state != executorTerminated {
			e.log.Info("executor did not exit within the shutdown grace period; killing it")
			e.killProcessLocked()
		}
	})
}

// subscribeLocked attaches a new event stream to an executor (SUBSCRIBE), replacing an older one.
func (a *Agent) subscribeLocked(fid, eid string, sub executor.Call_Subscribe, sink *queue[executor.Event]) (int, string) {
	f := a.frameworks[fid]
	if f == nil {
		return 400, "Framework cannot be found"
	}
	e := f.executors[eid]
	if e == nil {
		return 400, "Executor cannot be found"
	}
	if e.state == executorTerminating {
		sink.push(executor.Event{Type: executor.Event_SHUTDOWN})
		sink.close()
		return 200, ""
	}
	if e.sink != nil {
		e.sink.close()
	}
	e.sink = sink
	e.state = executorRunning
	e.regTimer.cancel()

	sink.push(executor.Event{
		Type: executor.Event_SUBSCRIBED,
		Subscribed: &executor.Event_Subscribed{
			ExecutorInfo:  e.info,
			FrameworkInfo: f.info,
			AgentInfo:     a.info,
			ContainerID:   &mesos.ContainerID{Value: e.containerID.Value},
		},
	})
	a.checkpointMarkerLocked(e)
	// Tasks the executor already knows about were delivered before (a resubscription).
	unacked := map[string]bool{}
	for _, t := range sub.UnacknowledgedTasks {
		unacked[t.TaskID.Value] = true
		if at := f.tasks[t.TaskID.Value]; at != nil && at.executor == e {
			at.launched = true
		}
	}
	// Updates the agent may not have received; duplicates are recognised by UUID.
	for _, u := range sub.UnacknowledgedUpdates {
		if t := f.tasks[u.Status.TaskID.Value]; t != nil && t.executor == e {
			a.statusUpdateLocked(f, u.Status, true)
		}
	}
	// Slave::subscribe, at every SUBSCRIBE and after the updates it carries: a task still staging that
	// was sent to the executor but that the executor does not know never reached it (sent while the
	// agent restarted, or on a connection the executor had given up before its response began) and is
	// dropped, with Mesos' words for the first case whatever the cause.
	for _, id := range sortedTaskIDs(f, e) {
		if t := f.tasks[id]; t.launched && !t.terminal && t.state == mesos.TASK_STAGING && !unacked[id] {
			e.log.WithField("taskID", id).Info("dropping a staging task unknown to the subscribing executor")
			a.agentUpdateLocked(f, t.info.TaskID, e, lostOrDropped(f.info), mesos.REASON_AGENT_RESTARTED,
				"Task launched during agent restart")
		}
	}
	for _, item := range e.queued {
		a.deliverLaunchLocked(f, e, item)
	}
	e.queued = nil
	e.log.Debug("executor subscribed")
	return 200, ""
}

// unsubscribeLocked handles a closed executor connection. An executor of a framework without
// checkpointing is shut down, as in Mesos.
func (a *Agent) unsubscribeLocked(e *executorRun, sink *queue[executor.Event]) {
	if e.sink != sink {
		return
	}
	e.sink = nil
	if e.state == executorRunning && !e.fw.info.GetCheckpoint() {
		e.log.Info("executor disconnected and its framework does not checkpoint; shutting it down")
		a.shutdownExecutorLocked(e)
	}
}

// startProcess starts a command in dir, in its own process group.
func startProcess(ci mesos.CommandInfo, dir string, env []string, stdin, stdout, stderr *os.File) (*exec.Cmd, error) {
	var cmd *exec.Cmd
	if ci.GetShell() {
		if ci.GetValue() == "" {
			return nil, fmt.Errorf("command has no value")
		}
		cmd = exec.Command("/bin/sh", "-c", ci.GetValue())
	} else {
		path := ci.GetValue()
		if path == "" {
			return nil, fmt.Errorf("command has no value")
		}
		if !strings.Contains(path, "/") {
			lp, err := exec.LookPath(path)
			if err != nil {
				return nil, fmt.Errorf("looking up %q: %w", path, err)
			}
			path = lp
		}
		args := ci.Arguments
		if len(args) == 0 {
			args = []string{ci.GetValue()}
		}
		cmd = &exec.Cmd{Path: path, Args: args}
	}
	cmd.Dir = dir
	cmd.Env = env
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if stderr != nil {
		cmd.Stderr = stderr
	}
	// Its own process group; SIGKILL when the simulator's process dies (deathsig ties that to the
	// process, not to whichever thread forked it).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := deathsig.Start(cmd); err != nil {
		return nil, fmt.Errorf("starting %q: %w", ci.GetValue(), err)
	}
	return cmd, nil
}

// startSandboxProcess starts a command with stdout/stderr appended to the files of its sandbox.
func startSandboxProcess(ci mesos.CommandInfo, dir string, env []string) (*exec.Cmd, *outputFiles, error) {
	files, err := openOutputFiles(dir)
	if err != nil {
		return nil, nil, err
	}
	cmd, err := startProcess(ci, dir, env, nil, files.stdout, files.stderr)
	if err != nil {
		files.close()
		return nil, nil, err
	}
	return cmd, files, nil
}

type outputFiles struct{ stdout, stderr *os.File }

func openOutputFiles(dir string) (*outputFiles, error) {
	open := func(name string) (*os.File, error) {
		return os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	}
	out, err := open("stdout")
	if err != nil {
		return nil, fmt.Errorf("opening stdout: %w", err)
	}
	errf, err := open("stderr")
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("opening stderr: %w", err)
	}
	return &outputFiles{out, errf}, nil
}

func (o *outputFiles) close() {
	if o != nil {
		o.stdout.Close()
		o.stderr.Close()
	}
}

func killGroup(pid int, sig syscall.Signal) {
	if pid > 0 {
		_ = syscall.Kill(-pid, sig)
	}
}

// waitStatus converts the result of Cmd.Wait into a wait(2) status, as Mesos reports exit statuses.
func waitStatus(err error) int32 {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			return int32(ws)
		}
	}
	return -1
}

// describeWaitStatus renders a wait status like Mesos' WSTRINGIFY.
func describeWaitStatus(status int32) string {
	if status < 0 {
		return "unknown exit status"
	}
	ws := syscall.WaitStatus(status)
	switch {
	case ws.Exited():
		return "exited with status " + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled():
		return "terminated with signal " + signalName(ws.Signal())
	}
	return "wait status " + strconv.Itoa(int(status))
}

func signalName(s syscall.Signal) string {
	n := s.String()
	if n == "" {
		return strconv.Itoa(int(s))
	}
	return strings.ToUpper(n[:1]) + n[1:]
}

// mergeEnv appends vars (sorted) to base; later entries win, as with execve's last-one-wins lookup in Go.
func mergeEnv(base []string, vars map[string]string) []string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(base)+len(keys))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if _, override := vars[name]; !override {
			out = append(out, kv)
		}
	}
	for _, k := range keys {
		out = append(out, k+"="+vars[k])
	}
	return out
}

func boolEnv(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// formatDuration writes a duration the way Mesos' stout does ("5secs", "90secs", "15mins").
func formatDuration(d interface{ Nanoseconds() int64 }) string {
	return stoutDuration(time.Duration(d.Nanoseconds()))
}
