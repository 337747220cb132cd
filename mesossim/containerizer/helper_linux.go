package containerizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// HelperName and HelperCommand are how Mesos names its launch helper: `mesos-containerizer launch`.
const (
	HelperName    = "mesos-containerizer"
	HelperCommand = "launch"
	// stage2Flag marks a helper forked by a helper: after entering a pid namespace (setns only
	// moves children into it).
	stage2Flag = "--stage2"
)

// helperConfig is what the launcher writes on the helper's fd 3.
type helperConfig struct {
	Launch LaunchInfo `json:"launch"`
	// Env is the command's complete environment.
	Env []string `json:"env"`
	// Mnt is true when the helper's mount namespace was cloned for it (mounts are allowed).
	Mnt bool `json:"mnt"`
	// ClonePID asks for a new pid namespace inside the one entered: a process can clone one only in
	// its own active pid namespace, so a stage forked into the entered namespace forks the next with
	// CLONE_NEWPID (Mesos' ns::clone forks twice as well).
	ClonePID bool `json:"clonePID,omitempty"`
}

// MaybeRunHelper runs the launch helper and exits when this process was started as one. Binaries that
// host agents call it first thing in main or TestMain.
func MaybeRunHelper() {
	if filepath.Base(os.Args[0]) != HelperName || len(os.Args) < 2 || os.Args[1] != HelperCommand {
		helperHosted.Store(true)
		return
	}
	os.Exit(runHelper(len(os.Args) > 2 && os.Args[2] == stage2Flag))
}

// helperHosted records that this binary called MaybeRunHelper: re-executing a binary that does not
// would run it again (a test binary would run its tests) instead of the helper.
var helperHosted atomic.Bool

// HelperHosted reports whether this binary can serve as the launch helper (it called MaybeRunHelper).
func HelperHosted() bool { return helperHosted.Load() }

// fail writes the launcher's error to the container's stderr, as Mesos' helper does, and returns
// EXIT_FAILURE.
func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	return 1
}

func runHelper(stage2 bool) int {
	// Namespaces, credentials and capabilities are per thread: everything happens on this one, and the
	// command is exec'd (or forked) from it.
	runtime.LockOSThread()
	cfgFile := os.NewFile(3, "launch-info")
	var cfg helperConfig
	if err := json.NewDecoder(cfgFile).Decode(&cfg); err != nil {
		return fail("Failed to parse launch info: %v", err)
	}
	cfgFile.Close()
	li := cfg.Launch
	if stage2 {
		_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	} else {
		// Held until the agent has isolated us (cgroups, network): one byte releases us; EOF without
		// one means the launch was abandoned.
		sync := os.NewFile(4, "sync")
		var b [1]byte
		if n, _ := sync.Read(b[:]); n != 1 {
			return fail("Failed to synchronize with agent (it's probably exited)")
		}
		sync.Close()
	}
	if len(li.EnterNamespaces) > 0 {
		if code, forked := enterNamespaces(cfg); forked {
			return code
		}
	}
	if cfg.ClonePID {
		next := cfg
		next.ClonePID = false
		return forkStage(next, unix.CLONE_NEWPID)
	}
	return launchCommand(cfg)
}

// enterOrder is the order the helper joins namespaces (the mount namespace is launchCommand's).
var enterOrder = []string{NamespaceIPC, NamespaceUTS, NamespaceNet, NamespacePID}

var nsFlags = map[string]int{
	NamespaceMount: unix.CLONE_NEWNS, NamespacePID: unix.CLONE_NEWPID, NamespaceNet: unix.CLONE_NEWNET,
	NamespaceUTS: unix.CLONE_NEWUTS, NamespaceIPC: unix.CLONE_NEWIPC,
}

