package agent

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// container is an executor's container (the root of a tree), a nested container (a local process in
// its own process group) or a standalone container.
type container struct {
	id       mesos.ContainerID
	key      string       // the chain of IDs from the root, joined by "/"
	dir      string       // sandbox
	executor *executorRun // set for an executor's own container
	image    string       // the image name, if any (provisioned from the docker registry or run by the fallback)
	pid      int
	out      *outputHub
	stdin    *os.File // write end of stdin for sessions, the terminal's master with a TTY; nil otherwise
	// tty: launched with ContainerInfo.tty_info, the container runs on a pseudo-terminal (attach.go).
	tty bool
	// inputConnected: an ATTACH_CONTAINER_INPUT connection is open (one at a time).
	inputConnected bool
	// sessionOut is a session's output, subscribed before its process starts so that nothing it
	// writes, even if it exits at once, is lost; nil for other containers.
	sessionOut *queue[agentapi.ProcessIO]

	// env is the environment the agent gave the container, which a session under it inherits in
	// process mode (nil for an executor's container).
	env map[string]string
	// cz is the containerizer's view of the container when the agent isolates (nil in process mode).
	cz *containerizer.Container
	// resources and limits are a nested container's LAUNCH_CONTAINER resources and limits.
	resources []mesos.Resource
	limits    map[string]mesos.Value_Scalar

	// owner is the agent the container belongs to: a nested container outlives an agent restart in
	// process mode and passes to the next agent (recover.go). Changed under both agents' locks.
	owner atomic.Pointer[Agent]
	// release ends the container's hold on its owner's wait groups (nil once released).
	release func()

	exited bool
	status int32
	// limitation is the isolator's limitation that ended an isolated container (an OOM kill), written
	// before done is closed.
	limitation *containerizer.Limitation
	done       chan struct{} // closed when the container has terminated
}

func (c *container) live() bool {
	if c.executor != nil {
		return c.executor.state < executorTerminated
	}
	return !c.exited
}

// killLocked signals the container's process group (an executor container: kills the executor).
func (c *container) killLocked(sig syscall.Signal) {
	if c.executor != nil {
		c.executor.killProcessLocked()
		return
	}
	if c.exited {
		return
	}
	if c.cz != nil && sig != syscall.SIGKILL {
		// Mesos signals the container's pid only. Here that is the launch helper, whose stages relay the
		// signal to the command: signalling the process group too would deliver it once more per stage.
		_ = syscall.Kill(c.pid, sig)
		return
	}
	killGroup(c.pid, sig)
}

const sigkill = syscall.SIGKILL

// idString is a container key as Mesos prints a ContainerID in its texts: the chain joined by '.'.
func idString(key string) string { return strings.ReplaceAll(key, "/", ".") }

func containerKey(id *mesos.ContainerID) string {
	var parts []string
	for p := id; p != nil; p = p.Parent {
		parts = append([]string{p.Value}, parts...)
	}
	return strings.Join(parts, "/")
}

// validateContainerID is validation::container::validateContainerId (src/slave/validation.cpp) with
// common::validation::validateID, and their texts. '.' is refused because Mesos' string form of a
// ContainerID joins the chain with periods.
func validateContainerID(id *mesos.ContainerID) string {
	v := id.Value
	switch {
	case v == "":
		return "ID must not be empty"
	case len(v) > 255: // NAME_MAX
		return "ID must not be greater than 255 characters"
	case v == "." || v == "..":
		return "'" + v + "' is disallowed"
	case strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '/' || r == '\\' }) >= 0:
		return "'" + v + "' contains invalid characters"
	case len(v) > 242: // MAX_CONTAINER_ID_LENGTH
		return "'ContainerID.value' '" + v + "' exceeds the maximum length (242)"
	case strings.ContainsAny(v, ". "):
		return "'ContainerID.value' '" + v + "' contains invalid characters"
	}
	if id.Parent != nil {
		if msg := validateContainerID(id.Parent); msg != "" {
			return "'ContainerID.parent' is invalid: " + msg
		}
	}
	return ""
}

// imageCommand returns the command configured for the image of a container, if any.
func (a *Agent) imageCommand(ci *mesos.ContainerInfo) (string, bool) {
	name := imageName(ci)
	if name == "" {
		return "", false
	}
	for _, key := range imageKeys(name) {
		if cmd, ok := a.cfg.ImageCommands[key]; ok {
			return cmd, true
		}
	}
	return "", false
}

