package nested

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
	"github.com/sirupsen/logrus"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/kubemesos/kubemesos/podtranslate"
)

// TerminalSize is a terminal's size (a kubectl exec client's resize stream).
type TerminalSize = remotecommand.TerminalSize

// Sessions runs commands inside running containers as Mesos DEBUG containers. A Mesos agent launches a
// container of the DEBUG class only for LAUNCH_NESTED_CONTAINER_SESSION (http.cpp: LAUNCH_CONTAINER and
// LAUNCH_NESTED_CONTAINER always pass ContainerClass::DEFAULT), and only a DEBUG container enters its
// parent's mount namespace (filesystem/linux: the parent's root filesystem and volumes) and pid
// namespace, inherits its environment and working directory (containerizer.cpp _launch) besides its
// user (any nested container without one) and network: what the kubelet's exec (CRI ExecSync) gives a
// probe, a hook or kubectl exec.
type Sessions struct {
	// Bounded sends the calls that answer at once (KILL_CONTAINER, REMOVE_CONTAINER).
	Bounded agentcalls.Sender
	// Streamer sends the session, its input and WAIT_CONTAINER: no response deadline.
	Streamer agentcalls.Sender
	// CallTimeout bounds the clean-up calls.
	CallTimeout time.Duration
	Log         logrus.FieldLogger
}

// SessionRequest is one command to run in a DEBUG container.
type SessionRequest struct {
	// ID is the session's container ID: a child of the target container.
	ID      mesos.ContainerID
	Command []string
	// Container is the session's ContainerInfo (type MESOS; its TTYInfo with TTY set, its LinuxInfo).
	Container *mesos.ContainerInfo
	// Stdin is nil when there is no input: the command reads end-of-file.
	Stdin io.Reader
	// Stdout and Stderr receive the output (nil drops it; with TTY, stderr goes to Stdout).
	Stdout, Stderr io.Writer
	TTY            bool
	Resize         <-chan TerminalSize
}

// Run runs req's command and returns its exit code once it ended and its output was written. An
// error means the command could not be run to its end (the launch failed, ctx ended, the streams
// broke), not that it failed. The session container is killed and removed before Run returns.
func (s Sessions) Run(ctx context.Context, req SessionRequest) (int32, error) {
	if len(req.Command) == 0 {
		return 0, errors.New("exec: empty command")
	}
	id := req.ID
	log := s.log().WithField("session", id.Value)
	if id.Parent != nil {
		log = log.WithField("containerID", id.Parent.Value)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	shell := false
	cmd := &mesos.CommandInfo{Shell: &shell, Value: &req.Command[0], Arguments: req.Command}
	ci := req.Container
	if ci == nil {
		ci = &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum()}
	}
	defer s.Cleanup(id, log) // also after a failed launch: the container may exist all the same
	resp, err := s.Streamer.Send(ctx, agentcalls.NonStreaming(agentcalls.LaunchNestedContainerSession(id, cmd, ci)))
	if err != nil {
		if resp != nil {
			resp.Close()
		}
		var pe httpcli.ProtocolError
		if errors.As(err, &pe) {
			// The agent launched the session but answered without an output stream (mesos-sim does
			// when the command ended before its output could be attached): its exit status remains.
			if st, werr := s.wait(ctx, id); werr == nil && st != nil {
				log.WithError(err).Warn("exec session answered without an output stream; its output is lost")
				code, _ := podtranslate.ExitFromWaitStatus(*st)
				return code, nil
			}
		}
		return 0, fmt.Errorf("launching an exec session in container %s: %w", parentValue(id), err)
	}

	// WAIT_CONTAINER from the start: once the session's connection closes, a real agent destroys
	// the debug container, and a later WAIT might find it gone.
	type waitResult struct {
		status *int32
		err    error
	}
	waited := make(chan waitResult, 1)
	var helpers sync.WaitGroup
	helpers.Add(2)
	go func() {
		defer helpers.Done()
		st, err := s.wait(ctx, id)
		waited <- waitResult{st, err}
	}()
	inputRefused := make(chan error, 1)
	go func() {
		defer helpers.Done()
		err := s.SendInput(ctx, id, req.Stdin, req.Resize, agentcalls.AttachContainerInputData([]byte{}))
		if err == nil || ctx.Err() != nil {
			return
		}
		var apiErr *apierrors.Error
		if errors.As(err, &apiErr) && apierrors.Code(http.StatusInternalServerError).Matches(apiErr) &&
			strings.Contains(apiErr.Error(), "Unknown container") {
			// The session ended and its container was destroyed before its input was attached (the
			// containerizer's text, MesosContainerizerProcess::attach): its output and exit status
			// tell the rest.
			log.WithError(err).Debug("exec session ended before its input was attached")
			return
		}
		if errors.As(err, &apiErr) && !apiErr.Temporary() {
			// The agent refuses the input (a Mesos agent attaches only to containers under an
			// executor's container, http.cpp attachContainerInput: getExecutor of the root): the
			// session would wait for its stdin for ever. End it.
			inputRefused <- err
			kctx, kcancel := context.WithTimeout(context.Background(), s.callTimeout())
			defer kcancel()
			_ = agentcalls.SendNoData(kctx, s.Bounded, agentcalls.NonStreaming(agentcalls.KillContainer(id)))
			return
		}
		log.WithError(err).Debug("exec input ended with an error")
	}()
	defer helpers.Wait()
	defer cancel() // runs before helpers.Wait: ends the input stream if the client still holds stdin open

	outErr := CopyOutput(resp, req.Stdout, req.Stderr, req.TTY)
	resp.Close()
	select {
	case err := <-inputRefused: // sent before the kill that ended the output
		return 0, fmt.Errorf("the agent refused the input of exec session %s: %w", id.Value, err)
	default:
	}
	if outErr != nil {
		if ctx.Err() != nil {
			outErr = ctx.Err()
		}
		return 0, fmt.Errorf("reading the output of exec session %s: %w", id.Value, outErr)
	}
	var w waitResult
	select {
	case w = <-waited:
	case <-ctx.Done():
		return 0, fmt.Errorf("waiting for exec session %s: %w", id.Value, ctx.Err())
	}
	if w.err != nil {
		return 0, fmt.Errorf("waiting for exec session %s: %w", id.Value, w.err)
	}
	if w.status == nil {
		return 0, fmt.Errorf("exec session %s ended without an exit status", id.Value)
	}
	code, _ := podtranslate.ExitFromWaitStatus(*w.status)
	return code, nil
}

