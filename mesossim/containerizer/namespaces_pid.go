package containerizer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

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
		li.EnterNamespaces = map[string]int{NamespacePID: commandPid(c.Parent.Pid)}
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

// commandPid is the process that runs the command of the container whose helper is pid, whose pid
// namespace is the container's: Mesos' container pid (its launcher clones the command's process into
// the container's namespaces). Here a container nested in its parent's pid namespace runs its command
// in a later stage of the helper (enterNamespaces, forkStage), a descendant of pid, which would
// otherwise have a child (a DEBUG session) join the agent's or the grandparent's pid namespace. A
// stage that has not exec'd yet is waited for briefly.
func commandPid(pid int) int {
	deadline := time.Now().Add(500 * time.Millisecond)
	for {
		leaf := pid
		for depth := 0; depth < 4 && isHelper(leaf); depth++ {
			child := firstChild(leaf)
			if child == 0 {
				break
			}
			leaf = child
		}
		if !isHelper(leaf) || time.Now().After(deadline) {
			return leaf
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isHelper(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.HasPrefix(b, []byte(HelperName+"\x00"+HelperCommand+"\x00"))
}

// firstChild is a child of pid (a helper stage has one), 0 if none.
func firstChild(pid int) int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				return n
			}
		}
	}
	return 0
}
