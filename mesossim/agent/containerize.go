package agent

import (
	"context"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// geteuid is os.Geteuid; tests of the fallback replace it.
var geteuid = os.Geteuid

// newContainerizer chooses the agent's mode from --isolation. Mesos' Linux isolators (anything beyond
// posix/cpu, posix/mem and the like) run every nested container and session through the containerizer's
// launch helper: own mount and pid namespaces, volumes, rootfs, user, capabilities. That needs root and
// a binary that hosts the helper; without either the agent logs why and runs containers as host
// processes (process mode), as it does for the default --isolation.
func newContainerizer(cfg Config, imageTypes map[mesos.Image_Type]bool, log logrus.FieldLogger) (*containerizer.Containerizer, error) {
	if !containerizer.NeedsIsolation(cfg.Isolation) {
		return nil, nil
	}
	switch {
	case cfg.ProcessMode:
		log.WithField("isolation", cfg.Isolation).Info("process mode requested: containers run as host processes")
		return nil, nil
	case geteuid() != 0:
		log.WithField("isolation", cfg.Isolation).Warn("the agent is not running as root: isolators need root " +
			"(namespaces, mounts, cgroups), so containers run as host processes (process mode)")
		return nil, nil
	case !containerizer.HelperHosted():
		log.WithField("isolation", cfg.Isolation).Warn("this binary does not host the launch helper " +
			"(containerizer.MaybeRunHelper), so containers run as host processes (process mode)")
		return nil, nil
	}
	z, err := containerizer.New(containerizer.Flags{
		Isolation:                        cfg.Isolation,
		ImageProviders:                   cfg.ImageProviders,
		WorkDir:                          cfg.WorkDir,
		CgroupsHierarchy:                 cfg.CgroupsHierarchy,
		CgroupsRoot:                      cfg.CgroupsRoot,
		CgroupsEnableCFS:                 cfg.CgroupsEnableCFS,
		CgroupsLimitSwap:                 cfg.CgroupsLimitSwap,
		EffectiveCapabilities:            cfg.EffectiveCapabilities,
		BoundingCapabilities:             cfg.BoundingCapabilities,
		DisallowSharingAgentPidNamespace: cfg.DisallowSharingAgentPidNamespace,
		NetworkCNIConfigDir:              cfg.NetworkCNIConfigDir,
		NetworkCNIPluginsDir:             cfg.NetworkCNIPluginsDir,
		RuntimeDir:                       cfg.RuntimeDir,
		PortMappingHostIP:                cfg.PortMappingHostIP,
	}, log)
	if err != nil {
		return nil, errors.New("Failed to create a containerizer: Could not create MesosContainerizer: " + err.Error())
	}
	if imageTypes[mesos.Image_DOCKER] {
		// MesosContainerizer::create makes the provisioner whenever an image provider is configured: a
		// container with an image then runs in the rootfs provisioned from the registry's archive.
		p, err := containerizer.NewProvisioner(containerizer.ProvisionerConfig{
			WorkDir:  cfg.WorkDir,
			StoreDir: cfg.DockerStoreDir,
			Registry: cfg.DockerRegistry,
			Backend:  cfg.ImageProvisionerBackend,
			Log:      log,
		})
		if err != nil {
			return nil, errors.New("Failed to create a containerizer: Could not create MesosContainerizer: " +
				"Failed to create provisioner: " + err.Error())
		}
		z.SetProvisioner(p)
	}
	log.WithField("isolation", cfg.Isolation).Info("containers run isolated by the Linux launcher")
	return z, nil
}

// DefaultRuntimeDir is mesos-agent's default --runtime_dir (src/slave/flags.cpp): /var/run/mesos when
// /var/run is readable and writable (root), else <tmp>/mesos/runtime.
func DefaultRuntimeDir() string {
	if unix.Access("/var/run", unix.R_OK|unix.W_OK) == nil {
		return filepath.Join("/var/run", "mesos")
	}
	return filepath.Join(os.TempDir(), "mesos", "runtime")
}

// Isolating reports whether the agent runs containers through the containerizer (not process mode).
func (a *Agent) Isolating() bool { return a.cz != nil }

// containerConfigLocked is the containerizer's view of a nested container or session: Mesos'
// ContainerConfig. A nested container runs as its CommandInfo's user, else as its parent's.
func (a *Agent) containerConfigLocked(c *container, command mesos.CommandInfo, ci *mesos.ContainerInfo, session bool) *containerizer.Container {
	cc := &containerizer.Container{
		ID:      c.id,
		Key:     c.key,
		Sandbox: c.dir,
		Command: command,
		Info:    ci,
		User:    command.GetUser(),
		Debug:   session,
		State:   map[string]any{},
		// Executors' containers are launched elsewhere: a container without parent here is a standalone
		// one (LAUNCH_CONTAINER); the containerizer marks the containers nested in it.
		Standalone: c.id.Parent == nil,
	}
	if c.id.Parent != nil {
		if p := a.containers[containerKey(c.id.Parent)]; p != nil {
			if p.cz != nil {
				cc.Parent = p.cz
			} else {
				// An executor (a host process here): its sandbox and pid are all a child needs.
				cc.Parent = &containerizer.Container{ID: p.id, Key: p.key, Sandbox: p.dir, Pid: p.pidLocked()}
			}
		}
	}
	if cc.User == "" && cc.Parent != nil {
		cc.User = cc.Parent.User
	}
	return cc
}

// pidLocked is the pid of the container's process (an executor's for its container).
func (c *container) pidLocked() int {
	if c.executor != nil {
		return c.executor.pid
	}
	return c.pid
}

// chownSandbox gives a container's sandbox to its user, as Mesos' createSandboxDirectory does.
func chownSandbox(dir, name string) error {
	if name == "" {
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(dir, uid, gid)
}

// startIsolated launches a container through the containerizer with the agent's pipes as its standard
// streams; wait returns its termination (wait status, limitation) once the containerizer has cleaned it up.
func (a *Agent) startIsolated(cc *containerizer.Container, env map[string]string, stdin, stdout, stderr *os.File) (int, func() containerizer.Termination, error) {
	w, err := a.cz.Launch(context.Background(), cc, env, containerizer.Stdio{Stdin: stdin, Stdout: stdout, Stderr: stderr})
	if err != nil {
		return 0, nil, err
	}
	return cc.Pid, func() containerizer.Termination {
		<-w.Done
		return w.Termination()
	}, nil
}

// isolatedExecutorLaunch is an executor's container between its preparation (under the agent's lock)
// and its launch, which runs without the lock: isolators (network/cni, filesystem mounts, cgroups)
// may take seconds on a loaded host, and the agent must go on serving its other executors meanwhile.
type isolatedExecutorLaunch struct {
	cc    *containerizer.Container
	env   map[string]string
	files *outputFiles
}

// prepareIsolatedExecutorLocked is a command executor's container (a custom executor's process) as the
// containerizer launches it: the executor runs as its CommandInfo's user, else its framework's, with
// the agent's environment and the executor's variables, its output in its sandbox.
func (a *Agent) prepareIsolatedExecutorLocked(e *executorRun, env map[string]string) (*isolatedExecutorLaunch, error) {
	files, err := openOutputFiles(e.dir)
	if err != nil {
		return nil, err
	}
	cc := &containerizer.Container{
		ID:      e.containerID,
		Key:     e.containerID.Value,
		Sandbox: e.dir,
		Command: *e.info.Command,
		Info:    e.info.Container,
		User:    e.info.Command.GetUser(),
		State:   map[string]any{},
	}
	if cc.User == "" {
		cc.User = e.fw.info.User
	}
	// Slave::_run launches the executor's container with its resources plus its tasks'.
	cc.Resources, cc.Limits = a.executorAllocationLocked(e)
	full := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			full[k] = v
		}
	}
	for k, v := range env {
		full[k] = v
	}
	// The container is the executor's before it launches. The executor process may subscribe and ask
	// for nested containers as soon as it runs, possibly before launchedLocked: they must find their
	// parent's containerizer config (launch sets its Pid before the process can run), not take the
	// executor for a host process without a pid.
	if c := a.containers[e.containerID.Value]; c != nil {
		c.cz = cc
	}
	return &isolatedExecutorLaunch{cc: cc, env: full, files: files}, nil
}

