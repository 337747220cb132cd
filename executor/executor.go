// Package executor is the kubemesos executor: the kubelet of a Mesos agent. Mesos launches one per
// framework per agent; it subscribes to the agent's executor API, runs every pod task placed on the
// agent with a pod worker (package podworker) whose containers are Mesos nested containers (package
// nested), reports task states to Mesos (STARTING, RUNNING, KILLING, FINISHED/FAILED/KILLED) and
// writes pod statuses to the API server (package statuswriter). It survives agent restarts by
// resubscribing with its unacknowledged tasks and updates, as Mesos' checkpointing requires.
package executor

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mesosexec "github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/kubemesos/kubemesos/executor/agentclient"
	"github.com/kubemesos/kubemesos/executor/execstream"
	"github.com/kubemesos/kubemesos/executor/hollow"
	"github.com/kubemesos/kubemesos/executor/identity"
	"github.com/kubemesos/kubemesos/executor/imageconfig"
	"github.com/kubemesos/kubemesos/executor/kubeletapi"
	"github.com/kubemesos/kubemesos/executor/nested"
	"github.com/kubemesos/kubemesos/executor/podworker"
	"github.com/kubemesos/kubemesos/executor/statuswriter"
	"github.com/kubemesos/kubemesos/internal/hostfacts"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// ErrRecoveryTimeout is returned by Run when the agent stayed unreachable for MESOS_RECOVERY_TIMEOUT.
var ErrRecoveryTimeout = errors.New("agent unreachable for longer than the recovery timeout")

// ErrDisconnected is returned by Run when the connection to the agent of a framework without
// checkpointing broke (the agent then shuts the executor down anyway).
var ErrDisconnected = errors.New("disconnected from the agent and the framework does not checkpoint")

// parentSetter is implemented by runtimes that need the executor's container ID.
type parentSetter interface{ SetParent(mesos.ContainerID) }

// podLocator is implemented by runtimes that know where each pod's containers are (package nested):
// their parent container, their sandbox directories, and the container of the pod's sandbox
// executor on a CNI pod network.
type podLocator interface {
	PodParent(types.UID) (mesos.ContainerID, bool)
	ContainerDir(uid types.UID, containerID string) string
	SandboxExecutorContainer(types.UID) (mesos.ContainerID, bool)
	ExecIn(containerID string, command []string) ([]string, *mesos.ContainerInfo)
}

