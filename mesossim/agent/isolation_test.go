package agent

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"
)

const linuxIsolation = "filesystem/linux,namespaces/pid,linux/capabilities"

// newIsolatingFixture is an agent with Linux isolators: as root, in this test binary (which hosts the
// launch helper), it runs nested containers through the containerizer.
func newIsolatingFixture(t *testing.T) *nestedFixture {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root (namespaces, mounts); without it the agent runs process mode")
	}
	f := newNestedFixtureWith(t, func(c *Config) { c.Isolation = linuxIsolation })
	if !f.a.Isolating() {
		t.Fatal("an agent with Linux isolators, as root, in a binary hosting the launch helper, does not isolate")
	}
	f.api = httpagent.NewSender(httpcli.New(httpcli.Endpoint("http://" + f.a.Endpoint() + "/api/v1")).Send)
	return f
}

func sandboxParentVolume(path, containerPath string) mesos.Volume {
	return mesos.Volume{
		Mode:          mesos.RW.Enum(),
		ContainerPath: containerPath,
		Source: &mesos.Volume_Source{Type: mesos.Volume_Source_SANDBOX_PATH, SandboxPath: &mesos.Volume_Source_SandboxPath{
			Type: mesos.Volume_Source_SandboxPath_PARENT, Path: path,
		}},
	}
}

func mesosContainer(volumes ...mesos.Volume) *mesos.ContainerInfo {
	return &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), Volumes: volumes}
}

// Two nested containers of one executor share a SANDBOX_PATH PARENT volume (a pod's emptyDir), each in
// its own pid namespace.
func TestIsolatedNestedContainersShareAVolume(t *testing.T) {
	f := newIsolatingFixture(t)
	vol := mesosContainer(sandboxParentVolume("volumes/cache", "cache"))
	code, body, status, _, stderr := f.runNested(t, "writer", shell("echo shared > cache/file; echo pid=$$"), vol)
	if code != http.StatusOK || status != 0 {
		t.Fatalf("writer: %d %q, status %d, stderr %q", code, body, status, stderr)
	}
	code, body, status, stdout, stderr := f.runNested(t, "reader", shell("cat cache/file; echo pid=$$"), vol)
	if code != http.StatusOK || status != 0 {
		t.Fatalf("reader: %d %q, status %d, stderr %q", code, body, status, stderr)
	}
	if stdout != "shared\npid=1\n" {
		t.Errorf("reader's output %q, want the writer's file and pid 1 of its own namespace", stdout)
	}
	if b, _ := os.ReadFile(filepath.Join(f.dir, "volumes", "cache", "file")); string(b) != "shared\n" {
		t.Errorf("the volume is not the executor's sandbox directory: %q", b)
	}
}

// An exec session (LAUNCH_NESTED_CONTAINER_SESSION) is a DEBUG container in the target container's mount
// and pid namespaces: it sees the container's volume mounts and processes, not the host's.
func TestIsolatedSessionEntersTheContainer(t *testing.T) {
	f := newIsolatingFixture(t)
	app := f.child("app")
	if err := f.launch(app, shell("echo hi > vol/marker; exec sleep 1000"), mesosContainer(sandboxParentVolume("volumes/v", "vol"))); err != nil {
		t.Fatalf("LAUNCH_NESTED_CONTAINER: %v", err)
	}
	defer func() {
		_ = agentcalls.SendNoData(context.Background(), f.api, agentcalls.NonStreaming(agentcalls.KillNestedContainer(app)))
	}()
	waitFor(t, "the container's marker", func() bool {
		_, err := os.Stat(filepath.Join(f.dir, "volumes", "v", "marker"))
		return err == nil
	})
	if _, err := os.Stat(filepath.Join(f.dir, "containers", "app", "vol", "marker")); err == nil {
		t.Fatal("the container's volume mount is visible on the host")
	}
	session := mesos.ContainerID{Value: "exec", Parent: &app}
	resp, err := f.api.Send(context.Background(), agentcalls.NonStreaming(agentcalls.LaunchNestedContainerSession(session,
		shell(`cat vol/marker; tr '\0' ' ' < /proc/1/cmdline; echo; ls /proc | grep -c '^[0-9]'`), nil)))
	if err != nil {
		t.Fatalf("LAUNCH_NESTED_CONTAINER_SESSION: %v", err)
	}
	defer resp.Close()
	stdout, stderr := readOutput(t, decoderOf(resp))
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 || lines[0] != "hi" || strings.TrimSpace(lines[1]) != "sleep 1000" {
		t.Fatalf("session output %q (stderr %q): want the container's volume file and its pid 1 `sleep 1000`", stdout, stderr)
	}
	var n int
	fmt.Sscan(lines[2], &n)
	if n > 5 {
		t.Errorf("the session sees %d processes: not the container's pid namespace", n)
	}
}

