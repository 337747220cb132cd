package containerizer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
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
// stage that has not exec'd yet is waited for: an exec right after the launch (a pod just Running)
// would join a stage's pid namespace, not the container's, and its /proc/self would not resolve. On a
// loaded host a stage takes seconds (the 500 ms this waited once were not enough).
func commandPid(pid int) int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		leaf := pid
		for depth := 0; depth < 4 && isHelper(leaf); depth++ {
			child := liveChild(leaf)
			if child == 0 {
				break
			}
			leaf = child
		}
		if time.Now().After(deadline) || (!isHelper(leaf) && (hasCmdline(leaf) || (leaf == pid && !alive(pid)))) {
			return leaf
		}
		// A helper stage, or a process without a command line: inside its execve, or a descendant that
		// exited after liveChild saw it (the Go runtime's short-lived probe child, on a loaded host).
		time.Sleep(5 * time.Millisecond)
	}
}

func hasCmdline(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && len(b) > 0
}

// isHelper reports whether pid is a stage of the launch helper, or a process forked to become one that
// has not exec'd it yet (it still has the agent's command line).
func isHelper(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && (bytes.HasPrefix(b, []byte(HelperName+"\x00"+HelperCommand+"\x00")) || bytes.Equal(b, ownCmdline()))
}

var ownCmdline = sync.OnceValue(func() []byte {
	b, _ := os.ReadFile("/proc/self/cmdline")
	return b
})

// liveChild is a child of pid that is running (a helper stage has one), 0 if none. Dead ones are
// skipped: Go's runtime forks a child that exits at once the first time a process starts another
// (its CLONE_PIDFD probe), and that zombie, whose cmdline is empty, would pass for the command.
func liveChild(pid int) int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil && alive(n) {
				return n
			}
		}
	}
	return 0
}

// alive is whether pid exists and is neither a zombie nor exiting.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses, which may itself hold ") ".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	switch b[i+2] {
	case 'Z', 'X', 'x':
		return false
	}
	return true
}