// Run runs the executor until the agent shuts it down (nil), ctx ends (ctx.Err()), or the agent is lost
// (ErrRecoveryTimeout, ErrDisconnected). It joins every goroutine it starts.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	mcfg, err := mesosConfig(cfg.Getenv)
	if err != nil {
		return err
	}
	agent, err := agentclient.FromEnv(cfg.Getenv)
	if err != nil {
		return err
	}
	agent.Dial = cfg.AgentDial
	log := cfg.Log
	if log == nil {
		std := logrus.StandardLogger()
		if cfg.LogLevel != "" {
			lvl, _ := logrus.ParseLevel(cfg.LogLevel)
			std.SetLevel(lvl)
		}
		log = std
	}
	log = log.WithFields(logrus.Fields{"frameworkID": mcfg.FrameworkID, "executorID": mcfg.ExecutorID})
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	client := cfg.KubeClient
	var baseEnv map[string]string
	if client == nil && cfg.BootstrapKubeconfig != "" {
		var id *identity.Identity
		if client, baseEnv, id, err = nodeClient(ctx, cfg, mcfg.Sandbox, log); err != nil {
			return err
		}
		// The Node is the agent's hostname (framework/nodes.go), known from SUBSCRIBED.
		prev := cfg.OnSubscribed
		cfg.OnSubscribed = func(s *mesosexec.Event_Subscribed) {
			id.SetNodeName(s.AgentInfo.GetHostname())
			if prev != nil {
				prev(s)
			}
		}
	}
	if client == nil {
		if client, baseEnv, err = kubeClient(cfg.Kubeconfig); err != nil {
			return err
		}
	}
	ip := hostIP(cfg.HostIP, cfg.Getenv, mcfg.AgentEndpoint)
	var recorder record.EventRecorder // set below, before any pod runs
	rt := cfg.Runtime
	agentURL := agent.URL(mcfg.AgentEndpoint, "/api/v1")
	if rt == nil && cfg.RuntimeName == RuntimeHollow {
		rt = hollow.New()
	}
	if rt == nil {
		dns, _ := cfg.clusterDNS() // validated
		rt = nested.New(nested.Config{
			AgentURL:       agentURL,
			Agent:          agent,
			Sandbox:        mcfg.Sandbox,
			FrameworkID:    mcfg.FrameworkID,
			SandboxTimeout: cfg.SandboxTimeout,
			Log:            log,
			DNS:            nested.DNS{ClusterDNS: dns, ClusterDomain: cfg.ClusterDomain, ResolvConf: cfg.ResolvConf},
			Env:            nested.PodEnv{HostIP: ip, PodIP: ip, Lookup: kubeLookup{client}, Base: baseEnv, Allocatable: kubeLookup{client}.NodeAllocatable, Services: kubeLookup{client}.Services},
			Images:         imageconfig.New(imageconfig.Config{Registry: cfg.DockerRegistry, AgentURL: agentURL, Agent: agent, Secrets: kubeLookup{client}}),
			Event: func(pod *corev1.Pod, eventType, reason, message string) {
				recorder.Event(pod, eventType, reason, message)
			},
		})
	}
	if cfg.KubeletAddress != "" {
		fwd, _ := rt.(kubeletapi.PortForwarder) // the nested runtime: through each pod's sandbox
		loc, _ := rt.(podLocator)
		kapi, err := startKubeletAPI(ctx, cfg, mcfg, agent, loc, client, ip, fwd, log)
		if err != nil {
			return err
		}
		defer kapi.shutdown()
		kapi.chainHooks(&cfg)
	}
	e := &executorLoop{
		cfg:       cfg,
		mcfg:      mcfg,
		agent:     agent,
		log:       log,
		clock:     cfg.Clock,
		hostIP:    ip,
		runtime:   rt,
		kube:      client,
		tasks:     map[string]*task{},
		unackedTs: map[string]mesos.TaskInfo{},
		statuses:  make(chan workerStatus, 64),
		settled:   make(chan string),
		conn:      make(chan connMsg),
		loopDone:  make(chan struct{}),
	}
	e.writer = statuswriter.New(client, statuswriter.Config{Clock: cfg.Clock, Log: log, Cached: e.pods.cached})
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	e.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponent, Host: ip})
	recorder = e.recorder
	e.newSenders()
	log.WithFields(logrus.Fields{"agent": mcfg.AgentEndpoint, "hostIP": ip, "checkpoint": mcfg.Checkpoint}).Info("kubemesos executor starting")
	return e.run(ctx)
}

// task is one pod task.
type task struct {
	info     mesos.TaskInfo
	pod      *corev1.Pod
	worker   *podworker.Worker
	last     mesos.TaskState // latest state sent; 0 (TASK_STAGING) before any
	killing  bool
	terminal bool
	// terminalUUID is the UUID of the terminal update; its acknowledgement retires the task.
	terminalUUID string
	// held: the terminal update waits for the containers' CPU quotas to settle (quotasettle.go).
	held *heldFinish
	log  logrus.FieldLogger
}

// workerStatus is a pod worker's report, tagged with its task.
type workerStatus struct {
	taskID string
	status podworker.Status
}

// connMsg is what the connection goroutine reports: an event, or the end of the stream.
type connMsg struct {
	event *mesosexec.Event
	err   error // set when the stream ended (or SUBSCRIBE failed)
}

// pendingUpdate is an update not yet acknowledged by the agent.
type pendingUpdate struct {
	update mesosexec.Call_Update
	sent   bool
}

// EventComponent is the source component of the pod events the executor records.
const EventComponent = "kubemesos-executor"

type executorLoop struct {
	recorder record.EventRecorder
	cfg      Config
	mcfg     config.Config
	agent    agentclient.Options // token and TLS of calls to the agent
	log      logrus.FieldLogger
	clock    clock.WithTicker
	hostIP   string
	runtime  podworker.Runtime
	writer   *statuswriter.Writer

	sender     calls.Sender // UPDATE
	subscriber calls.Sender // SUBSCRIBE (streaming)

	tasks          map[string]*task
	unacked        []*pendingUpdate            // in the order they were created
	unackedTs      map[string]mesos.TaskInfo   // tasks whose first update is not acknowledged
	info           *mesosexec.Event_Subscribed // from the latest SUBSCRIBED
	statuses       chan workerStatus           // from pod workers
	settled        chan string                 // held terminal updates due (quotasettle.go)
	conn           chan connMsg                // from the connection goroutine
	loopDone       chan struct{}               // closed when the main loop stops reading statuses
	workers        sync.WaitGroup              // pod workers
	connWG         sync.WaitGroup              // the connection goroutine
	connStop       context.CancelFunc          // ends the current connection
	connected      bool                        // a stream is open (SUBSCRIBED received)
	everSubscribed bool

	shuttingDown     bool
	shutdownDeadline time.Time

	kube kubernetes.Interface // nil in tests without an API server
	pods podUpdates
}