func parentValue(id mesos.ContainerID) string {
	if id.Parent != nil {
		return id.Parent.Value
	}
	return id.Value
}

func (s Sessions) log() logrus.FieldLogger {
	if s.Log != nil {
		return s.Log
	}
	return logrus.StandardLogger()
}

func (s Sessions) callTimeout() time.Duration {
	if s.CallTimeout > 0 {
		return s.CallTimeout
	}
	return 30 * time.Second
}

// CopyOutput writes a session's or an output attach's ProcessIO records to stdout and stderr (stderr
// to stdout with a TTY; a nil writer drops its stream) until the stream ends.
func CopyOutput(resp mesos.Response, stdout, stderr io.Writer, tty bool) error {
	for {
		var p agent.ProcessIO
		err := resp.Decode(&p)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		d := p.GetData()
		if p.GetType() != agent.ProcessIO_DATA || d == nil {
			continue // heartbeats
		}
		var w io.Writer
		switch d.GetType() {
		case agent.ProcessIO_Data_STDOUT:
			w = stdout
		case agent.ProcessIO_Data_STDERR:
			w = stderr
			if tty {
				w = stdout
			}
		}
		if w == nil || len(d.Data) == 0 {
			continue
		}
		if _, err := w.Write(d.Data); err != nil {
			return fmt.Errorf("writing to the client: %w", err)
		}
	}
}

// SendInput streams ATTACH_CONTAINER_INPUT: the container's ID, stdin as DATA records, terminal sizes
// as TTY_INFO controls, and atEOF (unless nil) at the end of stdin (at once when there is no stdin).
func (s Sessions) SendInput(ctx context.Context, id mesos.ContainerID, stdin io.Reader, resize <-chan TerminalSize, atEOF *agent.Call) error {
	calls := make(chan *agent.Call)
	data := make(chan []byte)
	if stdin != nil {
		// This goroutine may outlive the caller while the client's stdin blocks; it ends when the
		// stream closes (the streaming server closes the connection after the exec returns).
		go func() {
			defer close(data)
			buf := make([]byte, 32<<10)
			for {
				n, err := stdin.Read(buf)
				if n > 0 {
					select {
					case data <- append([]byte(nil), buf[:n]...):
					case <-ctx.Done():
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	} else {
		close(data)
	}
	go func() {
		defer close(calls)
		push := func(c *agent.Call) bool {
			select {
			case calls <- c:
				return true
			case <-ctx.Done():
				return false
			}
		}
		if !push(agentcalls.AttachContainerInput(id)) {
			return
		}
		for {
			select {
			case b, ok := <-data:
				if !ok {
					if atEOF != nil {
						push(atEOF)
					}
					return
				}
				if !push(agentcalls.AttachContainerInputData(b)) {
					return
				}
			case size, ok := <-resize:
				if !ok {
					resize = nil
					continue
				}
				tty := &mesos.TTYInfo{WindowSize: &mesos.TTYInfo_WindowSize{Rows: uint32(size.Height), Columns: uint32(size.Width)}}
				if !push(agentcalls.AttachContainerInputTTY(tty)) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	resp, err := s.Streamer.Send(ctx, agentcalls.FromChan(calls))
	if resp != nil {
		resp.Close()
	}
	// Whatever made Send return, let the producer goroutine finish.
	for range calls {
	}
	return err
}

func (s Sessions) wait(ctx context.Context, id mesos.ContainerID) (*int32, error) {
	w, err := WaitContainer(ctx, s.Streamer, id)
	if err != nil {
		return nil, err
	}
	return w.ExitStatus, nil
}

// Cleanup kills the session if it still runs (the client went away, a probe timed out) and removes
// its sandbox.
func (s Sessions) Cleanup(id mesos.ContainerID, log logrus.FieldLogger) {
	ctx, cancel := context.WithTimeout(context.Background(), s.callTimeout())
	defer cancel()
	if err := agentcalls.SendNoData(ctx, s.Bounded, agentcalls.NonStreaming(agentcalls.KillContainer(id))); err != nil && !apierrors.CodeNotFound.Matches(err) {
		log.WithError(err).Debug("killing the exec session")
	}
	// REMOVE fails while the container is still being destroyed: retry briefly.
	for range 20 {
		err := agentcalls.SendNoData(ctx, s.Bounded, agentcalls.NonStreaming(agentcalls.RemoveContainer(id)))
		if err == nil || apierrors.CodeNotFound.Matches(err) {
			return
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			log.WithError(err).Info("removing the exec session container failed")
			return
		}
	}
}