// enterNamespaces joins the namespaces of other processes but the mount namespace, which Mesos'
// launch helper joins itself (see enterMountNamespace). Joining a pid namespace moves only the
// children: the helper then forks itself as a second stage inside it, relays signals to it and exits
// as it does (forked true), handing it the mount namespace to join.
func enterNamespaces(cfg helperConfig) (code int, forked bool) {
	_, fork := cfg.Launch.EnterNamespaces[NamespacePID]
	fds := map[string]*os.File{}
	for _, ns := range enterOrder {
		pid, ok := cfg.Launch.EnterNamespaces[ns]
		if !ok {
			continue
		}
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err != nil {
			return fail("Failed to enter %s namespace: %v", nsLongName(ns), err), true
		}
		defer f.Close()
		fds[ns] = f
	}
	for _, ns := range enterOrder {
		if f := fds[ns]; f != nil {
			if err := unix.Setns(int(f.Fd()), nsFlags[ns]); err != nil {
				return fail("Failed to enter %s namespace: %v", nsLongName(ns), err), true
			}
		}
	}
	if !fork {
		return 0, false
	}
	next := cfg
	next.Launch.EnterNamespaces = nil
	if pid, ok := cfg.Launch.EnterNamespaces[NamespaceMount]; ok {
		next.Launch.EnterNamespaces = map[string]int{NamespaceMount: pid}
	}
	return forkStage(next, 0), true
}

// forkStage forks the helper again from this thread (so in the namespaces it joined), with cloneflags,
// hands it the launch, relays signals to it and exits as it does.
func forkStage(next helperConfig, cloneflags uintptr) int {
	r, w, err := os.Pipe()
	if err != nil {
		return fail("Failed to create a pipe: %v", err)
	}
	child := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{HelperName, HelperCommand, stage2Flag},
		Env:        []string{},
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		ExtraFiles: []*os.File{r},
		// No Pdeathsig here: Go's child checks getppid() against its parent's pid, and in the joined
		// pid namespace the parent is invisible (0): the next stage sets it itself.
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: cloneflags},
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	if err := child.Start(); err != nil {
		return fail("Failed to fork() the command: %v", err)
	}
	r.Close()
	_ = json.NewEncoder(w).Encode(next)
	w.Close()
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGCHLD || s == syscall.SIGURG {
				continue
			}
			_ = child.Process.Signal(s)
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					// Die the same way, so that the agent sees the command's status.
					signal.Reset(ws.Signal())
					_ = unix.Kill(os.Getpid(), ws.Signal())
					return 128 + int(ws.Signal())
				}
				return ee.ExitCode()
			}
			if err != nil {
				return fail("Failed to wait for the command: %v", err)
			}
			return 0
		}
	}
}

// enterMountNamespace joins the mount namespace of pid (a DEBUG container's parent's) as Mesos'
// launch helper does with --namespace_mnt_target (the containerizer takes CLONE_NEWNS out of the
// namespaces its launcher enters): after the user was looked up in the agent's /etc/passwd, before
// the root changes and the working directory, so the command then sees the parent's filesystem.
func enterMountNamespace(pid int) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return err
	}
	defer f.Close()
	// A thread sharing its fs_struct with others cannot join a mount namespace.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unsharing the file system attributes: %w", err)
	}
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNS)
}

func nsLongName(ns string) string {
	if ns == NamespaceMount {
		return "mount"
	}
	return ns
}