// imageKeys lists the names an image may be configured under, most specific first, so that
// `nginx=…` also serves `nginx:1.27`, `docker.io/library/nginx@sha256:…`, and `*=…` serves any image.
func imageKeys(name string) []string {
	keys := []string{name}
	repo := name
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	short := strings.TrimPrefix(strings.TrimPrefix(repo, "docker.io/"), "library/")
	for _, k := range []string{repo, short, "*"} {
		if k != keys[len(keys)-1] {
			keys = append(keys, k)
		}
	}
	return keys
}

func imageName(ci *mesos.ContainerInfo) string {
	img := ci.GetMesos().GetImage()
	if img == nil {
		return ""
	}
	if d := img.GetDocker(); d != nil {
		return d.Name
	}
	if ap := img.GetAppc(); ap != nil {
		return ap.Name
	}
	return ""
}

// launchContainerLocked starts a nested or standalone container. It returns Mesos' status codes:
// 200 launched, 202 already running, 400 launch failure.
func (a *Agent) launchContainerLocked(id mesos.ContainerID, cmdInfo *mesos.CommandInfo, ci *mesos.ContainerInfo, session bool) (*container, int, string) {
	return a.launchContainerWithLocked(id, cmdInfo, ci, session, nil, nil)
}

// launchContainerWithLocked is launchContainerLocked with LAUNCH_CONTAINER's resources and limits,
// which the isolators (cgroups/cpu, cgroups/mem) apply to a container with its own cgroups.
func (a *Agent) launchContainerWithLocked(id mesos.ContainerID, cmdInfo *mesos.CommandInfo, ci *mesos.ContainerInfo, session bool,
	res []mesos.Resource, limits map[string]mesos.Value_Scalar) (*container, int, string) {
	key := containerKey(&id)
	if c := a.containers[key]; c != nil {
		if c.live() {
			return c, http.StatusAccepted, ""
		}
		return nil, http.StatusBadRequest, "Container " + key + " has terminated and was not removed"
	}
	var dir string
	if id.Parent != nil {
		root := strings.SplitN(key, "/", 2)[0]
		if a.containers[root] == nil {
			return nil, http.StatusBadRequest, "Root container " + root + " does not exist"
		}
		parent := a.containers[containerKey(id.Parent)]
		if parent == nil {
			return nil, http.StatusBadRequest, "Parent container " + idString(containerKey(id.Parent)) + " does not exist"
		}
		if !parent.live() || (parent.executor != nil && parent.executor.state == executorTerminating) {
			return nil, http.StatusBadRequest, "Parent container " + idString(parent.key) + " is in 'DESTROYING' state"
		}
		dir = filepath.Join(parent.dir, "containers", id.Value)
	} else {
		dir = filepath.Join(a.cfg.WorkDir, "containers", id.Value)
	}
	if ci != nil && ci.GetType() != mesos.ContainerInfo_MESOS {
		return nil, http.StatusBadRequest, "The provided ContainerInfo is not supported"
	}
	var command mesos.CommandInfo
	if cmdInfo != nil {
		command = *cmdInfo
	}
	image := imageName(ci)
	prepared, msg := a.prepareLaunchLocked(ci, command)
	if msg != "" {
		return nil, http.StatusBadRequest, msg
	}
	command = prepared.command
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, http.StatusInternalServerError, "Failed to create sandbox: " + err.Error()
	}
	env := map[string]string{"MESOS_CONTAINER_ID": id.Value}
	workdir := dir
	if session {
		// A DEBUG container inherits its parent's environment, MESOS_SANDBOX included, and working
		// directory (MesosContainerizerProcess::_launch); isolated, the containerizer does that.
		if p := a.containers[containerKey(id.Parent)]; p != nil && a.cz == nil {
			for k, v := range p.env {
				env[k] = v
			}
			env["MESOS_CONTAINER_ID"] = id.Value
			if _, ok := env["MESOS_SANDBOX"]; !ok {
				env["MESOS_SANDBOX"] = p.dir // an executor's, which runs in its sandbox
			}
			workdir = p.dir
		}
	} else {
		env["MESOS_SANDBOX"] = dir
	}
	for k, v := range prepared.env {
		env[k] = v
	}
	for _, v := range command.GetEnvironment().GetVariables() {
		env[v.Name] = v.GetValue()
	}
	c := &container{id: id, key: key, dir: dir, image: image, out: newOutputHub(), done: make(chan struct{}),
		resources: res, limits: limits, tty: ci.GetTTYInfo() != nil, env: env}
	if session {
		c.sessionOut, _ = c.out.subscribe() // a new hub is open
	}
	start := func(stdin, stdout, stderr *os.File) (int, func() int32, error) {
		cmd, err := startProcess(command, workdir, mergeEnv(os.Environ(), env), stdin, stdout, stderr)
		if err != nil {
			return 0, nil, err
		}
		return cmd.Process.Pid, func() int32 { return waitStatus(cmd.Wait()) }, nil
	}
	if a.cz != nil {
		// The launch helper writes Mesos' launcher lines itself.
		if prepared.fallback {
			ci = withImage(ci, a.cfg.ImageCommandImage)
		}
		c.cz = a.containerConfigLocked(c, command, ci, session)
		c.cz.Resources, c.cz.Limits = res, limits
		if err := chownSandbox(dir, c.cz.User); err != nil && !session {
			return nil, http.StatusBadRequest, "Failed to create nested sandbox '" + dir + "': " + err.Error()
		}
		if prepared.image != nil {
			cfg := *prepared.image
			c.cz.Image = &cfg
		}
		start = func(stdin, stdout, stderr *os.File) (int, func() int32, error) {
			// The containerizer's environment: the agent's variables without the agent's own
			// environment (Mesos does not pass it to containers).
			pid, wait, err := a.startIsolated(c.cz, env, stdin, stdout, stderr)
			if err != nil {
				return 0, nil, err
			}
			return pid, func() int32 {
				t := wait()
				c.limitation = t.Limitation
				return t.Status
			}, nil
		}
	} else {
		a.writeLauncherLines(&id, dir, ci, session)
	}
	if err := a.startContainerProcess(c, start, session); err != nil {
		if a.cz != nil {
			return nil, http.StatusBadRequest, err.Error()
		}
		return nil, http.StatusBadRequest, "Failed to launch container: " + err.Error()
	}
	a.containers[key] = c
	a.log.WithFields(logrus.Fields{"containerID": key, "image": image, "pid": c.pid}).Debug("container launched")
	return c, http.StatusOK, ""
}