// newSenders builds the executor's two senders (agentclient.ExecutorClients: SUBSCRIBE's response is
// awaited without a bound; a pod task dropped at a second SUBSCRIBE is relaunched).
func (e *executorLoop) newSenders() {
	cli, sub := e.agent.ExecutorClients(e.mcfg.AgentEndpoint, e.cfg.CallTimeout)
	opts := mesosexec.CallOptions{
		calls.Framework(e.mcfg.FrameworkID),
		calls.Executor(e.mcfg.ExecutorID),
	}
	e.sender = calls.SenderWith(httpexec.NewSender(cli.Send), opts...)
	e.subscriber = calls.SenderWith(httpexec.NewSender(sub.Send, httpcli.Close(true)), opts...)
}

// run is the main loop: one goroutine owns all executor state.
func (e *executorLoop) run(ctx context.Context) (err error) {
	writerCtx, stopWriter := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		_ = e.writer.Run(writerCtx)
	}()
	workerCtx, stopWorkers := context.WithCancel(ctx)
	defer func() {
		close(e.loopDone)
		e.disconnect()
		stopWorkers()
		e.workers.Wait()
		flushCtx, cancel := context.WithTimeout(context.Background(), e.cfg.StatusFlushTimeout)
		if ferr := e.writer.Flush(flushCtx); ferr != nil {
			e.log.WithError(ferr).Warn("pod statuses left unwritten")
		}
		cancel()
		stopWriter()
		<-writerDone
	}()

	random := e.cfg.Random
	if random == nil {
		random = mrand.Float64
	}
	maxBackOff := e.mcfg.SubscriptionBackoffMax
	if maxBackOff <= 0 {
		maxBackOff = 2 * time.Second
	}
	recovery := e.mcfg.RecoveryTimeout
	if recovery <= 0 {
		recovery = time.Minute // without checkpointing: only how long the first SUBSCRIBE may take
	}
	var (
		disconnectedAt = e.clock.Now()
		retrying       bool
		retry          clock.Timer
		retryC         <-chan time.Time
		shutdownTimer  clock.Timer
		shutdownC      <-chan time.Time
	)
	defer func() {
		for _, t := range []clock.Timer{retry, shutdownTimer} {
			if t != nil {
				t.Stop()
			}
		}
	}()
	// ended handles the end of a connection: schedule a resubscription, or give up.
	ended := func(cause error) error {
		e.disconnect()
		if cause != nil && !errors.Is(cause, io.EOF) {
			e.log.WithError(cause).Warn("agent connection ended")
		} else {
			e.log.Info("agent closed the connection")
		}
		if e.everSubscribed && !e.mcfg.Checkpoint {
			return ErrDisconnected
		}
		if !retrying {
			disconnectedAt = e.clock.Now()
			retrying = true
		}
		// Mesos' executor library (src/executor/executor.cpp, backoff()) waits a random time up to
		// MESOS_SUBSCRIPTION_BACKOFF_MAX before every attempt, never longer: a restarted agent waits only
		// --executor_reregistration_timeout (2 s by default) for its executors to come back.
		delay := time.Duration(random() * float64(maxBackOff))
		if e.clock.Since(disconnectedAt) > recovery {
			return fmt.Errorf("%w (%s)", ErrRecoveryTimeout, recovery)
		}
		e.log.WithField("retryIn", delay).Debug("resubscribing after back-off")
		retry = e.clock.NewTimer(delay)
		retryC = retry.C()
		return nil
	}
	e.dial(ctx)
	for {
		if e.shuttingDown && len(e.tasks) == 0 {
			e.log.Info("all pods are over; executor exiting")
			return nil
		}
		if e.shuttingDown && shutdownTimer == nil {
			// Give up on acknowledgements at the shutdown deadline.
			shutdownTimer = e.clock.NewTimer(e.shutdownDeadline.Sub(e.clock.Now()))
			shutdownC = shutdownTimer.C()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ws := <-e.statuses:
			e.onWorkerStatus(ctx, ws)
		case id := <-e.settled:
			e.releaseHeld(ctx, id)
		case m := <-e.conn:
			if m.event == nil {
				if err := ended(m.err); err != nil {
					return err
				}
				continue
			}
			switch m.event.GetType() {
			case mesosexec.Event_SUBSCRIBED:
				retrying = false
			case mesosexec.Event_ERROR:
				e.log.WithField("message", m.event.GetError().GetMessage()).Warn("agent reported an error; resubscribing")
				if err := ended(errors.New("agent sent ERROR")); err != nil {
					return err
				}
				continue
			}
			e.onEvent(ctx, workerCtx, m.event)
		case <-retryC:
			retry, retryC = nil, nil
			e.dial(ctx)
		case <-shutdownC:
			e.releaseAllHeld(ctx)
			e.log.WithField("tasks", len(e.tasks)).Warn("shutdown grace period over; exiting")
			return nil
		}
	}
}

