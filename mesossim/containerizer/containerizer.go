package containerizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/kubemesos/kubemesos/internal/deathsig"
)

// Stdio are the container's standard streams; nil ones are /dev/null.
type Stdio struct {
	Stdin, Stdout, Stderr *os.File
}

// Termination is how a container ended: its wait status (-1 unknown) and the limitation that ended it,
// if an isolator reported one.
type Termination struct {
	Status     int32
	Limitation *Limitation
}

// HostDefaultPath is the PATH Mesos' launch helper gives a command whose environment has none
// (os::host_default_path).
const HostDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Containerizer is the simulated agent's MesosContainerizer with the Linux launcher: every container is
// started through the launch helper with what its isolators prepared.
type Containerizer struct {
	flags     Flags
	isolators []Isolator
	log       logrus.FieldLogger

	mu         sync.Mutex
	containers map[string]*running
	prov       RootfsProvisioner
}

// RootfsProvisioner is the image provisioner as the containerizer uses it (*Provisioner is one): it
// makes a container's root filesystem from its image and removes it again.
type RootfsProvisioner interface {
	Provision(ctx context.Context, id mesos.ContainerID, image mesos.Image) (ProvisionInfo, error)
	Destroy(ctx context.Context, id mesos.ContainerID) (bool, error)
}

// SetProvisioner makes the containerizer provision the root filesystem of every container with a
// ContainerInfo.mesos.image (before the isolators prepare it, as MesosContainerizerProcess::prepare
// does) and destroy it after the isolators' cleanup. Without one, Container.Rootfs is the caller's.
func (z *Containerizer) SetProvisioner(p RootfsProvisioner) {
	z.mu.Lock()
	z.prov = p
	z.mu.Unlock()
}

type running struct {
	c *Container
	// env and workdir are the container's final ones: a DEBUG child inherits them.
	env      map[string]string
	workdir  string
	prepared []Isolator
	cmd      *exec.Cmd
	syncW    *os.File
	prov     RootfsProvisioner // set when the containerizer provisioned the rootfs
	done     chan struct{}
	// destroying is set (under Containerizer.mu) once the container's init has ended: no child may
	// launch in it any more.
	destroying bool

	mu   sync.Mutex
	term Termination
	// launched is set once the launch has succeeded. Until then the launch goroutine owns c, so
	// Usage, Status and Update answer without reading it: Mesos' actor serializes them instead, and
	// the agent no longer holds its lock across a launch.
	launched bool
}

// pid is the container's init, 0 before the fork.
func (r *running) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.c.Pid
}

func (r *running) isLaunched() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.launched
}

// New creates the containerizer with the isolators named by flags.Isolation.
func New(flags Flags, log logrus.FieldLogger) (*Containerizer, error) {
	if !HelperHosted() {
		return nil, errors.New("this binary does not host the launch helper (it must call containerizer.MaybeRunHelper first)")
	}
	flags.setDefaults()
	isolators, err := CreateIsolators(flags)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Containerizer{flags: flags, isolators: isolators, log: log, containers: map[string]*running{}}, nil
}

// Close releases what the isolators hold for the agent rather than for a container: the self bind
// mount that makes the work_dir shared (filesystem/linux), once no other containerizer of the same
// work_dir uses it. The agent calls it when it stops for good (not for a restart: Mesos' mount
// outlives the agent). Containers still running are not touched.
func (z *Containerizer) Close() error { return closeIsolators(z.isolators) }

// Isolators returns the containerizer's isolators in --isolation order.
func (z *Containerizer) Isolators() []Isolator { return z.isolators }

// Flags returns the flags the containerizer runs with (defaults filled in).
func (z *Containerizer) Flags() Flags { return z.flags }

