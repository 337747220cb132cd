// Package testexec is a small custom executor written against mesos-go's v1 executor client, used by
// the agent's tests (as a process through ../testexecutor, or in-process through an ExecutorHook).
// What it does with a task is chosen by TaskInfo.data:
//
//	finish          TASK_RUNNING, TASK_FINISHED
//	wait            TASK_RUNNING, then TASK_KILLED on KILL (or SHUTDOWN)
//	crash           TASK_RUNNING, then the executor exits with status 3
//	env             TASK_RUNNING, TASK_FINISHED with the MESOS_*/LIBPROCESS_* environment as JSON data
//	netns           TASK_RUNNING, TASK_FINISHED with {"hostname", "net"} (its hostname and network
//	                namespace) as JSON data
//	finish-on-disconnect TASK_RUNNING, then TASK_FINISHED once the agent's stream ends (with
//	                checkpointing the update is kept and sent again in the next SUBSCRIBE)
//	message         sends MESSAGE "hello" to the scheduler, TASK_RUNNING, TASK_FINISHED
//	nested:<cmd>    TASK_RUNNING, runs <cmd> as a nested container (LAUNCH_CONTAINER + WAIT_CONTAINER
//	                through mesos-go's agent API client), TASK_FINISHED if it exits 0, else TASK_FAILED
//
// MESSAGE events are echoed back prefixed with "echo:".
package testexec

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"
)

// ErrCrash is returned by Run when a "crash" task asks the executor to die.
var ErrCrash = errors.New("crash requested")

type state struct {
	cfg         config.Config
	env         map[string]string
	sender      calls.Sender
	agent       agentcalls.Sender
	mu          sync.Mutex
	containerID mesos.ContainerID
	kills       map[string]chan struct{}
	wg          sync.WaitGroup
	crash       chan struct{}
	crashed     bool // guarded by mu: nothing is sent after a crash
	// tasks not yet acknowledged and updates not yet acknowledged (in order), for SUBSCRIBE.
	tasks        map[string]mesos.TaskInfo
	updates      []mesos.TaskStatus
	onDisconnect []chan struct{}
}

// Run subscribes to the agent and serves events until SHUTDOWN, a crash task, the end of the stream,
// or ctx. env is the executor's environment (reported by "env" tasks).
func Run(ctx context.Context, cfg config.Config, env map[string]string) error {
	execURL := url.URL{Scheme: "http", Host: cfg.AgentEndpoint, Path: "/api/v1/executor"}
	agentURL := url.URL{Scheme: "http", Host: cfg.AgentEndpoint, Path: "/api/v1"}
	// An agent with --jwt_secret_key gives each executor a token it sends on every call.
	var auth httpcli.Opt // nil options are skipped
	if token := env["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"]; token != "" {
		auth = httpcli.DefaultHeader("Authorization", "Bearer "+token)
	}
	cli := httpcli.New(httpcli.Endpoint(execURL.String()), httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]), auth)
	opts := executor.CallOptions{calls.Framework(cfg.FrameworkID), calls.Executor(cfg.ExecutorID)}
	s := &state{
		cfg:    cfg,
		env:    env,
		sender: calls.SenderWith(httpexec.NewSender(cli.Send), opts...),
		agent:  httpagent.NewSender(httpcli.New(httpcli.Endpoint(agentURL.String()), auth).Send),
		kills:  map[string]chan struct{}{},
		crash:  make(chan struct{}),
		tasks:  map[string]mesos.TaskInfo{},
	}
	subscriber := calls.SenderWith(httpexec.NewSender(cli.Send, httpcli.Close(true)), opts...)
	// With checkpointing the executor outlives its agent's restarts, as mesos-go's and Mesos' executor
	// libraries do: it subscribes again every backoff (up to MESOS_SUBSCRIPTION_BACKOFF_MAX) with what
	// the agent has not acknowledged, until MESOS_RECOVERY_TIMEOUT.
	var disconnectedAt time.Time
	for {
		resp, err := subscriber.Send(ctx, calls.NonStreaming(calls.Subscribe(s.unackedTasks(), s.unackedUpdates())))
		if err != nil {
			if disconnectedAt.IsZero() {
				return fmt.Errorf("subscribing: %w", err)
			}
			if time.Since(disconnectedAt) > cfg.RecoveryTimeout {
				s.killAll()
				s.wg.Wait()
				return fmt.Errorf("recovery timeout: %w", err)
			}
			select {
			case <-time.After(cfg.SubscriptionBackoffMax / 4):
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		done, err := s.serve(ctx, resp)
		resp.Close()
		if done || err != nil || !cfg.Checkpoint {
			return err
		}
		disconnectedAt = time.Now()
		s.disconnected()
	}
}

// serve handles one subscription's events. It reports done when the executor is over, and nothing
// when the stream ended (the agent went away).
func (s *state) serve(ctx context.Context, resp interface {
	Decode(encoding.Unmarshaler) error
}) (bool, error) {
	events := make(chan executor.Event)
	decodeErr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			var e executor.Event
			if err := resp.Decode(&e); err != nil {
				decodeErr <- err
				return
			}
			select {
			case events <- e:
			case <-stop:
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			s.killAll()
			s.wg.Wait()
			return true, ctx.Err()
		case <-s.crash:
			s.mu.Lock()
			s.crashed = true
			s.mu.Unlock()
			s.killAll()
			return true, ErrCrash
		case err := <-decodeErr:
			if s.cfg.Checkpoint {
				return false, nil
			}
			s.killAll()
			s.wg.Wait()
			if errors.Is(err, io.EOF) {
				return true, nil
			}
			return true, err
		case e := <-events:
			if done := s.handle(ctx, e); done {
				return true, nil
			}
		}
	}
}