// launchCommand is the rest of Mesos' launch helper, in its order: mounts, masked paths, user lookup,
// root change, working directory, groups and user, capabilities, no_new_privs, exec.
func launchCommand(cfg helperConfig) int {
	li := cfg.Launch
	if len(li.Mounts)+len(li.IsolateMounts) > 0 && !cfg.Mnt {
		return fail("Failed to prepare mounts: Mounts are not supported if the mount namespace is not cloned")
	}
	// Targets of the shared mounts a BIDIRECTIONAL host path volume keeps shared (volume/host_path).
	shared := map[string]bool{}
	for _, m := range li.Mounts {
		if m.Flags&unix.MS_SHARED != 0 {
			shared[m.Target] = true
		}
	}
	if cfg.Mnt {
		if len(shared) == 0 {
			// Nothing mounted for the container may propagate back to the host.
			if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
				return fail("Failed to prepare mounts: Failed to mark '/' as rslave: %v", err)
			}
		} else {
			// launch.cpp: every other mount becomes a slave, one by one, the shared ones stay peers
			// of the agent's.
			table, err := readMountInfo()
			if err != nil {
				return fail("Failed to prepare mounts: Failed to get mount table: %v", err)
			}
			for i := len(table) - 1; i >= 0; i-- {
				if shared[table[i].target] {
					continue
				}
				if err := unix.Mount("", table[i].target, "", unix.MS_SLAVE, ""); err != nil {
					return fail("Failed to prepare mounts: Failed to mark '%s' as slave: %v", table[i].target, err)
				}
			}
		}
	}
	if li.Rootfs != "" {
		fmt.Fprintf(os.Stderr, "Preparing rootfs at '%s'\n", li.Rootfs)
		real, err := filepath.EvalSymlinks(li.Rootfs)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return fail("Rootfs path '%s' does not exist", li.Rootfs)
		case err != nil:
			return fail("Failed to determine if rootfs '%s' is an absolute path: %v", li.Rootfs, err)
		case real != li.Rootfs:
			return fail("Rootfs path '%s' is not an absolute path", li.Rootfs)
		}
	}
	if cfg.Mnt && len(shared) == 0 {
		fmt.Fprintln(os.Stderr, "Marked '/' as rslave")
	}
	for _, m := range li.IsolateMounts {
		if err := doMount(m); err != nil {
			return fail("Failed to prepare mounts: %v", err)
		}
	}
	for _, m := range li.Mounts {
		if m.Flags&unix.MS_SHARED != 0 {
			continue
		}
		if len(shared) > 0 {
			// A volume mount under a shared mount would reach the host's mount table, which Mesos
			// refuses (isolate mounts, Mesos' pre-exec commands, escape the check there too).
			table, err := readMountInfo()
			if err != nil {
				return fail("Failed to prepare mounts: Failed to read mount table: %v", err)
			}
			// Mesos' isolators create their mount points first; here doMount may still have to.
			target := m.Target
			for !pathExists(target) && target != filepath.Dir(target) {
				target = filepath.Dir(target)
			}
			e, err := findByTarget(table, target)
			if err != nil {
				return fail("Failed to prepare mounts: Cannot find the mount containing the mount target '%s': %v", m.Target, err)
			}
			if e.shared != "" {
				b, _ := json.Marshal(m)
				return fail("Failed to prepare mounts: Cannot perform mount '%s' because the target is under a shared mount '%s'", b, e.target)
			}
		}
		if err := doMount(m); err != nil {
			return fail("Failed to prepare mounts: %v", err)
		}
	}
	for _, p := range li.MaskedPaths {
		if err := maskPath(p); err != nil {
			fmt.Fprintf(os.Stderr, "Failed to mask container paths: %v\n", err)
		}
	}
	if li.Hostname != "" {
		if !contains(li.CloneNamespaces, NamespaceUTS) {
			// Without its own UTS namespace the container would rename the host.
			return fail("Failed to set hostname: the UTS namespace is not cloned")
		}
		if err := unix.Sethostname([]byte(li.Hostname)); err != nil {
			return fail("Failed to set hostname: %v", err)
		}
	}
	// The user is looked up before the root changes, in the agent's /etc/passwd, by name (Mesos'
	// os::getuid uses getpwnam_r: a numeric user is a name like any other).
	var uid, gid *int
	var groups []int
	if li.User != "" {
		u, err := user.Lookup(li.User)
		if err != nil {
			return fail("Failed to get the uid of user '%s': %s", li.User, lookupError(err))
		}
		id, _ := strconv.Atoi(u.Uid)
		if id != os.Geteuid() {
			g, _ := strconv.Atoi(u.Gid)
			gids, err := u.GroupIds()
			if err != nil {
				return fail("Failed to get the supplementary gids of user '%s': %v", li.User, err)
			}
			for _, s := range gids {
				n, _ := strconv.Atoi(s)
				groups = append(groups, n)
			}
			for _, n := range li.Groups {
				groups = append(groups, int(n))
			}
			uid, gid = &id, &g
		}
	}
	if li.UID != nil && uid == nil {
		id := int(*li.UID)
		uid = &id
		g := 0
		if li.GID != nil {
			g = int(*li.GID)
		}
		gid = &g
		for _, n := range li.Groups {
			groups = append(groups, int(n))
		}
	}
	caps := li.EffectiveCapabilities != nil || li.BoundingCapabilities != nil
	if caps && uid != nil {
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return fail("Failed to set process control for keeping capabilities on potential uid change: %v", err)
		}
	}
	if pid, ok := li.EnterNamespaces[NamespaceMount]; ok {
		if err := enterMountNamespace(pid); err != nil {
			return fail("Failed to enter mount namespace: %v", err)
		}
	}
	if li.Rootfs != "" {
		fmt.Fprintf(os.Stderr, "Changing root to %s\n", li.Rootfs)
		if err := enterChroot(li.Rootfs); err != nil {
			return fail("%v", err)
		}
	}
	if li.WorkingDirectory != "" {
		if err := os.MkdirAll(li.WorkingDirectory, 0o755); err != nil {
			return fail("Failed to create working directory '%s': %v", li.WorkingDirectory, err)
		}
		if err := os.Chdir(li.WorkingDirectory); err != nil {
			return fail("Failed to chdir into current working directory '%s': %v", li.WorkingDirectory, err)
		}
	}
	if uid != nil {
		// Raw syscalls: the credentials of this thread are what the command inherits.
		if _, _, e := unix.RawSyscall(unix.SYS_SETGID, uintptr(*gid), 0, 0); e != 0 {
			return fail("Failed to set gid to %d: %v", *gid, e)
		}
		if err := setgroups(groups); err != nil {
			return fail("Failed to set supplementary gids: %v", err)
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETUID, uintptr(*uid), 0, 0); e != 0 {
			return fail("Failed to set uid to %d: %v", *uid, e)
		}
	}
	if caps {
		if err := applyCapabilities(li); err != nil {
			return fail("Failed to set process capabilities: %v", err)
		}
	}
	if li.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fail("Failed to set NO_NEW_PRIVS: %v", err)
		}
	}
	// A change of credentials clears the parent-death signal; the command still must not outlive the
	// agent that launched it.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	if len(li.Argv) == 0 {
		return fail("Failed to execute '': no command")
	}
	name := li.Argv[0]
	if li.Executable != "" {
		name = li.Executable
	}
	exe, err := lookPath(name, li.WorkingDirectory, cfg.Env)
	if err != nil {
		return fail("Failed to execute '%s': %v", name, err)
	}
	err = unix.Exec(exe, li.Argv, cfg.Env)
	return fail("Failed to execute '%s': %v", exe, err)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func lookupError(err error) string {
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		return "not found"
	}
	return err.Error()
}