// mergeLaunchInfo adds an isolator's contribution to the launch, refusing what Mesos refuses
// (MesosContainerizerProcess::_launch) and, for the fields Mesos has no such check for, any second
// different value.
func mergeLaunchInfo(dst *LaunchInfo, src LaunchInfo) error {
	if src.WorkingDirectory != "" {
		if dst.WorkingDirectory != "" {
			return errors.New("Multiple isolators specify working directory")
		}
		dst.WorkingDirectory = src.WorkingDirectory
	}
	if src.EffectiveCapabilities != nil {
		if dst.EffectiveCapabilities != nil {
			return errors.New("Multiple isolators specify effective capabilities")
		}
		dst.EffectiveCapabilities = src.EffectiveCapabilities
	}
	if src.BoundingCapabilities != nil {
		if dst.BoundingCapabilities != nil {
			return errors.New("Multiple isolators specify bounding capabilities")
		}
		dst.BoundingCapabilities = src.BoundingCapabilities
	}
	scalar := func(name string, d *string, s string) error {
		if s == "" {
			return nil
		}
		if *d != "" && *d != s {
			return fmt.Errorf("Multiple isolators specify %s", name)
		}
		*d = s
		return nil
	}
	if err := scalar("rootfs", &dst.Rootfs, src.Rootfs); err != nil {
		return err
	}
	if err := scalar("hostname", &dst.Hostname, src.Hostname); err != nil {
		return err
	}
	if err := scalar("user", &dst.User, src.User); err != nil {
		return err
	}
	if src.UID != nil {
		if dst.UID != nil && *dst.UID != *src.UID {
			return errors.New("Multiple isolators specify uid")
		}
		dst.UID = src.UID
	}
	if src.GID != nil {
		if dst.GID != nil && *dst.GID != *src.GID {
			return errors.New("Multiple isolators specify gid")
		}
		dst.GID = src.GID
	}
	if len(src.Argv) > 0 {
		dst.Argv, dst.Executable = src.Argv, src.Executable
	}
	if len(src.Environment) > 0 && dst.Environment == nil {
		dst.Environment = map[string]string{}
	}
	for k, v := range src.Environment {
		dst.Environment[k] = v
	}
	dst.CloneNamespaces = append(dst.CloneNamespaces, src.CloneNamespaces...)
	for ns, pid := range src.EnterNamespaces {
		if dst.EnterNamespaces == nil {
			dst.EnterNamespaces = map[string]int{}
		}
		dst.EnterNamespaces[ns] = pid
	}
	dst.Mounts = append(dst.Mounts, src.Mounts...)
	dst.IsolateMounts = append(dst.IsolateMounts, src.IsolateMounts...)
	dst.MaskedPaths = append(dst.MaskedPaths, src.MaskedPaths...)
	dst.Groups = append(dst.Groups, src.Groups...)
	dst.NoNewPrivileges = dst.NoNewPrivileges || src.NoNewPrivileges
	return nil
}

// Waiter is a launched container's end: Done is closed once it has terminated and been cleaned up,
// then Termination tells how it ended.
type Waiter struct {
	Done        <-chan struct{}
	Termination func() Termination
}

func (r *running) waiter() Waiter {
	return Waiter{Done: r.done, Termination: func() Termination {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.term
	}}
}

// Launch prepares the container with every isolator, forks the launch helper, isolates it and lets it
// exec the command. env is the agent's environment for the command (below the isolators' and the
// CommandInfo's, as in Mesos). A failure is the launch's error text; whatever was prepared is cleaned
// up. The container then runs until the Waiter's Done closes.
func (z *Containerizer) Launch(ctx context.Context, c *Container, env map[string]string, stdio Stdio) (Waiter, error) {
	r, err := z.launch(ctx, c, env, stdio)
	if err != nil {
		return Waiter{}, err
	}
	return r.waiter(), nil
}