// dial starts the connection goroutine: SUBSCRIBE with what the agent may not know, then the events.
func (e *executorLoop) dial(ctx context.Context) {
	sub := e.subscribeCall()
	connCtx, cancel := context.WithCancel(ctx)
	e.connStop = cancel
	e.connWG.Add(1)
	go func() {
		defer e.connWG.Done()
		execstream.Run(connCtx, e.subscriber, sub, func(ev *mesosexec.Event, err error) bool {
			select {
			case e.conn <- connMsg{event: ev, err: err}:
				return true
			case <-connCtx.Done():
				return false
			}
		})
	}()
}

// disconnect ends the current connection and joins its goroutine.
func (e *executorLoop) disconnect() {
	if e.connStop != nil {
		e.connStop()
	}
	e.connWG.Wait()
	e.connected = false
}

// subscribeCall builds SUBSCRIBE with the unacknowledged tasks and updates (all of them count as sent:
// the agent processes the updates it has not seen).
func (e *executorLoop) subscribeCall() *mesosexec.Call {
	var tasks []mesos.TaskInfo
	for _, t := range e.unackedTs {
		tasks = append(tasks, t)
	}
	var updates []mesosexec.Call_Update
	for _, u := range e.unacked {
		updates = append(updates, u.update)
		u.sent = true
	}
	return calls.Subscribe(tasks, updates)
}

func (e *executorLoop) onEvent(ctx, workerCtx context.Context, ev *mesosexec.Event) {
	switch ev.GetType() {
	case mesosexec.Event_SUBSCRIBED:
		s := ev.GetSubscribed()
		e.info = s
		e.connected, e.everSubscribed = true, true
		if ps, ok := e.runtime.(parentSetter); ok && s.ContainerID != nil {
			ps.SetParent(*s.ContainerID)
		}
		if e.cfg.OnSubscribed != nil {
			e.cfg.OnSubscribed(s)
		}
		e.log.WithFields(logrus.Fields{"agentID": s.AgentInfo.GetID().GetValue(), "containerID": s.GetContainerID().GetValue()}).Info("subscribed to the agent")
		for _, u := range e.unacked {
			if !u.sent {
				e.send(ctx, u)
			}
		}
		e.sendHostFacts(ctx)
		if node := s.AgentInfo.GetHostname(); !e.pods.started && e.kube != nil && node != "" {
			// The Node is the agent's hostname (framework/nodes.go).
			e.pods.started = true
			e.workers.Add(1)
			go func() {
				defer e.workers.Done()
				e.pods.run(workerCtx, e.kube, node, e.runtime)
			}()
		}
	case mesosexec.Event_LAUNCH:
		e.launch(ctx, workerCtx, ev.GetLaunch().Task)
	case mesosexec.Event_LAUNCH_GROUP:
		for _, t := range ev.GetLaunchGroup().TaskGroup.Tasks {
			e.launch(ctx, workerCtx, t)
		}
	case mesosexec.Event_KILL:
		k := ev.GetKill()
		e.kill(ctx, k.TaskID.Value, k.KillPolicy)
	case mesosexec.Event_ACKNOWLEDGED:
		a := ev.GetAcknowledged()
		e.acknowledged(a.TaskID.Value, string(a.UUID))
	case mesosexec.Event_SHUTDOWN:
		e.shutdown(ctx)
	case mesosexec.Event_MESSAGE:
		e.log.WithField("bytes", len(ev.GetMessage().Data)).Debug("framework message ignored")
	case mesosexec.Event_HEARTBEAT:
	default:
		e.log.WithField("type", ev.GetType()).Warn("unknown event ignored")
	}
}