// The agent refuses what Mesos' isolators refuse, with their texts, as the launch's 400.
func TestIsolatedRefusals(t *testing.T) {
	f := newIsolatingFixture(t)
	missing := filepath.Join(t.TempDir(), "missing")
	hostPath := mesos.Volume{Mode: mesos.RW.Enum(), ContainerPath: "data", Source: &mesos.Volume_Source{
		Type: mesos.Volume_Source_HOST_PATH, HostPath: &mesos.Volume_Source_HostPath{Path: missing}}}
	code, body, _, _, _ := f.runNested(t, "bad-volume", shell("true"), mesosContainer(hostPath))
	if want := "Path '" + missing + "' in HOST_PATH volume does not exist"; code != http.StatusBadRequest || body != want {
		t.Errorf("launch = %d %q, want 400 %q", code, body, want)
	}
	docker := &mesos.ContainerInfo{Type: mesos.ContainerInfo_DOCKER.Enum(), Docker: &mesos.ContainerInfo_DockerInfo{Image: "busybox"}}
	code, body, _, _, _ = f.runNested(t, "docker", shell("true"), docker)
	if want := "The provided ContainerInfo is not supported"; code != http.StatusBadRequest || body != want {
		t.Errorf("launch = %d %q, want 400 %q", code, body, want)
	}
}

// Launching and killing 200 nested containers (pods churned) leaves no mount and no process behind.
func TestIsolatedChurnLeavesNothing(t *testing.T) {
	f := newIsolatingFixture(t)
	// Only the agent's own mounts: the test shares the host's mount namespace with whatever else runs
	// on the machine (other packages' tests mount and unmount while this one churns).
	mountinfo := func() []string { return mountsUnder(t, f.a.cfg.WorkDir) }
	vol := mesosContainer(sandboxParentVolume("volumes/churn", "churn"))
	// The first launch makes the volume's directories.
	if code, body, _, _, _ := f.runNested(t, "warm", shell("true"), vol); code != http.StatusOK {
		t.Fatalf("launch: %d %s", code, body)
	}
	mounts, procs := mountinfo(), countProcesses(t, f.a.cfg.WorkDir, "sleep 4242")
	for i := 0; i < 200; i++ {
		c := f.child(fmt.Sprintf("churn-%d", i))
		if err := f.launch(c, shell("sleep 4242 & exec sleep 4242"), vol); err != nil {
			t.Fatalf("LAUNCH_NESTED_CONTAINER: %v", err)
		}
		if err := agentcalls.SendNoData(context.Background(), f.api, agentcalls.NonStreaming(agentcalls.KillNestedContainer(c))); err != nil {
			t.Fatalf("KILL_NESTED_CONTAINER: %v", err)
		}
		if _, err := f.wait(t, agentcalls.WaitNestedContainer(c)); err != nil {
			t.Fatal(err)
		}
	}
	if after := mountinfo(); !slices.Equal(after, mounts) {
		t.Errorf("the agent's mounts before:\n%s\nafter:\n%s", strings.Join(mounts, "\n"), strings.Join(after, "\n"))
	}
	if n := countProcesses(t, f.a.cfg.WorkDir, "sleep 4242"); n != procs {
		t.Errorf("%d `sleep 4242` before, %d after", procs, n)
	}
}

