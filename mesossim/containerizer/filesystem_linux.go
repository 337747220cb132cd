package containerizer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

func init() {
	Register("filesystem/linux", func(f Flags) (Isolator, error) {
		// "Make sure that slave's working directory is in a shared mount" (LinuxFilesystemIsolatorProcess::
		// create).
		real, err := acquireSharedWorkDir(f.WorkDir)
		if err != nil {
			return nil, err
		}
		return &linuxFilesystem{flags: f, workDir: real}, nil
	})
}

// linuxFilesystem is Mesos' filesystem/linux (isolators/filesystem/linux.cpp): every container gets its
// own mount namespace; one with a root filesystem gets it bind-mounted on itself (pivot_root needs a
// mount point), /proc, /sys, /dev with the standard devices, /dev/pts and /dev/shm, its sandbox at
// --sandbox_directory and Mesos' masked paths. A DEBUG container enters its parent's mount namespace.
type linuxFilesystem struct {
	Base
	flags   Flags
	workDir string // real path of the shared work_dir, released by Close
	once    sync.Once
}

func (*linuxFilesystem) Name() string { return "filesystem/linux" }

// rootfsMounts are ROOTFS_CONTAINER_MOUNTS: targets (and absolute sources) are inside the rootfs.
var rootfsMounts = []Mount{
	{Source: "proc", Target: "/proc", Type: "proc", Flags: unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV},
	{Source: "/proc/bus", Target: "/proc/bus", Flags: unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV},
	{Source: "/proc/fs", Target: "/proc/fs", Flags: unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV},
	{Source: "/proc/irq", Target: "/proc/irq", Flags: unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV},
	{Source: "/proc/sys", Target: "/proc/sys", Flags: unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV},
	{Source: "/proc/sysrq-trigger", Target: "/proc/sysrq-trigger", Flags: unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV},
	{Source: "sysfs", Target: "/sys", Type: "sysfs", Flags: unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV},
	{Source: "tmpfs", Target: "/sys/fs/cgroup", Type: "tmpfs", Options: "mode=755", Flags: unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV},
	{Source: "tmpfs", Target: "/dev", Type: "tmpfs", Options: "mode=755", Flags: unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_STRICTATIME},
	{Source: "devpts", Target: "/dev/pts", Type: "devpts", Options: "newinstance,ptmxmode=0666,mode=0620,gid=5", Flags: unix.MS_NOSUID | unix.MS_NOEXEC},
}

// maskedPaths are ROOTFS_MASKED_PATHS.
var maskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/key-users", "/proc/latency_stats",
	"/proc/sched_debug", "/proc/scsi", "/proc/timer_list", "/proc/timer_stats", "/sys/firmware",
}

// standardDevices are the devices makeStandardDevices gives a container with a rootfs; the simulator
// bind-mounts the host's nodes instead of copying them into a devices directory first.
var standardDevices = []string{"full", "null", "random", "tty", "urandom", "zero"}

func (l *linuxFilesystem) Prepare(_ context.Context, c *Container, li *LaunchInfo) error {
	if c.Debug {
		if c.Rootfs != "" {
			return errors.New("A 'rootfs' cannot be set for DEBUG containers")
		}
		if len(volumes(c)) > 0 {
			return errors.New("Volumes not supported for DEBUG containers")
		}
		if c.Parent != nil {
			li.EnterNamespaces = map[string]int{NamespaceMount: c.Parent.Pid}
		}
		return nil
	}
	li.CloneNamespaces = append(li.CloneNamespaces, NamespaceMount)
	if c.Rootfs == "" {
		return nil
	}
	root := c.Rootfs
	li.Mounts = append(li.Mounts, Mount{Source: root, Target: root, Flags: unix.MS_REC | unix.MS_BIND})
	for _, m := range rootfsMounts {
		if m.Type == "" && strings.HasPrefix(m.Source, "/proc/") && !pathExists(m.Source) {
			continue // not in this kernel's /proc
		}
		m.Target = filepath.Join(root, m.Target)
		if filepath.IsAbs(m.Source) {
			m.Source = filepath.Join(root, m.Source)
		}
		li.Mounts = append(li.Mounts, m)
	}
	if !strings.Contains(l.flags.Isolation, "namespaces/ipc") {
		li.Mounts = append(li.Mounts, Mount{Source: "tmpfs", Target: filepath.Join(root, "/dev/shm"), Type: "tmpfs",
			Options: "mode=1777", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_STRICTATIME})
	}
	for _, d := range standardDevices {
		li.Mounts = append(li.Mounts, Mount{Source: "/dev/" + d, Target: filepath.Join(root, "dev", d),
			Flags: unix.MS_BIND, CreateTarget: true})
	}
	sandbox := filepath.Join(root, l.flags.SandboxDirectory)
	if err := os.MkdirAll(sandbox, 0o755); err != nil {
		return errors.New("Failed to create sandbox mount point at '" + sandbox + "': " + errText(err))
	}
	li.Mounts = append(li.Mounts, Mount{Source: c.Sandbox, Target: sandbox, Flags: unix.MS_BIND | unix.MS_REC})
	for _, p := range maskedPaths {
		li.MaskedPaths = append(li.MaskedPaths, filepath.Join(root, p))
	}
	return nil
}

// Cleanup unmounts, in the agent's mount namespace, everything under the container's sandbox (Mesos'
// cleanup: persistent volumes there, and what a container's BIDIRECTIONAL mounts left, e.g. a tmpfs).
// A DEBUG container has no sandbox of its own and was never prepared by Mesos' isolator.
func (l *linuxFilesystem) Cleanup(_ context.Context, c *Container) error {
	if c.Debug || c.Sandbox == "" {
		return nil
	}
	return unmountUnder(c.Sandbox)
}

// Close releases the work_dir's shared mount (the simulator's addition: see sharedWorkDirs).
func (l *linuxFilesystem) Close() error {
	var err error
	l.once.Do(func() { err = releaseSharedWorkDir(l.workDir) })
	return err
}