// startContainerProcess starts the container's process with stdout/stderr going to files in the
// sandbox and to attached clients, and a goroutine that reaps it. When the process exits, whatever is
// left of its process group is killed (Mesos destroys the whole container).
func (a *Agent) startContainerProcess(c *container, start func(stdin, stdout, stderr *os.File) (int, func() int32, error), session bool) error {
	files, err := openOutputFiles(c.dir)
	if err != nil {
		return err
	}
	child, outR, errR, stdinW, closeAll, err := c.stdio(session)
	if err != nil {
		files.close()
		return err
	}
	pid, wait, err := start(child[0], child[1], child[2])
	if err != nil {
		files.close()
		closeAll()
		return err
	}
	// The child has its own copies; the parent keeps only the read ends (and stdin's write end).
	for _, f := range child {
		if f != nil {
			f.Close()
		}
	}
	c.pid = pid
	c.stdin = stdinW

	var copying sync.WaitGroup
	copying.Add(2)
	go func() { defer copying.Done(); copyOutput(outR, files.stdout, c.out, agentapi.ProcessIO_Data_STDOUT) }()
	go func() {
		defer copying.Done()
		if errR != nil { // with a TTY, stderr is the terminal too
			copyOutput(errR, files.stderr, c.out, agentapi.ProcessIO_Data_STDERR)
		}
	}()
	a.wg.Add(1)
	c.owner.Store(a)
	c.release = a.wg.Done
	go func() {
		status := wait()
		killGroup(c.pid, syscall.SIGKILL)
		c.owner.Load().destroyNested(c)
		copying.Wait()
		outR.Close()
		if errR != nil {
			errR.Close()
		}
		files.close()
		c.out.close()
		a := c.lockOwner()
		defer a.mu.Unlock()
		if c.release != nil {
			defer c.release()
			c.release = nil
		}
		c.exited = true
		c.status = status
		if c.stdin != nil {
			c.stdin.Close()
			c.stdin = nil
		}
		close(c.done)
		root := strings.SplitN(c.key, "/", 2)[0]
		switch {
		case c.id.Parent == nil:
			// A standalone container is gone with its tree once destroyed (MesosContainerizer forgets
			// it: WAIT_CONTAINER answers 404 and its ID may be launched again); its sandbox stays, as
			// Mesos does not garbage-collect standalone sandboxes.
			for key := range a.containers {
				if key == c.key || strings.HasPrefix(key, c.key+"/") {
					delete(a.containers, key)
				}
			}
		case a.containers[root] == nil:
			delete(a.containers, c.key) // the whole tree is gone
		}
		a.log.WithFields(logrus.Fields{"containerID": c.key, "status": status}).Debug("container exited")
	}()
	return nil
}