// mountsUnder lists the mount points of the test's mount namespace at or below dir (symbolic links
// resolved), sorted.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		// proc_pid_mountinfo(5): the fifth field, with space, tab, newline and backslash octal-escaped.
		mp := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	slices.Sort(out)
	return out
}

// mountsUnder sees the mounts below its directory and no others.
func TestMountsUnder(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	dir, other := t.TempDir(), t.TempDir()
	inner := filepath.Join(dir, "a b")
	for _, p := range []string{inner, filepath.Join(other, "x")} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", p, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Unmount(p, unix.MNT_DETACH) })
	}
	real, _ := filepath.EvalSymlinks(inner)
	if got := mountsUnder(t, dir); !slices.Equal(got, []string{real}) {
		t.Errorf("mountsUnder(%s) = %q, want [%q]", dir, got, real)
	}
}

// countProcesses counts the host's processes whose command line is cmdline and whose working
// directory is below dir (an agent's sandboxes: not another test's processes).
func countProcesses(t *testing.T, dir, cmdline string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(cmdline, " ", "\x00") + "\x00"
	n := 0
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || string(b) != want {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && strings.HasPrefix(cwd, dir+"/") {
			n++
		}
	}
	return n
}

// A custom executor's container runs through the containerizer too: in its own mount and pid
// namespaces, and its nested containers join its network namespace.
func TestIsolatedExecutorContainer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root (namespaces, mounts); without it the agent runs process mode")
	}
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) { c.Isolation = linuxIsolation })
	a.Launch(testFramework(false), processExecutor("exec-1", nil), []mesos.TaskInfo{dataTask("t1", "nested:echo nested-ran")}, false)
	waitFor(t, "the nested task finished", func() bool {
		states := m.states("t1")
		return len(states) > 0 && states[len(states)-1] == mesos.TASK_FINISHED.String()
	})
	a.Launch(testFramework(false), processExecutor("exec-1", nil), []mesos.TaskInfo{dataTask("t2", "wait")}, false)
	waitFor(t, "t2 running", func() bool { return len(m.states("t2")) > 0 })
	var pid string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && string(b) == testExecutorPath+"\x00" {
			pid = e.Name()
		}
	}
	if pid == "" {
		t.Fatal("no executor process found")
	}
	for _, ns := range []string{"mnt", "pid"} {
		mine, _ := os.Readlink("/proc/self/ns/" + ns)
		its, err := os.Readlink(filepath.Join("/proc", pid, "ns", ns))
		if err != nil || its == mine {
			t.Errorf("the executor's %s namespace %q (%v) is the agent's %q", ns, its, err, mine)
		}
	}
}

// Without root an agent with Linux isolators says so and runs containers as host processes; the
// default --isolation never isolates.
func TestIsolationFallsBackToProcessMode(t *testing.T) {
	defer func(f func() int) { geteuid = f }(geteuid)
	geteuid = func() int { return 1000 }
	log, hook := logtest.NewNullLogger()
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) { c.Isolation = linuxIsolation; c.Log = log })
	if a.Isolating() {
		t.Fatal("an agent without root isolates")
	}
	var warned bool
	for _, e := range hook.AllEntries() {
		warned = warned || (e.Level == logrus.WarnLevel && strings.Contains(e.Message, "not running as root") && strings.Contains(e.Message, "process mode"))
	}
	if !warned {
		t.Errorf("no warning about process mode: %v", hook.AllEntries())
	}
	geteuid = func() int { return 0 }
	if a := newTestAgent(t, m, nil); a.Isolating() {
		t.Error("the default --isolation isolates")
	}
}