func (z *Containerizer) launch(ctx context.Context, c *Container, env map[string]string, stdio Stdio) (_ *running, err error) {
	z.mu.Lock()
	if _, ok := z.containers[c.Key]; ok {
		z.mu.Unlock()
		return nil, fmt.Errorf("Container %s already exists", c.Key)
	}
	var parent *running
	if c.Parent != nil {
		parent = z.containers[c.Parent.Key]
		if parent != nil && parent.destroying {
			z.mu.Unlock()
			return nil, fmt.Errorf("Parent container %s is in 'DESTROYING' state", strings.ReplaceAll(c.Parent.Key, "/", "."))
		}
	}
	if c.Parent != nil && c.Parent.Standalone {
		c.Standalone = true // nested in a standalone container: the same isolators skip it
	}
	r := &running{c: c, done: make(chan struct{})}
	z.containers[c.Key] = r
	prov := z.prov
	z.mu.Unlock()
	if c.State == nil {
		c.State = map[string]any{}
	}
	defer func() {
		if err != nil {
			z.cleanup(r)
			z.mu.Lock()
			delete(z.containers, c.Key)
			z.mu.Unlock()
			close(r.done) // a parent's destroy may be waiting for it
		}
	}()

	if img := c.Info.GetMesos().GetImage(); img != nil && prov != nil && !c.Debug && c.Rootfs == "" {
		info, err := prov.Provision(ctx, c.ID, *img)
		if err != nil {
			return nil, err
		}
		r.prov = prov
		c.Rootfs = info.Rootfs
		if c.Image == nil {
			cfg := info.Config
			c.Image = &cfg
		}
	}
	var li LaunchInfo
	for _, iso := range z.isolators {
		if !supports(iso, c) {
			continue
		}
		var part LaunchInfo
		r.prepared = append(r.prepared, iso)
		if err := iso.Prepare(ctx, c, &part); err != nil {
			return nil, err
		}
		if err := mergeLaunchInfo(&li, part); err != nil {
			return nil, err
		}
	}
	z.finishLaunchInfo(c, parent, env, &li)
	r.env, r.workdir = li.Environment, li.WorkingDirectory

	cfg := helperConfig{Launch: li}
	_, enterPID := li.EnterNamespaces[NamespacePID]
	for _, ns := range li.CloneNamespaces {
		switch {
		case ns == NamespaceMount:
			cfg.Mnt = true
		case ns == NamespacePID && enterPID:
			// A new pid namespace inside the parent's (nested in it, as in Mesos).
			cfg.ClonePID = true
		}
	}
	keys := make([]string, 0, len(li.Environment))
	for k := range li.Environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cfg.Env = append(cfg.Env, k+"="+li.Environment[k])
	}
	if err := z.fork(r, cfg, stdio); err != nil {
		return nil, err
	}
	if err := z.isolateAndRelease(ctx, r); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.launched = true
	r.mu.Unlock()
	return r, nil
}

// finishLaunchInfo is the rest of MesosContainerizerProcess::_launch: environment, rootfs, working
// directory, user, the command, and the namespaces a nested container shares with its parent.
func (z *Containerizer) finishLaunchInfo(c *Container, parent *running, agentEnv map[string]string, li *LaunchInfo) {
	env := map[string]string{}
	if c.Debug && parent != nil {
		for k, v := range parent.env {
			env[k] = v
		}
	}
	for k, v := range agentEnv {
		env[k] = v
	}
	if !c.Debug {
		if c.Rootfs != "" {
			env["MESOS_SANDBOX"] = z.flags.SandboxDirectory
		} else {
			env["MESOS_SANDBOX"] = c.Sandbox
		}
	}
	for k, v := range li.Environment {
		env[k] = v
	}
	for _, v := range c.Command.GetEnvironment().GetVariables() {
		if v.GetType() != mesos.Environment_Variable_SECRET {
			env[v.Name] = v.GetValue()
		}
	}
	if _, ok := env["PATH"]; !ok {
		env["PATH"] = HostDefaultPath
	}
	li.Environment = env

	if !c.Debug && c.Rootfs != "" {
		li.Rootfs = c.Rootfs
	}
	switch {
	case c.Debug:
		li.WorkingDirectory = ""
		if parent != nil {
			li.WorkingDirectory = parent.workdir
		}
	case li.Rootfs != "":
		if li.WorkingDirectory == "" {
			li.WorkingDirectory = z.flags.SandboxDirectory
		}
	default:
		// A container on the host's filesystem may not choose its directory.
		li.WorkingDirectory = c.Sandbox
	}
	if c.User != "" {
		li.User = c.User
	}

	if c.Command.GetShell() {
		// os::Shell::name and arg0: execvp finds sh on the command's PATH.
		li.Executable = "sh"
		li.Argv = []string{"sh", "-c", c.Command.GetValue()}
	} else {
		li.Executable = c.Command.GetValue()
		li.Argv = c.Command.Arguments
		if len(li.Argv) == 0 {
			li.Argv = []string{c.Command.GetValue()}
		}
	}

	cloned := map[string]bool{}
	var clone []string
	for _, ns := range li.CloneNamespaces {
		if !cloned[ns] {
			cloned[ns] = true
			clone = append(clone, ns)
		}
	}
	li.CloneNamespaces = clone
	// Mesos' linux launcher (ns::clone(parentPid, enterFlags, ...)) enters only the namespaces the
	// isolators ask for (namespaces/pid: pid, filesystem/linux for DEBUG: mnt, network/cni: net and
	// uts when the root container has networks); the rest are the agent's.
	for ns, pid := range li.EnterNamespaces {
		if pid <= 0 || (cloned[ns] && ns != NamespacePID) {
			delete(li.EnterNamespaces, ns)
		}
	}
}