// lockOwner locks and returns the container's current owner.
func (c *container) lockOwner() *Agent {
	for {
		a := c.owner.Load()
		a.mu.Lock()
		if c.owner.Load() == a {
			return a
		}
		a.mu.Unlock()
	}
}

// destroyNested kills the containers nested in c and returns once they have terminated: Mesos
// destroys a container's nested containers before the container itself, so WAIT_CONTAINER of a pod's
// sandbox answers after its containers are gone (an isolating agent's containerizer did that already;
// in process mode they are separate process groups).
func (a *Agent) destroyNested(c *container) {
	a.mu.Lock()
	var nested []*container
	for key, o := range a.containers {
		if strings.HasPrefix(key, c.key+"/") && o.executor == nil && !o.exited {
			o.killLocked(sigkill)
			nested = append(nested, o)
		}
	}
	a.mu.Unlock()
	for _, o := range nested {
		<-o.done
	}
}

// outputHub fans a container's output out to attached clients.
type outputHub struct {
	mu     sync.Mutex
	subs   map[*queue[agentapi.ProcessIO]]struct{}
	closed bool
}

func newOutputHub() *outputHub {
	return &outputHub{subs: map[*queue[agentapi.ProcessIO]]struct{}{}}
}

func (h *outputHub) write(kind agentapi.ProcessIO_Data_Type, b []byte) {
	data := append([]byte(nil), b...)
	h.mu.Lock()
	defer h.mu.Unlock()
	for q := range h.subs {
		q.push(agentapi.ProcessIO{
			Type: agentapi.ProcessIO_DATA,
			Data: &agentapi.ProcessIO_Data{Type: kind, Data: data},
		})
	}
}

// subscribe attaches a client; it fails once the container's output has ended.
func (h *outputHub) subscribe() (*queue[agentapi.ProcessIO], bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	q := newQueue[agentapi.ProcessIO]()
	h.subs[q] = struct{}{}
	return q, true
}

func (h *outputHub) unsubscribe(q *queue[agentapi.ProcessIO]) {
	h.mu.Lock()
	delete(h.subs, q)
	h.mu.Unlock()
}

func (h *outputHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for q := range h.subs {
		q.close()
	}
}

// hubWriter copies one output stream to its file and to the hub.
func copyOutput(r io.Reader, file io.Writer, h *outputHub, kind agentapi.ProcessIO_Data_Type) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			_, _ = file.Write(buf[:n])
			h.write(kind, buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// destroyContainerTreeLocked ends an executor's container: its nested containers are killed and
// forgotten as they exit, and waiters on the executor's container are released.
func (a *Agent) destroyContainerTreeLocked(root string, status int32) {
	for key, c := range a.containers {
		if strings.HasPrefix(key, root+"/") {
			c.killLocked(sigkill)
			if c.exited {
				delete(a.containers, key)
			}
		}
	}
	if c := a.containers[root]; c != nil {
		c.exited = true
		c.status = status
		close(c.done)
		delete(a.containers, root)
	}
}

func removeAll(dir string) error {
	if dir == "" || dir == "/" {
		return nil
	}
	return os.RemoveAll(dir)
}

// withImage is ci with its Mesos image replaced by the docker image name, or removed when name is
// empty: a container the --image-command fallback runs has no image of its own to provision.
func withImage(ci *mesos.ContainerInfo, name string) *mesos.ContainerInfo {
	if ci.GetMesos().GetImage() == nil {
		return ci
	}
	out := *ci
	m := *ci.Mesos
	m.Image = nil
	if name != "" {
		m.Image = &mesos.Image{Type: mesos.Image_DOCKER.Enum(), Docker: &mesos.Image_Docker{Name: name}}
	}
	out.Mesos = &m
	return &out
}
