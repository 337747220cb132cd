package kubeletapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemesos/kubemesos/executor/agentclient"
	"github.com/kubemesos/kubemesos/executor/nested"
)

// MesosExecerConfig configures a MesosExecer.
type MesosExecerConfig struct {
	// AgentURL is the agent's operator API, http(s)://<MESOS_AGENT_ENDPOINT>/api/v1 (agentclient.Options.URL).
	AgentURL string
	// Agent is the token and TLS configuration of the calls (package agentclient).
	Agent agentclient.Options
	// CallTimeout bounds the calls that answer at once (KILL_CONTAINER, REMOVE_CONTAINER) and the
	// response headers of the session launch (default 30 s).
	CallTimeout time.Duration
	// Log is the logger (logrus.StandardLogger() when nil).
	Log logrus.FieldLogger
	// PodParent is the container a pod's containers are nested under (package nested's
	// Runtime.PodParent: its sandbox executor's container, or the kubelet executor's); required.
	PodParent func(types.UID) (mesos.ContainerID, bool)
	// ExecIn, when set, gives a session's command and ContainerInfo in a container (package nested's
	// Runtime.ExecIn: its workingDir and capabilities, as the kubelet's exec has them); else the
	// command runs as given with the agent's default capabilities.
	ExecIn func(containerID string, command []string) ([]string, *mesos.ContainerInfo)
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
	sessions nested.Sessions // runs the exec sessions (shared with the runtime's exec probes and hooks)
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
		cli := cfg.Agent.Client(cfg.AgentURL, httpcli.Transport(func(t *http.Transport) {
			t.ResponseHeaderTimeout = responseTimeout
		}))
		return httpagent.NewSender(cli.Send)
	}
	m := &MesosExecer{cfg: cfg, bounded: mk(cfg.CallTimeout), streamer: mk(0), log: log}
	m.sessions = nested.Sessions{Bounded: m.bounded, Streamer: m.streamer, CallTimeout: cfg.CallTimeout, Log: log}
	return m
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
	cmd, ci := req.Command, &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum()}
	if m.cfg.ExecIn != nil {
		cmd, ci = m.cfg.ExecIn(req.ContainerID, req.Command)
	}
	if req.TTY {
		ci.TTYInfo = &mesos.TTYInfo{}
	}
	code, err := m.sessions.Run(ctx, nested.SessionRequest{ID: id, Command: cmd, Container: ci,
		Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, TTY: req.TTY, Resize: req.Resize})
	return int(code), err
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
			err := m.sessions.SendInput(ctx, id, req.Stdin, req.Resize, atEOF)
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
	err := nested.CopyOutput(out, req.Stdout, req.Stderr, req.TTY)
	if ctx.Err() != nil {
		return nil // the client went away
	}
	if err != nil {
		return fmt.Errorf("reading the output of container %s: %w", req.ContainerID, err)
	}
	return nil
}