// fork starts the launch helper with the namespaces to clone and hands it the launch on fd 3; it waits
// on fd 4.
func (z *Containerizer) fork(r *running, cfg helperConfig, stdio Stdio) error {
	var flags uintptr
	for _, ns := range cfg.Launch.CloneNamespaces {
		if ns == NamespacePID && cfg.ClonePID {
			continue // cloned by a later stage, inside the entered pid namespace
		}
		flags |= uintptr(nsFlags[ns])
	}
	infoR, infoW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer infoR.Close()
	defer infoW.Close()
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer syncR.Close()
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{HelperName, HelperCommand},
		Env:        []string{},
		ExtraFiles: []*os.File{infoR, syncR},
		// Its own process group: signals for the container reach whatever it forks.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Cloneflags: flags},
	}
	if stdio.Stdin != nil {
		cmd.Stdin = stdio.Stdin
	}
	if stdio.Stdout != nil {
		cmd.Stdout = stdio.Stdout
	}
	if stdio.Stderr != nil {
		cmd.Stderr = stdio.Stderr
	}
	// deathsig sets Pdeathsig; Go's child then checks getppid() against its parent and, in a new pid
	// namespace, where the parent is invisible, SIGKILLs getpid() (1): the kernel ignores that signal
	// from inside the namespace to its init, so the helper lives on with the death signal set.
	if err := deathsig.Start(cmd); err != nil {
		syncW.Close()
		return fmt.Errorf("Failed to fork the launch helper: %w", err)
	}
	r.cmd = cmd
	r.mu.Lock()
	r.c.Pid = cmd.Process.Pid
	r.mu.Unlock()
	r.syncW = syncW
	if err := json.NewEncoder(infoW).Encode(cfg); err != nil {
		return fmt.Errorf("Failed to send the launch info: %w", err)
	}
	return nil
}

func (z *Containerizer) isolateAndRelease(ctx context.Context, r *running) error {
	defer r.syncW.Close()
	for _, iso := range r.prepared {
		if err := iso.Isolate(ctx, r.c); err != nil {
			killTree(r.c.Pid, unix.SIGKILL)
			_ = r.cmd.Wait()
			return err
		}
	}
	if _, err := r.syncW.Write([]byte{1}); err != nil {
		killTree(r.c.Pid, unix.SIGKILL)
		_ = r.cmd.Wait()
		return fmt.Errorf("Failed to synchronize child process: %w", err)
	}
	for _, iso := range r.prepared {
		if ch := iso.Watch(r.c); ch != nil {
			go z.watch(r, ch)
		}
	}
	go z.reap(r)
	return nil
}

// watch ends the container with the first limitation an isolator reports.
func (z *Containerizer) watch(r *running, ch <-chan Limitation) {
	select {
	case l, ok := <-ch:
		if !ok {
			return
		}
		r.mu.Lock()
		first := r.term.Limitation == nil
		if first {
			r.term.Limitation = &l
		}
		r.mu.Unlock()
		if first {
			z.log.WithFields(logrus.Fields{"containerID": r.c.Key, "reason": l.Reason}).Info(l.Message)
			killTree(r.pid(), unix.SIGKILL)
		}
	case <-r.done:
	}
}

func (z *Containerizer) reap(r *running) {
	status := int32(-1)
	err := r.cmd.Wait()
	if err == nil {
		status = 0
	} else if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			status = int32(ws)
		}
	}
	// Mesos destroys a container whose init ended: its nested containers first, then whatever the
	// command left in its process group (a cloned pid namespace took its processes with its init
	// already), then the isolators clean up (network/cni's DEL once no child is in the namespace).
	z.destroyChildren(r)
	killTree(r.c.Pid, unix.SIGKILL)
	z.cleanup(r)
	r.mu.Lock()
	r.term.Status = status
	r.mu.Unlock()
	z.mu.Lock()
	delete(z.containers, r.c.Key)
	z.mu.Unlock()
	close(r.done)
}

