// Package sandboxexec is `kubemesos pod-sandbox` run by a Mesos agent as an executor: the per-pod
// sandbox executor of the pod network (docs/design.md, "The pod network"). Mesos attaches an
// executor's container to the CNI networks of its ExecutorInfo.container.network_infos, and nested
// containers launched under it share that network namespace (Mesos' default executor runs its task
// groups so); the kubelet executor therefore nests a pod's containers under this executor's container.
//
// The executor itself only holds the network: it subscribes to the agent's executor API, answers the
// LAUNCH of its one task (the pod's resources) with TASK_RUNNING, to which the agent adds the
// container's network_infos (the pod IP), serves kubectl port-forward connections on
// podsandbox.SocketName in its sandbox directory ($MESOS_SANDBOX) into its network namespace, and on
// KILL answers TASK_KILLED and exits once that update is acknowledged. The agent then destroys its
// container, with whatever is still nested in it, and network/cni releases the pod's address.
package sandboxexec

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mesosexec "github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"
	mesostime "github.com/mesos/mesos-go/api/v1/lib/time"
	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/executor/agentclient"
	"github.com/kubemesos/kubemesos/executor/execstream"
	"github.com/kubemesos/kubemesos/executor/podsandbox"
)

// ErrDisconnected is returned when the connection to the agent of a framework without checkpointing
// broke (the agent then shuts the executor down anyway).
var ErrDisconnected = errors.New("disconnected from the agent and the framework does not checkpoint")

// ErrRecoveryTimeout is returned when the agent stayed unreachable for MESOS_RECOVERY_TIMEOUT.
var ErrRecoveryTimeout = errors.New("agent unreachable for longer than the recovery timeout")

// ErrNoAcknowledgement is Mesos' command executor's fail-safe text: the terminal update was never
// acknowledged within AckTimeout.
var ErrNoAcknowledgement = errors.New("did not receive ACK for the terminal status update from the agent")

// DefaultAckTimeout is how long the executor waits for the acknowledgement of its terminal update,
// as Mesos' HTTP command executor does (60 s) before it gives up.
const DefaultAckTimeout = 60 * time.Second

// Config of a sandbox executor. The zero value reads the process's environment.
type Config struct {
	// Getenv reads the agent's MESOS_* variables; nil: os.Getenv.
	Getenv func(string) string
	Log    logrus.FieldLogger
	// AckTimeout bounds the wait for the terminal update's acknowledgement; 0: DefaultAckTimeout.
	AckTimeout time.Duration
	// NoSignals leaves SIGTERM/SIGINT alone (an in-process executor in tests); else they end Run (nil).
	NoSignals bool
	// CallTimeout bounds the wait for the agent's response to an UPDATE or MESSAGE; 0 means
	// agentclient.DefaultCallTimeout. SUBSCRIBE waits for its response without a bound (newSenders).
	CallTimeout time.Duration
}

// env is what the agent tells an executor.
type env struct {
	frameworkID, executorID, sandbox, endpoint string
	checkpoint                                 bool
	recoveryTimeout, backoffMax                time.Duration
	// agent: the token and TLS of calls to the agent (package agentclient).
	agent agentclient.Options
}

func readEnv(getenv func(string) string) (env, error) {
	var errs []error
	req := func(name string) string {
		v := getenv(name)
		if v == "" {
			errs = append(errs, fmt.Errorf("missing environment variable %s", name))
		}
		return v
	}
	dur := func(name string) time.Duration {
		v := req(name)
		if v == "" {
			return 0
		}
		d, err := mesostime.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		return d
	}
	e := env{
		frameworkID: req("MESOS_FRAMEWORK_ID"),
		executorID:  req("MESOS_EXECUTOR_ID"),
		sandbox:     req("MESOS_SANDBOX"),
		endpoint:    req("MESOS_AGENT_ENDPOINT"),
	}
	if v := getenv("MESOS_CHECKPOINT"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("MESOS_CHECKPOINT: %w", err))
		}
		e.checkpoint = b
	}
	if e.checkpoint {
		e.recoveryTimeout = dur("MESOS_RECOVERY_TIMEOUT")
		e.backoffMax = dur("MESOS_SUBSCRIPTION_BACKOFF_MAX")
	}
	if err := errors.Join(errs...); err != nil {
		return env{}, fmt.Errorf("reading the Mesos executor environment: %w", err)
	}
	return e, nil
}