func (e *executorLoop) launch(ctx, workerCtx context.Context, info mesos.TaskInfo) {
	id := info.TaskID.Value
	log := e.log.WithField("taskID", id)
	if _, dup := e.tasks[id]; dup {
		log.Warn("duplicate LAUNCH ignored")
		return
	}
	e.unackedTs[id] = info
	t := &task{info: info, log: log}
	e.tasks[id] = t
	pod, err := podtranslate.PodFromTaskData(info.Data)
	if err != nil {
		log.WithError(err).Error("task carries no valid pod")
		e.finish(ctx, t, mesos.TASK_FAILED, mesos.REASON_TASK_INVALID.Enum(), err.Error(), nil, "")
		return
	}
	t.pod = pod
	t.log = log.WithField("pod", pod.Namespace+"/"+pod.Name)
	var node string // the Node's name; LAUNCH comes after SUBSCRIBED
	if e.info != nil {
		node = e.info.AgentInfo.GetHostname()
	}
	if e.shuttingDown {
		e.finish(ctx, t, mesos.TASK_KILLED, nil, "executor is shutting down", nil, "")
		return
	}
	network := podtranslate.PodNetworkOf(info.Labels)
	podIP := e.hostIP
	if network != "" {
		podIP = "" // the sandbox's, once it has one
	}
	w, err := podworker.New(pod, podworker.Config{
		Runtime:    e.runtime,
		Clock:      e.clock,
		HostIP:     e.hostIP,
		PodIP:      podIP,
		PodNetwork: network,
		// The pod's containers nest under this executor's container (design P).
		SandboxExecutor: podtranslate.SandboxExecutorOf(info.Labels),
		Log:             t.log,
		Event: func(pod *corev1.Pod, eventType, reason, message string) {
			e.recorder.Event(pod, eventType, reason, message)
		},
		NodeEvent: func(eventType, reason, message string) {
			// The kubelet's node reference: the Node's name as its UID.
			e.recorder.Event(&corev1.ObjectReference{Kind: "Node", Name: node, UID: types.UID(node)}, eventType, reason, message)
		},
		Admit: admitPod,
		OnStatus: func(s podworker.Status) {
			select {
			case e.statuses <- workerStatus{taskID: id, status: s}:
			case <-e.loopDone:
			}
		},
	})
	if err != nil {
		e.finish(ctx, t, mesos.TASK_FAILED, mesos.REASON_TASK_INVALID.Enum(), err.Error(), nil, "")
		return
	}
	t.worker = w
	e.pods.add(pod.UID, w)
	e.update(ctx, t, mesos.TASK_STARTING, nil, "", nil, "")
	t.log.Info("pod launched")
	e.workers.Add(1)
	go func() {
		defer e.workers.Done()
		defer e.pods.remove(pod.UID, w)
		if err := w.Run(workerCtx); err != nil && !errors.Is(err, context.Canceled) {
			t.log.WithError(err).Warn("pod worker ended")
		}
	}()
}

// gracePeriod picks the kill grace: the KILL's policy, else the task's, else the pod's.
func gracePeriod(kill *mesos.KillPolicy, t *task) time.Duration {
	for _, p := range []*mesos.KillPolicy{kill, t.info.KillPolicy} {
		if p != nil && p.GracePeriod != nil {
			return max(time.Duration(p.GracePeriod.Nanoseconds), 0)
		}
	}
	return podworker.GracePeriod(t.pod)
}

func (e *executorLoop) kill(ctx context.Context, id string, policy *mesos.KillPolicy) {
	t := e.tasks[id]
	if t == nil || t.terminal {
		e.log.WithField("taskID", id).Warn("KILL of an unknown or finished task ignored")
		return
	}
	grace := gracePeriod(policy, t)
	if e.shuttingDown {
		grace = min(grace, max(e.shutdownDeadline.Sub(e.clock.Now()), 0))
	}
	t.log.WithField("grace", grace).Info("killing pod")
	if !t.killing {
		t.killing = true
		if e.info != nil && hasCapability(e.info.FrameworkInfo, mesos.FrameworkInfo_Capability_TASK_KILLING_STATE) {
			e.update(ctx, t, mesos.TASK_KILLING, nil, "", nil, "")
		}
	}
	t.worker.Kill(grace)
}

