package kubeletapi

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// AttachRequest is one attach to a running container's attempt that has Mesos' I/O switchboard
// (launched with a TTYInfo: its spec has stdin or tty, see package nested).
type AttachRequest struct {
	// PodUID is the target's pod; ContainerID the attempt's nested container ID value (Attempt.ID).
	PodUID      types.UID
	ContainerID string
	// Stdin is nil when the client sends no input (or the container takes none).
	Stdin io.Reader
	// StdinOnce: the container's stdin ends with the client's (the spec's stdinOnce).
	StdinOnce bool
	// Stdout and Stderr are nil when the client does not want them (with a TTY, stderr goes to Stdout).
	Stdout, Stderr io.Writer
	TTY            bool
	// Resize delivers terminal sizes while TTY is set; nil otherwise.
	Resize <-chan TerminalSize
}

// Attacher attaches to a running container: it copies the container's output (from the moment of
// attaching) to the request's writers and the client's input to the container until the container
// ends or ctx does.
type Attacher interface {
	Attach(ctx context.Context, req AttachRequest) error
}

// serveAttach is /attach/{namespace}/{pod}[/{uid}]/{container}?input=1&output=1&error=1&tty=1, the
// kubelet's attach: `kubectl attach`, `kubectl run -i`. As the kubelet's GetAttach, whether the
// stream is a terminal is the container's `tty`, not the request's ("The TTY setting for attach must
// match the TTY setting in the initial container configuration, since whether the process is running
// in a TTY cannot be changed after it has started"). A container with stdin or tty is attached
// through Mesos (ATTACH_CONTAINER_OUTPUT and ATTACH_CONTAINER_INPUT on its nested container); any
// other has no I/O switchboard on Mesos (IOSwitchboard::requiresServer), so its output is followed
// in its log from the moment of attaching, which is what a runtime's attach streams, and it takes no
// input (it has no stdin).
func (s *Server) serveAttach(w http.ResponseWriter, r *http.Request) {
	ns, pod, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	uid := types.UID(r.PathValue("uid"))
	log := s.log.WithFields(logrus.Fields{"pod": ns + "/" + pod, "container": container})
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
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
	if (ref.Stdin || ref.TTY) && s.cfg.Attacher == nil {
		http.Error(w, "attach is not available on this node", http.StatusNotImplemented)
		return
	}
	opts.TTY = ref.TTY
	if opts.TTY {
		opts.Stderr = false // the terminal carries both
	}
	log.WithFields(logrus.Fields{"tty": opts.TTY, "stdin": opts.Stdin}).Info("attach")
	p := preparedExec{pod: pod, uid: string(ref.PodUID), containerID: ref.Current.ID, log: log,
		attach: &attachAdapter{s: s, ns: ns, pod: pod, container: container, ref: ref, log: log}}
	if wsstream.IsWebSocketRequestWithStreamCloseProtocol(r) {
		s.serveExecV5(w, r, p, opts)
		return
	}
	remotecommand.ServeAttach(w, r, attachAdapter{s: s, ns: ns, pod: pod, container: container, ref: ref, log: log}, pod, p.uid, p.containerID, opts,
		s.cfg.StreamIdleTimeout, s.cfg.StreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

// attachAdapter implements remotecommand.Attacher for one container.
type attachAdapter struct {
	s                  *Server
	ns, pod, container string
	ref                ContainerRef
	log                logrus.FieldLogger
}

var _ remotecommand.Attacher = attachAdapter{}

func (a attachAdapter) AttachContainer(ctx context.Context, _ string, _ string, containerID string, in io.Reader, out, stderr io.WriteCloser,
	tty bool, resize <-chan remotecommand.TerminalSize) error {
	req := AttachRequest{PodUID: a.ref.PodUID, ContainerID: containerID, StdinOnce: a.ref.StdinOnce, TTY: tty, Resize: resize}
	// The streaming code hands typed nil interfaces for streams the client did not ask for.
	if in != nil && a.ref.Stdin {
		req.Stdin = in
	}
	if out != nil {
		req.Stdout = out
	}
	if stderr != nil {
		req.Stderr = stderr
	}
	var err error
	if a.ref.Stdin || a.ref.TTY {
		err = a.s.cfg.Attacher.Attach(ctx, req)
	} else {
		err = a.s.attachLog(ctx, a.ns, a.pod, a.container, a.ref, req)
	}
	a.log.WithError(err).Info("attach ended")
	return err
}

// attachPollInterval is how often attachLog looks for new lines of the log.
const attachPollInterval = 100 * time.Millisecond

// attachLog copies what the attempt writes from now on (its log from its current end), stdout and
// stderr apart, until the attempt no longer runs and its log is read to the end. It polls: a
// follower's inotify instance could be refused (128 per user by default), and the lines arrive at
// most one poll of the executor's log follower late anyway.
func (s *Server) attachLog(ctx context.Context, ns, pod, container string, ref ContainerRef, req AttachRequest) error {
	f, err := os.Open(ref.Current.LogPath)
	if err != nil {
		return fmt.Errorf("the log of container %q: %w", container, err)
	}
	defer f.Close()
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return err
	}
	id := ref.Current.ID
	r := bufio.NewReader(f)
	var pending []byte // a line read without its newline yet
	t := s.clock.NewTicker(attachPollInterval)
	defer t.Stop()
	for {
		// Whether it still ran before this read: then a read to the end gets all it wrote.
		running := s.stillRunning(ns, pod, container, id)
		for {
			line, err := r.ReadBytes('\n')
			pending = append(pending, line...)
			if err != nil {
				break
			}
			if werr := writeCRILine(pending, req.Stdout, req.Stderr); werr != nil {
				return nil // the client went away
			}
			pending = pending[:0]
		}
		if !running {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// writeCRILine writes the content of one CRI log entry ("<time> <stream> <F|P> <content>\n") to its
// stream's writer (nil: not wanted); a partial (P) entry's content goes without a newline.
func writeCRILine(entry []byte, stdout, stderr io.Writer) error {
	parts := bytes.SplitN(bytes.TrimSuffix(entry, []byte("\n")), []byte(" "), 4)
	if len(parts) < 3 {
		return nil
	}
	var w io.Writer
	switch string(parts[1]) {
	case "stdout":
		w = stdout
	case "stderr":
		w = stderr
	}
	if w == nil {
		return nil
	}
	var content []byte
	if len(parts) == 4 {
		content = parts[3]
	}
	if string(parts[2]) != "P" {
		content = append(content, '\n')
	}
	_, err := w.Write(content)
	return err
}
