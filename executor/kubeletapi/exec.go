package kubeletapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"
)

// TerminalSize is a terminal's size (from the client's resize stream).
type TerminalSize = remotecommand.TerminalSize

// ExecRequest is one command to run in a container's attempt.
type ExecRequest struct {
	// PodUID is the target's pod; ContainerID the attempt's nested container ID value (Attempt.ID).
	PodUID      types.UID
	ContainerID string
	Command     []string
	// Stdin is nil when the client sends no input; the command then reads end-of-file.
	Stdin io.Reader
	// Stdout and Stderr are nil when the client does not want them (with a TTY, stderr goes to Stdout).
	Stdout, Stderr io.Writer
	TTY            bool
	// Resize delivers terminal sizes while TTY is set; nil otherwise.
	Resize <-chan TerminalSize
}

// Execer runs a command in a running container and returns its exit code once it ended and its output
// was written. An error means the command could not be run (or its streams broke), not that it failed.
type Execer interface {
	Exec(ctx context.Context, req ExecRequest) (exitCode int, err error)
}

// execAdapter implements remotecommand.Executor.
type execAdapter struct {
	execer Execer
	log    logrus.FieldLogger
}

var _ remotecommand.Executor = execAdapter{}

func (e execAdapter) ExecInContainer(ctx context.Context, _ string, uid string, containerID string, cmd []string,
	in io.Reader, out, stderr io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	req := ExecRequest{PodUID: types.UID(uid), ContainerID: containerID, Command: cmd, TTY: tty, Resize: resize}
	// The streaming code hands typed nil interfaces for streams the client did not ask for.
	if in != nil {
		req.Stdin = in
	}
	if out != nil {
		req.Stdout = out
	}
	if stderr != nil {
		req.Stderr = stderr
	}
	code, err := e.execer.Exec(ctx, req)
	if err != nil {
		return err
	}
	e.log.WithFields(logrus.Fields{"containerID": containerID, "exitCode": code}).Info("exec ended")
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
	}
	return nil
}

// serveExec is /exec/{namespace}/{pod}[/{uid}]/{container}?command=...&input=1&output=1&error=1&tty=1.
func (s *Server) serveExec(w http.ResponseWriter, r *http.Request) {
	ns, pod, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	uid := types.UID(r.PathValue("uid"))
	log := s.log.WithFields(logrus.Fields{"pod": ns + "/" + pod, "container": container})
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := r.URL.Query()["command"]
	if len(cmd) == 0 {
		http.Error(w, "no command given (command=...)", http.StatusBadRequest)
		return
	}
	if s.cfg.Execer == nil {
		http.Error(w, "exec is not available on this node", http.StatusNotImplemented)
		return
	}
	ref, err := s.cfg.Pods.Container(ns, pod, container)
	if err != nil {
		writeLookupError(w, err)
		return
	}
	if uid != "" && uid != ref.PodUID {
		http.Error(w, fmt.Sprintf("pod %s/%s with UID %s: %v", ns, pod, uid, ErrPodNotFound), http.StatusNotFound)
		return
	}
	if ref.Current == nil || !ref.Current.Running {
		http.Error(w, fmt.Sprintf("container %q in pod %q is not running", container, pod), http.StatusBadRequest)
		return
	}
	log.WithFields(logrus.Fields{"command": cmd, "tty": opts.TTY, "stdin": opts.Stdin}).Info("exec")
	if wsstream.IsWebSocketRequestWithStreamCloseProtocol(r) {
		s.serveExecV5(w, r, preparedExec{pod: pod, uid: string(ref.PodUID), containerID: ref.Current.ID, cmd: cmd, log: log}, opts)
		return
	}
	remotecommand.ServeExec(w, r, execAdapter{execer: s.cfg.Execer, log: log}, pod, string(ref.PodUID), ref.Current.ID, cmd, opts,
		s.cfg.StreamIdleTimeout, s.cfg.StreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}