func (e *executorLoop) shutdown(ctx context.Context) {
	if e.shuttingDown {
		return
	}
	grace := max(e.mcfg.ExecutorShutdownGracePeriod-e.cfg.ShutdownMargin, 0)
	e.shuttingDown = true
	e.shutdownDeadline = e.clock.Now().Add(grace)
	e.log.WithFields(logrus.Fields{"grace": grace, "tasks": len(e.tasks)}).Info("SHUTDOWN: terminating every pod")
	for id, t := range e.tasks {
		if t.worker != nil && !t.terminal {
			e.kill(ctx, id, nil)
		}
	}
}

func (e *executorLoop) onWorkerStatus(ctx context.Context, ws workerStatus) {
	t := e.tasks[ws.taskID]
	if t == nil {
		return
	}
	s := ws.status
	e.writer.Set(t.pod, s.Seq, s.PodStatus)
	if e.cfg.OnPodStatus != nil {
		pod := t.pod
		if s.Pod != nil {
			pod = s.Pod // with the ephemeral containers added since the launch (logs, exec, attach)
		}
		e.cfg.OnPodStatus(pod, s.PodStatus, s.Done)
	}
	if t.terminal {
		return
	}
	data := statusData(s.PodStatus)
	if s.Done {
		phase := s.PodStatus.Phase
		state := mesos.TASK_FAILED
		var reason *mesos.TaskStatus_Reason
		switch {
		case s.PodStatus.Reason == podworker.EventFailedCreatePodSandBox:
			reason = mesos.REASON_CONTAINER_LAUNCH_FAILED.Enum()
		case s.Killed:
			state = mesos.TASK_KILLED
		case phase == corev1.PodSucceeded:
			state = mesos.TASK_FINISHED
		}
		e.finishSettled(ctx, t, heldFinish{state, reason, summary(s.PodStatus), data, phase})
		return
	}
	if s.AllStarted && !t.killing && t.last != mesos.TASK_RUNNING {
		e.update(ctx, t, mesos.TASK_RUNNING, nil, "", data, "")
	}
}

// finish sends a task's terminal update.
func (e *executorLoop) finish(ctx context.Context, t *task, state mesos.TaskState, reason *mesos.TaskStatus_Reason, msg string, data []byte, phase corev1.PodPhase) {
	t.terminal = true
	t.terminalUUID = e.update(ctx, t, state, reason, msg, data, phase)
	fields := logrus.Fields{"state": state, "phase": phase}
	if reason != nil { // unset, it would print as the enum's zero value, REASON_COMMAND_EXECUTOR_FAILED
		fields["reason"] = reason.String()
	}
	t.log.WithFields(fields).Info("task ended")
}

// update creates, records and (if connected) sends a status update; it returns its UUID.
func (e *executorLoop) update(ctx context.Context, t *task, state mesos.TaskState, reason *mesos.TaskStatus_Reason, msg string, data []byte, phase corev1.PodPhase) string {
	uuid := make([]byte, 16)
	_, _ = rand.Read(uuid)
	uuid[6] = (uuid[6] & 0x0f) | 0x40 // version 4
	uuid[8] = (uuid[8] & 0x3f) | 0x80
	execID := mesos.ExecutorID{Value: e.mcfg.ExecutorID}
	st := mesos.TaskStatus{
		TaskID:     t.info.TaskID,
		State:      state.Enum(),
		Source:     mesos.SOURCE_EXECUTOR.Enum(),
		Reason:     reason,
		ExecutorID: &execID,
		UUID:       uuid,
		Timestamp:  ptrFloat(float64(e.clock.Now().UnixNano()) / 1e9),
		Data:       data,
	}
	if msg != "" {
		st.Message = &msg
	}
	if e.info != nil {
		st.AgentID = e.info.AgentInfo.ID
	}
	if phase != "" {
		v := string(phase)
		st.Labels = &mesos.Labels{Labels: []mesos.Label{{Key: podtranslate.LabelPodPhase, Value: &v}}}
	}
	if loc, ok := e.runtime.(podLocator); ok && state == mesos.TASK_RUNNING && t.pod != nil {
		// The agent adds the status of the container an update names (Slave::statusUpdate, any
		// container; else the executor's): the sandbox executor's, whose network_infos hold the pod IP.
		if id, ok := loc.SandboxExecutorContainer(t.pod.UID); ok {
			st.ContainerStatus = &mesos.ContainerStatus{ContainerID: &id}
		}
	}
	t.last = state
	u := &pendingUpdate{update: mesosexec.Call_Update{Status: st}}
	e.unacked = append(e.unacked, u)
	if e.connected {
		e.send(ctx, u)
	}
	t.log.WithField("state", state).Debug("task status update")
	return string(uuid)
}

