package agent

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	"golang.org/x/sys/unix"
)

// Mesos' I/O switchboard (src/slave/containerizer/mesos/io/switchboard.cpp) is what ATTACH_CONTAINER_*
// talk to, and a container has one only when IOSwitchboard::requiresServer says so: it was launched
// with ContainerInfo.tty_info, or it is a DEBUG container (a LAUNCH_NESTED_CONTAINER_SESSION). Any
// other container's output goes to its sandbox's files only, and attaching to it fails in
// IOSwitchboard::_connect with "I/O switchboard server was disabled for this container" (a failed
// future: 500). With a TTY the switchboard gives the container a pseudo-terminal (posix_openpt; its
// stdin, stdout and stderr are the slave side), streams the master's output as STDOUT (stderr is the
// same terminal), writes input to the master, sets window sizes on it (TTY_INFO), and ignores an empty
// DATA record, which closes stdin only without a TTY ("If tty is enabled, the client is expected to
// send EOT instead"). Only one input connection at a time is allowed (409).

// switchboardDisabled is IOSwitchboard::_connect's failure for a container without a server.
const switchboardDisabled = "I/O switchboard server was disabled for this container"

// hasSwitchboard is IOSwitchboard::requiresServer.
func (c *container) hasSwitchboard() bool {
	return c.tty || c.sessionOut != nil
}

// stdio makes the container's standard streams: a pseudo-terminal for a container with a TTY, else
// pipes (stdin only for a session). child are the process' stdin, stdout and stderr; the agent reads
// outR (and errR unless nil) and writes input to stdinW (nil: no input). closeAll closes everything
// when the start fails.
func (c *container) stdio(session bool) (child [3]*os.File, outR, errR, stdinW *os.File, closeAll func(), err error) {
	var opened []*os.File
	closeAll = func() {
		for _, f := range opened {
			f.Close()
		}
	}
	if c.tty {
		master, slave, err := openPTY()
		if err != nil {
			return child, nil, nil, nil, closeAll, fmt.Errorf("failed to open a pseudo-terminal: %w", err)
		}
		// A second handle on the master for input, so that closing either one leaves the other.
		fd, err := unix.Dup(int(master.Fd()))
		if err != nil {
			master.Close()
			slave.Close()
			return child, nil, nil, nil, closeAll, fmt.Errorf("failed to duplicate the terminal: %w", err)
		}
		unix.CloseOnExec(fd)
		in := os.NewFile(uintptr(fd), master.Name())
		opened = append(opened, master, slave, in)
		return [3]*os.File{slave, slave, slave}, master, nil, in, closeAll, nil
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return child, nil, nil, nil, closeAll, err
	}
	opened = append(opened, outR, outW)
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll()
		return child, nil, nil, nil, closeAll, err
	}
	opened = append(opened, errR, errW)
	var stdinR *os.File
	if session {
		if stdinR, stdinW, err = os.Pipe(); err != nil {
			closeAll()
			return child, nil, nil, nil, closeAll, err
		}
		opened = append(opened, stdinR, stdinW)
	}
	return [3]*os.File{stdinR, outW, errW}, outR, errR, stdinW, closeAll, nil
}

// openPTY opens a pseudo-terminal pair as posix_openpt, grantpt, unlockpt and ptsname do.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*os.File, *os.File, error) {
		master.Close()
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return fail(fmt.Errorf("unlockpt: %w", err))
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		return fail(fmt.Errorf("ptsname: %w", err))
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	slave, err = os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	return master, slave, nil
}