func setgroups(groups []int) error {
	gs := make([]uint32, len(groups))
	for i, g := range groups {
		gs[i] = uint32(g)
	}
	var p unsafe.Pointer
	if len(gs) > 0 {
		p = unsafe.Pointer(&gs[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gs)), uintptr(p), 0); e != 0 {
		return e
	}
	return nil
}

// lookPath is execvpe's search: a name with a slash as is, else the command's PATH (glibc's default
// "/bin:/usr/bin" without one); Mesos first tries the working directory for a relative name.
func lookPath(name, workdir string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	if workdir != "" {
		p := filepath.Join(workdir, name)
		if isExecutable(p) {
			return p, nil
		}
	}
	path := "/bin:/usr/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", unix.ENOENT
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// doMount is Mesos' prepareMounts for one ContainerMountInfo: the target is created when missing
// (a directory, or a file for a file source), then mounted; a read-only bind mount is remounted
// read-only, since MS_RDONLY is ignored by the bind itself.
func doMount(m Mount) error {
	if _, err := os.Lstat(m.Target); errors.Is(err, os.ErrNotExist) {
		fileSource := false
		if m.Type == "" && m.Source != "" {
			if st, err := os.Stat(m.Source); err == nil && !st.IsDir() {
				fileSource = true
			}
		}
		if fileSource {
			if err := os.MkdirAll(filepath.Dir(m.Target), 0o755); err != nil {
				return fmt.Errorf("Failed to create mount target directory '%s': %v", filepath.Dir(m.Target), err)
			}
			f, err := os.OpenFile(m.Target, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("Failed to create mount target '%s': %v", m.Target, err)
			}
			f.Close()
		} else if err := os.MkdirAll(m.Target, 0o755); err != nil {
			return fmt.Errorf("Failed to create mount target directory '%s': %v", m.Target, err)
		}
	}
	flags := m.Flags
	if flags&unix.MS_MOVE == 0 && m.Type == "" {
		flags |= unix.MS_BIND
	}
	if err := unix.Mount(m.Source, m.Target, m.Type, flags, m.Options); err != nil {
		b, _ := json.Marshal(m)
		return fmt.Errorf("Failed to mount '%s': %v", b, err)
	}
	if flags&unix.MS_BIND != 0 && flags&unix.MS_RDONLY != 0 {
		if err := unix.Mount("", m.Target, "", flags|unix.MS_REMOUNT, ""); err != nil {
			b, _ := json.Marshal(m)
			return fmt.Errorf("Failed to mount '%s': %v", b, err)
		}
	}
	return nil
}

// maskPath hides a path: /dev/null over a file, an empty read-only tmpfs over a directory.
func maskPath(p string) error {
	st, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("Failed to mask '%s': %v", p, err)
	}
	if st.IsDir() {
		err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "")
	} else {
		err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
	}
	if err != nil {
		return fmt.Errorf("Failed to mask '%s': %v", p, err)
	}
	return nil
}

