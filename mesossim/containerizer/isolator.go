// Package containerizer is the simulated agent's Mesos containerizer: a Linux launcher that starts
// every container through a launch helper (Mesos' `mesos-containerizer launch`), and isolators with
// Mesos' names, one file each, composed the way MesosContainerizer composes them: every isolator
// prepares a container (adding to its LaunchInfo), isolates it once its helper exists and before the
// command runs, may watch it for a limitation (an OOM kill), reports usage and status, applies updates,
// and cleans up after it. The agent's --isolation flag chooses them by name.
//
// This file is the contract between the launcher and the isolators (see docs/design.md, "The simulated
// agent's containerizer"); the pod network (network/cni) and the container host isolators both build on
// it.
package containerizer

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Container is what isolators see of a container: Mesos' slave::ContainerConfig plus the agent's
// bookkeeping. The launcher fills it before Prepare; isolators must treat it as read-only except for the
// fields documented as theirs.
type Container struct {
	ID  mesos.ContainerID
	Key string // the chain of IDs from the root container, joined by "/"
	// Parent is the parent container for a nested one (nil for an executor's or a standalone container).
	Parent *Container
	// Standalone marks a container of a standalone tree: a top-level container launched through the
	// agent API (LAUNCH_CONTAINER without parent, no executor) and the containers nested in it. Isolators
	// that do not support standalone containers skip the whole tree (MesosContainerizerProcess::
	// isSupportedByIsolator).
	Standalone bool
	// Debug marks a container of Mesos' DEBUG class (LAUNCH_NESTED_CONTAINER_SESSION): it enters its
	// parent's namespaces instead of getting its own, and has no rootfs or volumes.
	Debug bool
	// Sandbox is the container's sandbox directory on the host (MESOS_SANDBOX inside it is /mnt/mesos/sandbox
	// when the container has its own root filesystem, as in Mesos).
	Sandbox string
	// Command is the CommandInfo as launched (after docker/runtime merged the image's config).
	Command mesos.CommandInfo
	// Info is the ContainerInfo of the launch (nil when none was given).
	Info *mesos.ContainerInfo
	// Resources and Limits are the container's resources: an executor's ExecutorInfo.resources plus
	// its tasks', or a nested container's LAUNCH_CONTAINER resources/limits (Mesos >= 1.9).
	Resources []mesos.Resource
	Limits    map[string]mesos.Value_Scalar
	// User is the user the command runs as (CommandInfo.user, else the framework's user, as in Mesos).
	User string
	// Image is the provisioned image's config (nil without an image); Rootfs its root filesystem on the
	// host, set by the provisioner before Prepare.
	Image  *v1.Config
	Rootfs string

	// Pid is the launch helper's pid in the agent's pid namespace (set before Isolate). After the
	// helper execs, it is the command's pid.
	Pid int

	// Values an isolator keeps between calls for this container, under its own name.
	State map[string]any
}

// Namespace names as in /proc/<pid>/ns and Mesos' clone/enter namespace lists.
const (
	NamespaceMount = "mnt"
	NamespacePID   = "pid"
	NamespaceNet   = "net"
	NamespaceUTS   = "uts"
	NamespaceIPC   = "ipc"
)

// Mount is one mount the helper makes inside the container's mount namespace, in order, before it
// changes root (Mesos' ContainerMountInfo). Target is an absolute host path: with a root filesystem it
// lies under Container.Rootfs.
type Mount struct {
	Source  string  `json:"source,omitempty"`
	Target  string  `json:"target"`
	Type    string  `json:"type,omitempty"` // "" for a bind mount
	Flags   uintptr `json:"flags,omitempty"`
	Options string  `json:"options,omitempty"`
	// CreateTarget makes the target (a directory, or an empty file when Source is a file) first.
	CreateTarget bool `json:"createTarget,omitempty"`
}