// launch runs the prepared container; called without the agent's lock.
func (l *isolatedExecutorLaunch) launch(a *Agent) (int, func() int32, error) {
	pid, wait, err := a.startIsolated(l.cc, l.env, nil, l.files.stdout, l.files.stderr)
	if err != nil {
		l.files.close()
		return 0, nil, err
	}
	return pid, func() int32 {
		status := wait().Status
		l.files.close()
		return status
	}, nil
}

// launchedLocked records the launched container on its executor. What happened while the lock was
// released is applied now: a kill requested meanwhile kills the container, and tasks added meanwhile
// (whose update was skipped, there being no container yet) resize it.
func (l *isolatedExecutorLaunch) launchedLocked(a *Agent, e *executorRun, pid int) {
	e.pid = pid
	e.kill = func() { killGroup(pid, syscall.SIGKILL) }
	e.log.WithField("pid", pid).Debug("executor container launched")
	if e.killPending || a.stopped {
		e.kill()
		return
	}
	if res, limits := a.executorAllocationLocked(e); !reflect.DeepEqual(res, l.cc.Resources) || !reflect.DeepEqual(limits, l.cc.Limits) {
		a.updateExecutorContainerLocked(e, "")
	}
}

// executorAllocationLocked is what the executor's container is given: ExecutorInfo.resources plus the
// resources of its tasks not yet terminated (Executor::allocatedResources), and the limits Mesos'
// Slave::computeExecutorLimits derives from the tasks' limits.
func (a *Agent) executorAllocationLocked(e *executorRun) ([]mesos.Resource, map[string]mesos.Value_Scalar) {
	res := append([]mesos.Resource(nil), e.info.Resources...)
	var tasks []mesos.TaskInfo
	for _, t := range e.fw.tasks {
		if t.executor == e && !t.terminal {
			res = append(res, t.info.Resources...)
			tasks = append(tasks, t.info)
		}
	}
	return res, computeExecutorLimits(e.info.Resources, tasks, a.cfg.CgroupsEnableCFS)
}