// enterChroot is fs::chroot::enter: a tmpfs at /tmp of the new root holds the old root's mount point,
// pivot_root, chroot ".", chdir "/", the old root detached and /tmp unmounted again. The /dev links
// are filesystem/linux's file operations.
func enterChroot(root string) error {
	tmp := filepath.Join(root, "tmp")
	if err := os.MkdirAll(tmp, 0o1777); err != nil {
		return fmt.Errorf("Failed to create 'tmpfs' mount point at '%s': %v", tmp, err)
	}
	if err := unix.Mount("tmpfs", tmp, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("Failed to mount the temporary tmpfs at /tmp in new root: %v", err)
	}
	old, err := os.MkdirTemp(tmp, "._old_root_.")
	if err != nil {
		return fmt.Errorf("Failed to create mount point for old root: %v", err)
	}
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("Failed to chdir to new root: %v", err)
	}
	if err := unix.PivotRoot(root, old); err != nil {
		return fmt.Errorf("Failed to pivot to new root: %v", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("Failed to chroot to new root: %v", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("Failed to chdir to new root: %v", err)
	}
	relOld := strings.TrimPrefix(old, root)
	_ = unix.Unmount(relOld, unix.MNT_DETACH)
	_ = os.Remove(relOld)
	if err := unix.Unmount("/tmp", 0); err != nil {
		return fmt.Errorf("Failed to umount /tmp in the chroot: %v", err)
	}
	for link, target := range map[string]string{
		"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
		"/dev/stderr": "/proc/self/fd/2", "/dev/ptmx": "pts/ptmx",
	} {
		if _, err := os.Lstat(filepath.Dir(link)); err == nil {
			_ = os.Symlink(target, link)
		}
	}
	return nil
}