// attachableLocked returns a live container of an executor of this agent that has a switchboard,
// with Mesos' codes: Http::attachContainer* answer 404 when no executor has the container's root,
// and the containerizer's failures (MesosContainerizerProcess::attach, IOSwitchboard::_connect) are
// 500s with their texts.
func (a *Agent) attachableLocked(id mesos.ContainerID) (*container, int, string) {
	key := containerKey(&id)
	root := a.containers[strings.SplitN(key, "/", 2)[0]]
	if root == nil || root.executor == nil {
		return nil, http.StatusNotFound, "Container " + idString(key) + " cannot be found"
	}
	c := a.containers[key]
	if c == nil || !c.live() {
		return nil, http.StatusInternalServerError, "Unknown container " + idString(key)
	}
	if c.executor != nil || !c.hasSwitchboard() {
		// An executor's own container is DEFAULT class; a TTY is not among what the simulator's
		// executors are launched with.
		return nil, http.StatusInternalServerError, switchboardDisabled
	}
	return c, 0, ""
}

func (a *Agent) handleAttachInput(w http.ResponseWriter, mt mediaTypes, id *mesos.ContainerID, reader *recordReader) {
	a.mu.Lock()
	c, code, msg := a.attachableLocked(*id)
	var stdin *os.File
	switch {
	case c == nil:
	case c.inputConnected:
		code, msg = http.StatusConflict, "Multiple input connections are not allowed"
	default:
		stdin = c.stdin
		c.inputConnected = true
	}
	a.mu.Unlock()
	if code != 0 {
		respondError(w, code, msg)
		return
	}
	defer func() {
		a.mu.Lock()
		c.inputConnected = false
		a.mu.Unlock()
	}()
	for {
		rec, err := reader.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			respondError(w, http.StatusBadRequest, "Failed to read input record: "+err.Error())
			return
		}
		call, _, msg := parseAgentCall(mt.messageContent, rec)
		if msg != "" {
			respondError(w, http.StatusBadRequest, "Failed to parse input record: "+msg)
			return
		}
		in := call.AttachContainerInput
		if call.Type != agentapi.Call_ATTACH_CONTAINER_INPUT || in == nil || in.Type != agentapi.Call_AttachContainerInput_PROCESS_IO || in.ProcessIO == nil {
			respondError(w, http.StatusBadRequest, "Expecting PROCESS_IO records after the CONTAINER_ID record")
			return
		}
		p := in.ProcessIO
		if p.Type == agentapi.ProcessIO_CONTROL {
			tty := p.GetControl().GetTTYInfo()
			if p.GetControl().GetType() != agentapi.ProcessIO_Control_TTY_INFO || tty == nil {
				continue // heartbeats
			}
			if tty.WindowSize == nil {
				respondError(w, http.StatusBadRequest, "Expecting 'tty_info.window_size' to be present")
				return
			}
			if err := setWindowSize(stdin, tty.WindowSize); err != nil {
				respondError(w, http.StatusBadRequest, "Unable to set the window size: "+err.Error())
				return
			}
			continue
		}
		d := p.Data
		if p.Type != agentapi.ProcessIO_DATA || d == nil || d.Type != agentapi.ProcessIO_Data_STDIN {
			continue
		}
		if len(d.Data) == 0 {
			if c.tty {
				continue // the client sends EOT (^D) to a terminal instead
			}
			a.mu.Lock()
			if c.stdin != nil {
				c.stdin.Close()
				c.stdin = nil
			}
			a.mu.Unlock()
			stdin = nil
			continue
		}
		if stdin == nil {
			respondError(w, http.StatusInternalServerError, "Failed writing to stdin: the container's stdin is closed")
			return
		}
		if _, err := stdin.Write(d.Data); err != nil {
			respondError(w, http.StatusInternalServerError, "Failed writing to stdin: "+err.Error())
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

// setWindowSize is stout's os::setWindowSize on the switchboard's stdin descriptor (a terminal's
// master, or a pipe, which refuses it).
func setWindowSize(f *os.File, size *mesos.TTYInfo_WindowSize) error {
	if f == nil {
		return errors.New("the container's stdin is closed")
	}
	ws := &unix.Winsize{Row: uint16(size.Rows), Col: uint16(size.Columns)}
	err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, ws)
	if err == nil {
		return nil
	}
	// ErrnoError(): strerror's text.
	text := err.Error()
	return errors.New(strings.ToUpper(text[:1]) + text[1:])
}