// computeExecutorLimits is Slave::computeExecutorLimits: a resource (cpus, mem) gets a limit when a
// task has one; it is the sum of the tasks' limits, the executor's request and the requests of the
// tasks without a limit (cpus: only with --cgroups_enable_cfs, else none), infinite when any is.
func computeExecutorLimits(executor []mesos.Resource, tasks []mesos.TaskInfo, enableCFS bool) map[string]mesos.Value_Scalar {
	limits := map[string]mesos.Value_Scalar{}
	for _, name := range []string{"cpus", "mem"} {
		var limit, request float64
		limited := false
		for _, t := range tasks {
			if l, ok := t.Limits[name]; ok {
				limited = true
				limit += l.Value // +Inf stays infinite
				continue
			}
			request += scalarResource(t.Resources, name)
		}
		if !limited {
			continue
		}
		limit += scalarResource(executor, name)
		if request > 0 {
			if name == "cpus" && !enableCFS {
				continue
			}
			limit += request
		}
		limits[name] = mesos.Value_Scalar{Value: limit}
	}
	if len(limits) == 0 {
		return nil
	}
	return limits
}

func scalarResource(res []mesos.Resource, name string) float64 {
	var v float64
	for _, r := range res {
		if r.Name == name && r.Scalar != nil {
			v += r.Scalar.Value
		}
	}
	return v
}

// updateExecutorContainerLocked gives a running executor's container its current allocation, as the
// agent does when tasks are added (Slave::__run) or end (Slave::_statusUpdate; terminalTask names the
// task whose terminal update it is, "" for an addition). An update that fails ends the executor as
// Mesos does (Slave::___run, Slave::__statusUpdate): "destroying container", its tasks not yet
// terminal then end TASK_LOST (TASK_GONE for a partition-aware framework) with
// REASON_CONTAINER_UPDATE_FAILED. It reports whether the tasks may go to the executor: false after a
// failed update (___run then leaves them queued, and they end with the executor).
func (a *Agent) updateExecutorContainerLocked(e *executorRun, terminalTask string) bool {
	if a.cz == nil || e == nil || e.pid == 0 || e.state >= executorTerminating {
		return true
	}
	if e.destroying {
		// MesosContainerizerProcess::update: "Ignoring update for currently being destroyed container"
		// (a success: ___run then delivers the tasks, which end with the executor).
		return true
	}
	c := a.containers[e.containerID.Value]
	if c == nil || c.cz == nil {
		return true
	}
	res, limits := a.executorAllocationLocked(e)
	err := a.cz.Update(context.Background(), e.containerID.Value, res, limits)
	if err == nil {
		return true
	}
	what := "of framework " + e.fw.info.GetID().GetValue()
	if terminalTask != "" {
		what = "running task " + terminalTask + " on status update for terminal task"
	}
	e.log.Error("Failed to update resources for container " + e.containerID.Value + " of executor '" +
		e.info.ExecutorID.Value + "' " + what + ", destroying container: " + err.Error())
	// Mesos replaces any earlier pending termination, and leaves the executor's state as it is (a TODO
	// in slave.cpp): its later updates are forwarded, its container is no longer updated.
	e.pending = &termination{lostOrGone(e.fw.info), mesos.REASON_CONTAINER_UPDATE_FAILED,
		"Failed to update resources for container: " + err.Error()}
	e.destroying = true
	e.killProcessLocked()
	return false
}