// LaunchInfo is what the isolators ask of the launch helper: Mesos' ContainerLaunchInfo. The launcher
// merges the isolators' contributions in --isolation order (environment: later wins; lists append; a
// scalar set twice is an error, as Mesos refuses conflicting launch infos) and hands the result to the
// helper, which applies it in Mesos' order: enter/clone namespaces, mounts, root change, working
// directory, groups and user, capabilities and no_new_privs, rlimits, then exec of Argv.
type LaunchInfo struct {
	Environment map[string]string `json:"environment,omitempty"`
	// Rootfs is the root the helper pivots into (empty: the host's root).
	Rootfs string `json:"rootfs,omitempty"`
	// CloneNamespaces are namespaces the container gets new; EnterNamespaces map a namespace to the pid
	// whose namespace it joins (a nested container joins its parent's network namespace, for example).
	CloneNamespaces []string       `json:"cloneNamespaces,omitempty"`
	EnterNamespaces map[string]int `json:"enterNamespaces,omitempty"`
	Mounts          []Mount        `json:"mounts,omitempty"`
	// IsolateMounts are made before Mounts: in Mesos, network/cni mounts a container's /etc/hosts,
	// /etc/hostname and /etc/resolv.conf from isolate() (its network-cni-setup subcommand in the
	// container's mount namespace), before the launch helper applies ContainerLaunchInfo.mounts, so a
	// volume at one of these paths wins.
	IsolateMounts []Mount `json:"isolateMounts,omitempty"`
	// MaskedPaths are hidden from the container (bind-mounted over with /dev/null or an empty tmpfs).
	MaskedPaths      []string `json:"maskedPaths,omitempty"`
	WorkingDirectory string   `json:"workingDirectory,omitempty"`
	// UID/GID/Groups, when set, are the identity the command runs as; User names it for messages.
	User   string   `json:"user,omitempty"`
	UID    *uint32  `json:"uid,omitempty"`
	GID    *uint32  `json:"gid,omitempty"`
	Groups []uint32 `json:"groups,omitempty"`
	// EffectiveCapabilities and BoundingCapabilities are Mesos' CapabilityInfo names (e.g. "NET_ADMIN");
	// nil leaves the helper's own, an empty set is none (so not omitempty: a container dropping ALL).
	EffectiveCapabilities []string `json:"effectiveCapabilities"`
	BoundingCapabilities  []string `json:"boundingCapabilities"`
	NoNewPrivileges       bool     `json:"noNewPrivileges,omitempty"`
	// Hostname is set in a new UTS namespace.
	Hostname string `json:"hostname,omitempty"`
	// Argv is the command to exec (argv[0] resolved against PATH inside the container's root).
	Argv []string `json:"argv"`
	// Executable, when set, is what is exec'd with Argv (Mesos execs CommandInfo.value with
	// CommandInfo.arguments as argv, and /bin/sh for a shell command).
	Executable string `json:"executable,omitempty"`
}

// Limitation ends a container: Mesos' ContainerLimitation (an OOM kill is REASON_CONTAINER_LIMITATION_MEMORY
// with the message "Memory limit exceeded: ...").
type Limitation struct {
	Reason    mesos.TaskStatus_Reason
	Message   string
	Resources []mesos.Resource
}

// Isolator is one of Mesos' isolators. Every method may be called from any goroutine; calls for one
// container are never concurrent. Errors are the texts Mesos gives (they reach clients as the launch's
// 400 body or a task's message).
type Isolator interface {
	// Name is the --isolation name, e.g. "filesystem/linux", "cgroups/mem", "network/cni".
	Name() string
	// Prepare validates the container and adds what the isolator needs to the launch. It runs before
	// the helper is forked.
	Prepare(ctx context.Context, c *Container, li *LaunchInfo) error
	// Isolate runs once the helper exists (c.Pid) and before it execs the command: e.g. move it into a
	// cgroup or attach its network namespace.
	Isolate(ctx context.Context, c *Container) error
	// Watch returns a channel that delivers at most one limitation for the container; nil if the isolator
	// never limits.
	Watch(c *Container) <-chan Limitation
	// Update applies new resources and limits to a running container.
	Update(ctx context.Context, c *Container, resources []mesos.Resource, limits map[string]mesos.Value_Scalar) error
	// Usage adds the isolator's statistics to st (GET_CONTAINERS, /monitor/statistics).
	Usage(ctx context.Context, c *Container, st *mesos.ResourceStatistics) error
	// Status adds the isolator's part of the container's status (e.g. network_infos with IPs) to cs.
	Status(ctx context.Context, c *Container, cs *mesos.ContainerStatus) error
	// Cleanup releases everything the isolator made for the container. It runs after the container's
	// processes are gone, also after a failed launch, and must be idempotent.
	Cleanup(ctx context.Context, c *Container) error
}

// StandaloneSupporter is implemented by an isolator that says whether it applies to standalone
// containers (Mesos' Isolator::supportsStandalone). Unlike Mesos, whose default is false, an isolator
// without the method applies to them: every isolator of the simulator but network/cni supports them in
// Mesos too (cgroups, filesystem/linux, docker/runtime, namespaces/pid, linux/*, volume/*).
type StandaloneSupporter interface {
	SupportsStandalone() bool
}

// supports is isSupportedByIsolator for the nesting the simulator's isolators all support.
func supports(iso Isolator, c *Container) bool {
	if s, ok := iso.(StandaloneSupporter); ok && c.Standalone {
		return s.SupportsStandalone()
	}
	return true
}

// Base gives an isolator no-op methods for what it does not do; embed it and override the rest.
type Base struct{}

func (Base) Prepare(context.Context, *Container, *LaunchInfo) error { return nil }
func (Base) Isolate(context.Context, *Container) error              { return nil }
func (Base) Watch(*Container) <-chan Limitation                     { return nil }
func (Base) Update(context.Context, *Container, []mesos.Resource, map[string]mesos.Value_Scalar) error {
	return nil
}
func (Base) Usage(context.Context, *Container, *mesos.ResourceStatistics) error { return nil }
func (Base) Status(context.Context, *Container, *mesos.ContainerStatus) error   { return nil }
func (Base) Cleanup(context.Context, *Container) error                          { return nil }