func (e *executorLoop) send(ctx context.Context, u *pendingUpdate) {
	resp, err := e.sender.Send(ctx, calls.NonStreaming(calls.Update(u.update.Status)))
	if resp != nil {
		resp.Close()
	}
	if err != nil {
		// It stays unacknowledged and goes with the next SUBSCRIBE.
		e.log.WithError(err).WithField("taskID", u.update.Status.TaskID.Value).Warn("sending status update failed")
		return
	}
	u.sent = true
}

// sendHostFacts tells the framework, on each subscription, what the kubelet reports of its machine in
// Node.status.nodeInfo (kernel, OS image, architecture...), which a Mesos agent does not advertise. A
// lost MESSAGE is only stale facts: the next subscription sends them again.
func (e *executorLoop) sendHostFacts(ctx context.Context) {
	resp, err := e.sender.Send(ctx, calls.NonStreaming(calls.Message(hostfacts.Collect("/").Encode())))
	if resp != nil {
		resp.Close()
	}
	if err != nil {
		e.log.WithError(err).Warn("sending the host's facts to the framework failed")
	}
}

func (e *executorLoop) acknowledged(taskID, uuid string) {
	delete(e.unackedTs, taskID)
	for i, u := range e.unacked {
		if string(u.update.Status.UUID) == uuid {
			e.unacked = append(e.unacked[:i], e.unacked[i+1:]...)
			break
		}
	}
	if t := e.tasks[taskID]; t != nil && t.terminal && t.terminalUUID == uuid {
		delete(e.tasks, taskID)
		if t.pod != nil {
			e.writer.Forget(t.pod.UID)
		}
		t.log.Debug("task retired")
	}
}

// statusData is TaskStatus.data: the pod phase and container statuses as PodStatus JSON.
func statusData(s corev1.PodStatus) []byte {
	b, err := json.Marshal(corev1.PodStatus{
		Phase:                 s.Phase,
		InitContainerStatuses: s.InitContainerStatuses,
		ContainerStatuses:     s.ContainerStatuses,
	})
	if err != nil {
		return nil
	}
	return b
}

// summary explains a terminal pod status in one line for TaskStatus.message.
func summary(s corev1.PodStatus) string {
	var parts []string
	for _, list := range [][]corev1.ContainerStatus{s.InitContainerStatuses, s.ContainerStatuses} {
		for _, cs := range list {
			if term := cs.State.Terminated; term != nil && term.ExitCode != 0 {
				parts = append(parts, fmt.Sprintf("container %s exited with %d (%s)", cs.Name, term.ExitCode, term.Reason))
			}
		}
	}
	if len(parts) == 0 {
		if s.Message != "" {
			return s.Message
		}
		return "pod " + strings.ToLower(string(s.Phase))
	}
	return strings.Join(parts, "; ")
}

func hasCapability(fw mesos.FrameworkInfo, c mesos.FrameworkInfo_Capability_Type) bool {
	for _, cap := range fw.Capabilities {
		if cap.Type == c {
			return true
		}
	}
	return false
}

func ptrFloat(f float64) *float64 { return &f }

// noPods locates nothing: a runtime without nested containers (tests' fakes).
type noPods struct{}

func (noPods) PodParent(types.UID) (mesos.ContainerID, bool) { return mesos.ContainerID{}, false }
func (noPods) ContainerDir(types.UID, string) string         { return "" }
func (noPods) SandboxExecutorContainer(types.UID) (mesos.ContainerID, bool) {
	return mesos.ContainerID{}, false
}
func (noPods) ExecIn(_ string, command []string) ([]string, *mesos.ContainerInfo) {
	return command, &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum()}
}
