package kubeletapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemesos/kubemesos/executor/nested"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// MesosExecerConfig configures a MesosExecer.
type MesosExecerConfig struct {
	// AgentURL is the agent's operator API, http://<MESOS_AGENT_ENDPOINT>/api/v1.
	AgentURL string
	// CallTimeout bounds the calls that answer at once (KILL_CONTAINER, REMOVE_CONTAINER) and the
	// response headers of the session launch (default 30 s).
	CallTimeout time.Duration
	// Log is the logger (logrus.StandardLogger() when nil).
	Log logrus.FieldLogger
	// PodParent is the container a pod's containers are nested under (package nested's
	// Runtime.PodParent: its sandbox executor's container, or the kubelet executor's); required.
	PodParent func(types.UID) (mesos.ContainerID, bool)
}

// MesosExecer runs exec commands as Mesos nested container sessions: LAUNCH_NESTED_CONTAINER_SESSION
// with the target container as parent (a DEBUG container: on a real agent it shares the target's
// namespaces and filesystem), stdin through ATTACH_CONTAINER_INPUT, stdout and stderr from the
// session's ProcessIO records, and the exit code from WAIT_CONTAINER; the session container is
// removed afterwards. The target is a child of its pod's parent container (package nested), so the
// session is nested at the second level.
type MesosExecer struct {
	cfg      MesosExecerConfig
	bounded  agentcalls.Sender // calls that answer at once
	streamer agentcalls.Sender // session, input and wait: answer when the command ends
	log      logrus.FieldLogger
}

var _ Execer = (*MesosExecer)(nil)

// NewMesosExecer returns a MesosExecer talking to the agent at cfg.AgentURL.
func NewMesosExecer(cfg MesosExecerConfig) *MesosExecer {
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	mk := func(responseTimeout time.Duration) agentcalls.Sender {
		cli := httpcli.New(
			httpcli.Endpoint(cfg.AgentURL),
			httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]),
			httpcli.Do(httpcli.With(httpcli.Transport(func(t *http.Transport) {
				t.ResponseHeaderTimeout = responseTimeout
			}))),
		)
		return httpagent.NewSender(cli.Send)
	}
	return &MesosExecer{cfg: cfg, bounded: mk(cfg.CallTimeout), streamer: mk(0), log: log}
}

// sessionID returns a fresh session container ID under the target container of pod uid (a child of
// the pod's parent container, see package nested).
func (m *MesosExecer) sessionID(uid types.UID, target string) (mesos.ContainerID, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return mesos.ContainerID{}, fmt.Errorf("generating a session container ID: %w", err)
	}
	parent, ok := m.cfg.PodParent(uid)
	if !ok {
		return mesos.ContainerID{}, fmt.Errorf("pod %s has no running sandbox", uid)
	}
	return mesos.ContainerID{Value: "exec-" + hex.EncodeToString(b[:]), Parent: &mesos.ContainerID{Value: target, Parent: &parent}}, nil
}

// Exec implements Execer.
func (m *MesosExecer) Exec(ctx context.Context, req ExecRequest) (int, error) {
	if len(req.Command) == 0 {
		return 0, errors.New("exec: empty command")
	}
	id, err := m.sessionID(req.PodUID, req.ContainerID)
	if err != nil {
		return 0, err
	}
	log := m.log.WithFields(logrus.Fields{"containerID": req.ContainerID, "session": id.Value})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	shell := false
	cmd := &mesos.CommandInfo{Shell: &shell, Value: &req.Command[0], Arguments: req.Command}
	ci := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum()}
	if req.TTY {
		ci.TTYInfo = &mesos.TTYInfo{}
	}
	defer m.cleanup(id, log) // also after a failed launch: the container may exist all the same
	resp, err := m.streamer.Send(ctx, agentcalls.NonStreaming(agentcalls.LaunchNestedContainerSession(id, cmd, ci)))
	if err != nil {
		if resp != nil {
			resp.Close()
		}
		var pe httpcli.ProtocolError
		if errors.As(err, &pe) {
			// The agent launched the session but answered without an output stream (mesos-sim does
			// when the command ended before its output could be attached): its exit status remains.
			if st, werr := m.wait(ctx, id); werr == nil && st != nil {
				log.WithError(err).Warn("exec session answered without an output stream; its output is lost")
				code, _ := podtranslate.ExitFromWaitStatus(*st)
				return int(code), nil
			}
		}
		return 0, fmt.Errorf("launching an exec session in container %s: %w", req.ContainerID, err)
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
		st, err := m.wait(ctx, id)
		waited <- waitResult{st, err}
	}()
	inputRefused := make(chan error, 1)
	go func() {
		defer helpers.Done()
		err := m.sendInput(ctx, id, req.Stdin, req.Resize, agentcalls.AttachContainerInputData([]byte{}))
		if err == nil || ctx.Err() != nil {
			return
		}
		var apiErr *apierrors.Error
		if errors.As(err, &apiErr) && !apiErr.Temporary() {
			// The agent refuses the input (a Mesos agent attaches only to containers under an
			// executor's container, http.cpp attachContainerInput: getExecutor of the root): the
			// session would wait for its stdin for ever. End it.
			inputRefused <- err
			kctx, kcancel := context.WithTimeout(context.Background(), m.cfg.CallTimeout)
			defer kcancel()
			_ = agentcalls.SendNoData(kctx, m.bounded, agentcalls.NonStreaming(agentcalls.KillContainer(id)))
			return
		}
		log.WithError(err).Debug("exec input ended with an error")
	}()
	defer helpers.Wait()
	defer cancel() // runs before helpers.Wait: ends the input stream if the client still holds stdin open

	outErr := copyOutput(resp, req)
	resp.Close()
	select {
	case err := <-inputRefused: // sent before the kill that ended the output
		return 0, fmt.Errorf("the agent refused the input of exec session %s: %w", id.Value, err)
	default:
	}
	if outErr != nil {
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
	return int(code), nil
}