// disconnected releases the tasks waiting for the agent to go away ("finish-on-disconnect").
func (s *state) disconnected() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.onDisconnect {
		close(ch)
	}
	s.onDisconnect = nil
}

func (s *state) unackedTasks() []mesos.TaskInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []mesos.TaskInfo
	for _, id := range Keys(s.taskNames()) {
		out = append(out, s.tasks[id])
	}
	return out
}

func (s *state) taskNames() map[string]string {
	m := map[string]string{}
	for id := range s.tasks {
		m[id] = id
	}
	return m
}

func (s *state) unackedUpdates() []executor.Call_Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []executor.Call_Update
	for _, u := range s.updates {
		out = append(out, executor.Call_Update{Status: u})
	}
	return out
}

func (s *state) handle(ctx context.Context, e executor.Event) (done bool) {
	switch e.Type {
	case executor.Event_SUBSCRIBED:
		s.mu.Lock()
		s.containerID = *e.Subscribed.ContainerID
		s.mu.Unlock()
	case executor.Event_LAUNCH:
		s.start(ctx, e.Launch.Task)
	case executor.Event_LAUNCH_GROUP:
		for _, t := range e.LaunchGroup.TaskGroup.Tasks {
			s.start(ctx, t)
		}
	case executor.Event_KILL:
		s.kill(e.Kill.TaskID.Value)
	case executor.Event_ACKNOWLEDGED:
		s.mu.Lock()
		delete(s.tasks, e.Acknowledged.TaskID.Value)
		for i, u := range s.updates {
			if string(u.UUID) == string(e.Acknowledged.UUID) {
				s.updates = append(s.updates[:i], s.updates[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
	case executor.Event_MESSAGE:
		_ = s.send(ctx, calls.Message(append([]byte("echo:"), e.Message.Data...)))
	case executor.Event_SHUTDOWN:
		s.killAll()
		s.wg.Wait()
		return true
	case executor.Event_ERROR:
		return true
	}
	return false
}

func (s *state) start(ctx context.Context, t mesos.TaskInfo) {
	kill := make(chan struct{})
	s.mu.Lock()
	s.tasks[t.TaskID.Value] = t
	s.kills[t.TaskID.Value] = kill
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.runTask(ctx, t, kill)
	}()
}

func (s *state) kill(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch := s.kills[id]; ch != nil {
		close(ch)
		delete(s.kills, id)
	}
}

func (s *state) killAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ch := range s.kills {
		close(ch)
		delete(s.kills, id)
	}
}

func (s *state) runTask(ctx context.Context, t mesos.TaskInfo, kill chan struct{}) {
	id := t.TaskID
	data := string(t.Data)
	if data == "message" {
		_ = s.send(ctx, calls.Message([]byte("hello")))
	}
	s.update(ctx, id, mesos.TASK_RUNNING, "", nil)
	switch {
	case data == "finish" || data == "message":
		s.update(ctx, id, mesos.TASK_FINISHED, "", nil)
	case data == "wait":
		<-kill
		s.update(ctx, id, mesos.TASK_KILLED, "", nil)
	case data == "crash":
		close(s.crash)
	case data == "finish-on-disconnect":
		ch := make(chan struct{})
		s.mu.Lock()
		s.onDisconnect = append(s.onDisconnect, ch)
		s.mu.Unlock()
		select {
		case <-ch:
			s.update(ctx, id, mesos.TASK_FINISHED, "finished while the agent was away", nil)
		case <-kill:
			s.update(ctx, id, mesos.TASK_KILLED, "", nil)
		}
	case data == "env":
		b, _ := json.Marshal(s.env)
		s.update(ctx, id, mesos.TASK_FINISHED, "", b)
	case data == "netns":
		host, _ := os.Hostname()
		ns, _ := os.Readlink("/proc/self/ns/net")
		b, _ := json.Marshal(map[string]string{"hostname": host, "net": ns})
		s.update(ctx, id, mesos.TASK_FINISHED, "", b)
	case strings.HasPrefix(data, "nested:"):
		status, err := s.nested(ctx, t, strings.TrimPrefix(data, "nested:"))
		switch {
		case err != nil:
			s.update(ctx, id, mesos.TASK_FAILED, err.Error(), nil)
		case status == 0:
			s.update(ctx, id, mesos.TASK_FINISHED, "", nil)
		default:
			s.update(ctx, id, mesos.TASK_FAILED, fmt.Sprintf("nested container wait status %d", status), nil)
		}
	default:
		s.update(ctx, id, mesos.TASK_FAILED, "unknown task data "+data, nil)
	}
}

func (s *state) nested(ctx context.Context, t mesos.TaskInfo, cmd string) (int32, error) {
	s.mu.Lock()
	parent := s.containerID
	s.mu.Unlock()
	cid := mesos.ContainerID{Value: t.TaskID.Value, Parent: &parent}
	shell := true
	if err := agentcalls.SendNoData(ctx, s.agent, agentcalls.NonStreaming(agentcalls.LaunchContainer(cid,
		&mesos.CommandInfo{Value: &cmd, Shell: &shell}, nil, nil))); err != nil {
		return 0, fmt.Errorf("LAUNCH_CONTAINER: %w", err)
	}
	resp, err := s.agent.Send(ctx, agentcalls.NonStreaming(agentcalls.WaitContainer(cid)))
	if err != nil {
		return 0, fmt.Errorf("WAIT_CONTAINER: %w", err)
	}
	defer resp.Close()
	var r agentapi.Response
	if err := resp.Decode(&r); err != nil {
		return 0, fmt.Errorf("decoding WAIT_CONTAINER: %w", err)
	}
	return r.GetWaitContainer().GetExitStatus(), nil
}

func (s *state) update(ctx context.Context, id mesos.TaskID, st mesos.TaskState, msg string, data []byte) {
	uuid := make([]byte, 16)
	_, _ = rand.Read(uuid)
	uuid[6] = uuid[6]&0x0f | 0x40 // version 4: Mesos refuses bytes that are no valid UUID
	uuid[8] = uuid[8]&0x3f | 0x80
	status := mesos.TaskStatus{TaskID: id, State: st.Enum(), Source: mesos.SOURCE_EXECUTOR.Enum(), UUID: uuid, Data: data}
	if msg != "" {
		status.Message = &msg
	}
	s.mu.Lock()
	s.updates = append(s.updates, status)
	s.mu.Unlock()
	_ = s.send(ctx, calls.Update(status))
}

func (s *state) send(ctx context.Context, c *executor.Call) error {
	s.mu.Lock()
	crashed := s.crashed
	s.mu.Unlock()
	if crashed {
		return ErrCrash
	}
	resp, err := s.sender.Send(ctx, calls.NonStreaming(c))
	if resp != nil {
		resp.Close()
	}
	return err
}

// Environ returns the MESOS_* and LIBPROCESS_* variables of the process environment.
func Environ() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "MESOS_") || strings.HasPrefix(k, "LIBPROCESS_") || strings.HasPrefix(k, "TEST_") {
			env[k] = v
		}
	}
	return env
}

// Keys returns the sorted keys of an environment map.
func Keys(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ExitCode maps Run's result to the executor's exit status.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrCrash):
		return 3
	case errors.Is(err, syscall.EINTR):
		return 0
	default:
		return 1
	}
}
