package containerizer

import (
	"context"
	"errors"

	"golang.org/x/sys/unix"
)

func init() {
	Register("namespaces/pid", func(f Flags) (Isolator, error) { return &pidNamespace{flags: f}, nil })
}

// pidNamespace is Mesos' namespaces/pid (isolators/namespaces/pid.cpp): every container gets its own pid
// namespace with its own /proc, except a nested one whose LinuxInfo.share_pid_namespace asks for its
// parent's, and DEBUG containers, which join their parent's. A top-level container may share the
// agent's only without --disallow_sharing_agent_pid_namespace.
type pidNamespace struct {
	Base
	flags Flags
}

func (*pidNamespace) Name() string { return "namespaces/pid" }

func (p *pidNamespace) Prepare(_ context.Context, c *Container, li *LaunchInfo) error {
	share := c.Info.GetLinuxInfo().GetSharePIDNamespace()
	if c.Parent != nil {
		li.EnterNamespaces = map[string]int{NamespacePID: c.Parent.Pid}
		if c.Debug {
			return nil
		}
	} else if p.flags.DisallowSharingAgentPidNamespace && share {
		return errors.New("Sharing agent pid namespace with top-level container is not allowed")
	}
	if !share {
		li.CloneNamespaces = append(li.CloneNamespaces, NamespacePID)
		li.Mounts = append(li.Mounts, Mount{Source: "proc", Target: "/proc", Type: "proc",
			Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC})
	}
	return nil
}