// copyOutput writes the session's ProcessIO records to the request's writers until the stream ends.
func copyOutput(resp mesos.Response, req ExecRequest) error {
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
			w = req.Stdout
		case agent.ProcessIO_Data_STDERR:
			w = req.Stderr
			if req.TTY {
				w = req.Stdout
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

// sendInput streams ATTACH_CONTAINER_INPUT: the container's ID, stdin as DATA records, terminal sizes
// as TTY_INFO controls, and atEOF (unless nil) at the end of stdin (at once when there is no stdin).
func (m *MesosExecer) sendInput(ctx context.Context, id mesos.ContainerID, stdin io.Reader, resize <-chan TerminalSize, atEOF *agent.Call) error {
	calls := make(chan *agent.Call)
	data := make(chan []byte)
	if stdin != nil {
		// This goroutine may outlive Exec while the client's stdin blocks; it ends when the stream
		// closes (the streaming server closes the connection after Exec returns).
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
	resp, err := m.streamer.Send(ctx, agentcalls.FromChan(calls))
	if resp != nil {
		resp.Close()
	}
	// Whatever made Send return, let the producer goroutine finish.
	for range calls {
	}
	return err
}

func (m *MesosExecer) wait(ctx context.Context, id mesos.ContainerID) (*int32, error) {
	w, err := nested.WaitContainer(ctx, m.streamer, id)
	if err != nil {
		return nil, err
	}
	return w.ExitStatus, nil
}

// cleanup kills the session if it still runs (the client went away) and removes its sandbox.
func (m *MesosExecer) cleanup(id mesos.ContainerID, log logrus.FieldLogger) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.CallTimeout)
	defer cancel()
	if err := agentcalls.SendNoData(ctx, m.bounded, agentcalls.NonStreaming(agentcalls.KillContainer(id))); err != nil && !apierrors.CodeNotFound.Matches(err) {
		log.WithError(err).Debug("killing the exec session")
	}
	// REMOVE fails while the container is still being destroyed: retry briefly.
	for range 20 {
		err := agentcalls.SendNoData(ctx, m.bounded, agentcalls.NonStreaming(agentcalls.RemoveContainer(id)))
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

var _ Attacher = (*MesosExecer)(nil)

// eot is what ends a terminal's input (^D): Mesos ignores an empty DATA record for a container with
// a TTY ("If tty is enabled, the client is expected to send EOT instead", switchboard.cpp).
var eot = []byte{4}

// Attach implements Attacher with the agent's ATTACH_CONTAINER_OUTPUT (from the moment of attaching)
// and ATTACH_CONTAINER_INPUT on the attempt's nested container, which has an I/O switchboard (it was
// launched with a TTYInfo). Output is attached before any input is sent, so that the answer to the
// input is not missed. The client's end of input ends the container's only with stdinOnce (as a
// runtime closes a stdinOnce container's stdin after the first attach); otherwise the container
// keeps its stdin for the next attach.
func (m *MesosExecer) Attach(ctx context.Context, req AttachRequest) error {
	parent, ok := m.cfg.PodParent(req.PodUID)
	if !ok {
		return fmt.Errorf("pod %s has no running sandbox", req.PodUID)
	}
	id := mesos.ContainerID{Value: req.ContainerID, Parent: &parent}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out mesos.Response
	if req.Stdout != nil || req.Stderr != nil {
		resp, err := m.streamer.Send(ctx, agentcalls.NonStreaming(agentcalls.AttachContainerOutput(id)))
		if err != nil {
			if resp != nil {
				resp.Close()
			}
			return fmt.Errorf("attaching to the output of container %s: %w", req.ContainerID, err)
		}
		out = resp
		defer out.Close()
	}
	inputEnded := make(chan error, 1)
	if req.Stdin != nil {
		var atEOF *agent.Call
		if req.StdinOnce {
			atEOF = agentcalls.AttachContainerInputData(eot)
		}
		go func() {
			err := m.sendInput(ctx, id, req.Stdin, req.Resize, atEOF)
			if err != nil && ctx.Err() == nil {
				// E.g. 409: another client's input is attached; the output goes on.
				m.log.WithError(err).WithField("containerID", req.ContainerID).Info("attach: the agent ended the input")
			}
			inputEnded <- err
		}()
	}
	if out == nil {
		select {
		case err := <-inputEnded:
			return err
		case <-ctx.Done():
			return nil
		}
	}
	err := copyOutput(out, ExecRequest{Stdout: req.Stdout, Stderr: req.Stderr, TTY: req.TTY})
	if ctx.Err() != nil {
		return nil // the client went away
	}
	if err != nil {
		return fmt.Errorf("reading the output of container %s: %w", req.ContainerID, err)
	}
	return nil
}