// Run is the sandbox executor: it returns nil once its task's terminal update is acknowledged, on
// SHUTDOWN, on SIGTERM/SIGINT or when ctx ends, and an error when the agent is lost.
func Run(ctx context.Context, cfg Config) error {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	me, err := readEnv(getenv)
	if err != nil {
		return err
	}
	if me.agent, err = agentclient.FromEnv(cfg.Getenv); err != nil {
		return err
	}
	log := cfg.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	log = log.WithFields(logrus.Fields{"frameworkID": me.frameworkID, "executorID": me.executorID})
	if !cfg.NoSignals {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		if os.Getpid() == 1 {
			go podsandbox.Reap(ctx)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	l, err := podsandbox.Listen(me.sandbox)
	if err != nil {
		return err
	}
	s := &sandboxExecutor{
		cfg:      cfg,
		env:      me,
		log:      log,
		tasks:    map[string]*task{},
		conn:     make(chan connMsg),
		serveErr: make(chan error, 1),
	}
	s.name.Store(me.executorID)
	var serving sync.WaitGroup
	serving.Add(1)
	go func() {
		defer serving.Done()
		// Port-forward connections end with the executor: its container and network are destroyed next.
		s.serveErr <- podsandbox.ServeNamed(ctx, l, func() string { return s.name.Load().(string) })
	}()
	defer serving.Wait()
	defer cancel()
	s.newSenders()
	log.WithField("agent", me.endpoint).Info("kubemesos pod sandbox executor starting")
	return s.run(ctx)
}

type task struct {
	info     mesos.TaskInfo
	terminal bool
	acked    bool // an update of it was acknowledged: the agent knows the task
}

type pendingUpdate struct {
	update mesosexec.Call_Update
	sent   bool
}

type connMsg struct {
	event *mesosexec.Event
	err   error
}

type sandboxExecutor struct {
	cfg Config
	env env
	log logrus.FieldLogger

	sender, subscriber calls.Sender

	name     atomic.Value // string: the container ID once subscribed, for port-forward error texts
	info     *mesosexec.Event_Subscribed
	tasks    map[string]*task
	unacked  []*pendingUpdate
	conn     chan connMsg
	connStop context.CancelFunc
	connWG   sync.WaitGroup
	serveErr chan error

	connected, everSubscribed bool
	// leaving: a terminal update was sent after KILL or SHUTDOWN; exit once it is acknowledged.
	leaving bool
}

// newSenders builds the executor's two senders (agentclient.ExecutorClients: SUBSCRIBE's response is
// awaited without a bound; a dropped sandbox task shrinks the container under the pod).
func (s *sandboxExecutor) newSenders() {
	cli, sub := s.env.agent.ExecutorClients(s.env.endpoint, s.cfg.CallTimeout)
	opts := mesosexec.CallOptions{calls.Framework(s.env.frameworkID), calls.Executor(s.env.executorID)}
	s.sender = calls.SenderWith(httpexec.NewSender(cli.Send), opts...)
	s.subscriber = calls.SenderWith(httpexec.NewSender(sub.Send, httpcli.Close(true)), opts...)
}

func (s *sandboxExecutor) run(ctx context.Context) error {
	defer s.disconnect()
	backoffMax := s.env.backoffMax
	if backoffMax <= 0 {
		backoffMax = 2 * time.Second
	}
	recovery := s.env.recoveryTimeout
	if recovery <= 0 {
		recovery = time.Minute // without checkpointing: how long the first SUBSCRIBE may take
	}
	ackTimeout := s.cfg.AckTimeout
	if ackTimeout <= 0 {
		ackTimeout = DefaultAckTimeout
	}
	var (
		disconnectedAt = time.Now()
		delay          time.Duration
		retryC         <-chan time.Time
		ackC           <-chan time.Time
	)
	s.dial(ctx)
	for {
		if s.leaving && ackC == nil {
			ackTimer := time.NewTimer(ackTimeout)
			defer ackTimer.Stop() // once: ackC stays set
			ackC = ackTimer.C
		}
		if s.leaving && len(s.unacked) == 0 {
			s.log.Info("terminal update acknowledged; pod sandbox executor exiting")
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-s.serveErr:
			return err
		case <-ackC:
			return ErrNoAcknowledgement
		case <-retryC:
			retryC = nil
			s.dial(ctx)
		case m := <-s.conn:
			if m.event != nil && m.event.GetType() == mesosexec.Event_ERROR {
				s.log.WithField("message", m.event.GetError().GetMessage()).Warn("agent reported an error; resubscribing")
				m = connMsg{err: errors.New("agent sent ERROR")}
			}
			if m.event != nil {
				if m.event.GetType() == mesosexec.Event_SUBSCRIBED {
					delay = 0
				}
				if done := s.onEvent(ctx, m.event); done {
					return nil
				}
				continue
			}
			s.disconnect()
			s.log.WithError(m.err).Info("agent connection ended")
			if s.everSubscribed && !s.env.checkpoint {
				return ErrDisconnected
			}
			if delay == 0 {
				disconnectedAt = time.Now()
				delay = 100 * time.Millisecond
			} else {
				delay = min(2*delay, backoffMax)
			}
			if time.Since(disconnectedAt) > recovery {
				return fmt.Errorf("%w (%s)", ErrRecoveryTimeout, recovery)
			}
			retryC = time.After(delay)
		}
	}
}

// dial subscribes (with what the agent may not have seen) and streams the events to s.conn.
func (s *sandboxExecutor) dial(ctx context.Context) {
	var tasks []mesos.TaskInfo
	for _, t := range s.tasks {
		if !t.acked {
			tasks = append(tasks, t.info)
		}
	}
	var updates []mesosexec.Call_Update
	for _, u := range s.unacked {
		updates = append(updates, u.update)
		u.sent = true
	}
	sub := calls.Subscribe(tasks, updates)
	connCtx, cancel := context.WithCancel(ctx)
	s.connStop = cancel
	s.connWG.Add(1)
	go func() {
		defer s.connWG.Done()
		execstream.Run(connCtx, s.subscriber, sub, func(ev *mesosexec.Event, err error) bool {
			select {
			case s.conn <- connMsg{event: ev, err: err}:
				return true
			case <-connCtx.Done():
				return false
			}
		})
	}()
}

func (s *sandboxExecutor) disconnect() {
	if s.connStop != nil {
		s.connStop()
	}
	s.connWG.Wait()
	s.connected = false
}

// onEvent handles one event; true means the executor is done.
func (s *sandboxExecutor) onEvent(ctx context.Context, ev *mesosexec.Event) bool {
	switch ev.GetType() {
	case mesosexec.Event_SUBSCRIBED:
		sub := ev.GetSubscribed()
		s.info = sub
		s.connected, s.everSubscribed = true, true
		if id := sub.GetContainerID(); id != nil {
			s.name.Store(id.Value)
		}
		s.log.WithField("containerID", sub.GetContainerID().GetValue()).Info("subscribed to the agent")
		for _, u := range s.unacked {
			if !u.sent {
				s.send(ctx, u)
			}
		}
	case mesosexec.Event_LAUNCH:
		s.launch(ctx, ev.GetLaunch().Task)
	case mesosexec.Event_LAUNCH_GROUP:
		for _, t := range ev.GetLaunchGroup().TaskGroup.Tasks {
			s.launch(ctx, t)
		}
	case mesosexec.Event_KILL:
		id := ev.GetKill().TaskID.Value
		t := s.tasks[id]
		if t == nil || t.terminal {
			s.log.WithField("taskID", id).Warn("KILL of an unknown or finished task ignored")
			return false
		}
		s.log.WithField("taskID", id).Info("KILL: the pod sandbox ends")
		s.finish(ctx, t, "")
	case mesosexec.Event_ACKNOWLEDGED:
		a := ev.GetAcknowledged()
		uuid := string(a.UUID)
		if t := s.tasks[a.TaskID.Value]; t != nil {
			t.acked = true
		}
		for i, u := range s.unacked {
			if string(u.update.Status.UUID) == uuid {
				s.unacked = append(s.unacked[:i], s.unacked[i+1:]...)
				break
			}
		}
	case mesosexec.Event_SHUTDOWN:
		s.log.Info("SHUTDOWN: the pod sandbox ends")
		for _, t := range s.tasks {
			if !t.terminal {
				// Sent synchronously: once accepted (202), the agent's status update manager has it.
				s.finish(ctx, t, "executor is shutting down")
			}
		}
		return true
	case mesosexec.Event_MESSAGE, mesosexec.Event_HEARTBEAT:
	default:
		s.log.WithField("type", ev.GetType()).Debug("event ignored")
	}
	return false
}

func (s *sandboxExecutor) launch(ctx context.Context, info mesos.TaskInfo) {
	id := info.TaskID.Value
	if _, dup := s.tasks[id]; dup {
		s.log.WithField("taskID", id).Warn("duplicate LAUNCH ignored")
		return
	}
	t := &task{info: info}
	s.tasks[id] = t
	if s.leaving {
		s.finish(ctx, t, "executor is shutting down")
		return
	}
	// The network is set up before the executor runs: the sandbox is ready as soon as it is launched.
	s.update(ctx, t, mesos.TASK_RUNNING, "")
	s.log.WithField("taskID", id).Info("pod sandbox running")
}

// finish sends TASK_KILLED for t; the executor leaves once it is acknowledged.
func (s *sandboxExecutor) finish(ctx context.Context, t *task, msg string) {
	t.terminal = true
	s.leaving = true
	s.update(ctx, t, mesos.TASK_KILLED, msg)
}

func (s *sandboxExecutor) update(ctx context.Context, t *task, state mesos.TaskState, msg string) {
	uuid := make([]byte, 16)
	_, _ = rand.Read(uuid)
	uuid[6] = (uuid[6] & 0x0f) | 0x40
	uuid[8] = (uuid[8] & 0x3f) | 0x80
	execID := mesos.ExecutorID{Value: s.env.executorID}
	now := float64(time.Now().UnixNano()) / 1e9
	st := mesos.TaskStatus{
		TaskID:     t.info.TaskID,
		State:      state.Enum(),
		Source:     mesos.SOURCE_EXECUTOR.Enum(),
		ExecutorID: &execID,
		UUID:       uuid,
		Timestamp:  &now,
	}
	if msg != "" {
		st.Message = &msg
	}
	if s.info != nil {
		st.AgentID = s.info.AgentInfo.ID
	}
	u := &pendingUpdate{update: mesosexec.Call_Update{Status: st}}
	s.unacked = append(s.unacked, u)
	if s.connected {
		s.send(ctx, u)
	}
}

func (s *sandboxExecutor) send(ctx context.Context, u *pendingUpdate) {
	resp, err := s.sender.Send(ctx, calls.NonStreaming(calls.Update(u.update.Status)))
	if resp != nil {
		resp.Close()
	}
	if err != nil {
		// It stays unacknowledged and goes with the next SUBSCRIBE.
		s.log.WithError(err).WithField("taskID", u.update.Status.TaskID.Value).Warn("sending status update failed")
		return
	}
	u.sent = true
}