// destroyChildren destroys the containers nested in r, each after its own children
// (MesosContainerizerProcess::destroy), and returns once they are cleaned up. A child still launching
// is killed again until its launch has ended one way or the other.
func (z *Containerizer) destroyChildren(r *running) {
	z.mu.Lock()
	r.destroying = true
	var children []*running
	for _, o := range z.containers {
		if o.c.Parent != nil && o.c.Parent.Key == r.c.Key {
			children = append(children, o)
		}
	}
	z.mu.Unlock()
	for _, ch := range children {
		for done := false; !done; {
			killTree(ch.pid(), unix.SIGKILL)
			select {
			case <-ch.done:
				done = true
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// cleanup runs every prepared isolator's Cleanup in reverse order.
func (z *Containerizer) cleanup(r *running) {
	for i := len(r.prepared) - 1; i >= 0; i-- {
		if err := r.prepared[i].Cleanup(context.Background(), r.c); err != nil {
			z.log.WithError(err).WithFields(logrus.Fields{"containerID": r.c.Key, "isolator": r.prepared[i].Name()}).
				Warn("Failed to clean up an isolator")
		}
	}
	r.prepared = nil
	if r.prov != nil {
		if _, err := r.prov.Destroy(context.Background(), r.c.ID); err != nil {
			z.log.WithError(err).WithField("containerID", r.c.Key).Warn("Failed to destroy the provisioned rootfs")
		}
		r.prov = nil
	}
}

func killTree(pid int, sig unix.Signal) {
	if pid > 0 {
		_ = unix.Kill(-pid, sig)
		_ = unix.Kill(pid, sig)
	}
}

func (z *Containerizer) get(key string) (*running, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	r := z.containers[key]
	if r == nil {
		return nil, fmt.Errorf("Container %s not found", key)
	}
	return r, nil
}

// getLaunched is get for the calls that read the container's isolation, which its launch is still
// setting up until it has succeeded.
func (z *Containerizer) getLaunched(key string) (*running, error) {
	r, err := z.get(key)
	if err != nil {
		return nil, err
	}
	if !r.isLaunched() {
		return nil, fmt.Errorf("Container %s is still launching", key)
	}
	return r, nil
}

// Wait returns the Waiter of a container that has not ended yet.
func (z *Containerizer) Wait(key string) (Waiter, error) {
	r, err := z.get(key)
	if err != nil {
		return Waiter{}, err
	}
	return r.waiter(), nil
}

// Signal sends a signal to the container's command (KILL_NESTED_CONTAINER's signal).
func (z *Containerizer) Signal(key string, sig syscall.Signal) error {
	r, err := z.get(key)
	if err != nil {
		return err
	}
	pid := r.pid()
	if pid <= 0 {
		// kill(0) would signal the agent's own process group.
		return fmt.Errorf("Container %s is not running yet", key)
	}
	return unix.Kill(pid, sig)
}

// Destroy kills every process of the container and returns once it is cleaned up.
func (z *Containerizer) Destroy(ctx context.Context, key string) error {
	r, err := z.get(key)
	if err != nil {
		return err
	}
	killTree(r.pid(), unix.SIGKILL)
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Update applies new resources and limits through every isolator.
func (z *Containerizer) Update(ctx context.Context, key string, resources []mesos.Resource, limits map[string]mesos.Value_Scalar) error {
	r, err := z.getLaunched(key)
	if err != nil {
		return err
	}
	for _, iso := range z.isolators {
		if !supports(iso, r.c) {
			continue
		}
		if err := iso.Update(ctx, r.c, resources, limits); err != nil {
			return err
		}
	}
	r.c.Resources, r.c.Limits = resources, limits
	return nil
}

// Usage collects the isolators' statistics for the container.
func (z *Containerizer) Usage(ctx context.Context, key string) (mesos.ResourceStatistics, error) {
	var st mesos.ResourceStatistics
	r, err := z.getLaunched(key)
	if err != nil {
		return st, err
	}
	for _, iso := range z.isolators {
		if !supports(iso, r.c) {
			continue
		}
		if err := iso.Usage(ctx, r.c, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// Status collects the isolators' parts of the container's status.
func (z *Containerizer) Status(ctx context.Context, key string) (mesos.ContainerStatus, error) {
	var cs mesos.ContainerStatus
	r, err := z.getLaunched(key)
	if err != nil {
		return cs, err
	}
	id := r.c.ID
	cs.ContainerID = &id
	pid := uint32(r.c.Pid)
	cs.ExecutorPID = &pid
	for _, iso := range z.isolators {
		if !supports(iso, r.c) {
			continue
		}
		if err := iso.Status(ctx, r.c, &cs); err != nil {
			return cs, err
		}
	}
	return cs, nil
}
