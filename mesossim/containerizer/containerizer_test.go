package containerizer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// requireRoot skips tests that need to create namespaces and mounts.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the Linux launcher needs root (namespaces, mounts, pivot_root); run as root to test it")
	}
}

// busyboxRootfs builds a root filesystem of a statically linked busybox (apt-get install busybox-static),
// with a marker file only the container has.
func busyboxRootfs(t testing.TB) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("no busybox on this host: apt-get install -y busybox-static")
	}
	if out, _ := exec.Command("file", "-L", bb).Output(); len(out) > 0 && !bytes.Contains(out, []byte("static")) {
		t.Skip("busybox is not statically linked: apt-get install -y busybox-static")
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "cat", "ls", "id", "ps", "sleep", "echo", "touch", "test", "pwd", "grep", "true", "hostname"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "only-in-image"), []byte("from the image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func newTestContainerizer(t testing.TB, isolation string, mutate ...func(*Flags)) *Containerizer {
	t.Helper()
	f := Flags{Isolation: isolation, WorkDir: t.TempDir()}
	for _, m := range mutate {
		m(&f)
	}
	log := logrus.New()
	log.SetOutput(testWriter{t})
	z, err := New(f, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := z.Close(); err != nil {
			t.Error(err)
		}
	})
	return z
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

const fullIsolation = "filesystem/linux,namespaces/pid,linux/capabilities,docker/runtime"

func shell(script string) mesos.CommandInfo {
	t := true
	return mesos.CommandInfo{Value: &script, Shell: &t}
}

// launched is a container under test with its output files.
type launched struct {
	c       *Container
	w       Waiter
	stdout  string
	stderr  string
	sandbox string
}

func launch(t testing.TB, z *Containerizer, c *Container) (*launched, error) {
	t.Helper()
	if c.Sandbox == "" {
		c.Sandbox = t.TempDir()
	}
	if c.Key == "" {
		c.Key = c.ID.Value
		if c.Parent != nil {
			c.Key = c.Parent.Key + "/" + c.ID.Value
		}
	}
	out, err := os.Create(filepath.Join(c.Sandbox, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	errf, err := os.Create(filepath.Join(c.Sandbox, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	env := map[string]string{"PATH": "/bin:/usr/bin:/sbin:/usr/sbin"}
	w, err := z.Launch(context.Background(), c, env, Stdio{Stdout: out, Stderr: errf})
	if err != nil {
		return nil, err
	}
	return &launched{c: c, w: w, stdout: out.Name(), stderr: errf.Name(), sandbox: c.Sandbox}, nil
}

// wait waits for the container and returns its status and stdout.
func wait(t testing.TB, z *Containerizer, l *launched) (Termination, string) {
	t.Helper()
	select {
	case <-l.w.Done:
	case <-time.After(30 * time.Second):
		t.Fatalf("container %s did not terminate", l.c.Key)
	}
	out, _ := os.ReadFile(l.stdout)
	return l.w.Termination(), string(out)
}

func stderrOf(l *launched) string {
	b, _ := os.ReadFile(l.stderr)
	return string(b)
}

func mustRun(t *testing.T, z *Containerizer, c *Container) string {
	t.Helper()
	l, err := launch(t, z, c)
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	term, out := wait(t, z, l)
	if term.Status != 0 {
		t.Fatalf("container exited with wait status %d; stdout:\n%s\nstderr:\n%s", term.Status, out, stderrOf(l))
	}
	return out
}

func hostPathVolume(host, container string, mode mesos.Volume_Mode) mesos.Volume {
	typ := mesos.Volume_Source_HOST_PATH
	return mesos.Volume{
		Mode:          mode.Enum(),
		ContainerPath: container,
		Source:        &mesos.Volume_Source{Type: typ, HostPath: &mesos.Volume_Source_HostPath{Path: host}},
	}
}

func sandboxPathVolume(kind mesos.Volume_Source_SandboxPath_Type, path, container string) mesos.Volume {
	typ := mesos.Volume_Source_SANDBOX_PATH
	return mesos.Volume{
		Mode:          mesos.RW.Enum(),
		ContainerPath: container,
		Source: &mesos.Volume_Source{Type: typ, SandboxPath: &mesos.Volume_Source_SandboxPath{
			Type: kind, Path: path,
		}},
	}
}

func mesosInfo(volumes ...mesos.Volume) *mesos.ContainerInfo {
	return &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), Volumes: volumes}
}

// A container with a rootfs sees the image's files and its volumes at their container paths (a
// read-only one it cannot write), its sandbox at /mnt/mesos/sandbox, and none of the host's files.
func TestContainerSeesRootfsAndVolumes(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, fullIsolation)
	rootfs := busyboxRootfs(t)
	cfg := t.TempDir()
	secret := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg, "app.conf"), []byte("key=value\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secret, "token"), []byte("s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hostOnly := filepath.Join(t.TempDir(), "host-only")
	if err := os.WriteFile(hostOnly, []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Container{
		ID:     mesos.ContainerID{Value: "rootfs-and-volumes"},
		Rootfs: rootfs,
		Command: shell(`cat /cfg/app.conf /etc/secret/token /etc/only-in-image
touch /cfg/written && echo cfg-writable
touch /etc/secret/written 2>/dev/null && echo secret-writable || echo secret-read-only
test -e ` + hostOnly + ` && echo host-visible || echo host-hidden
test -e /usr/bin/busybox && echo host-usr || echo no-host-usr
echo "sandbox=$MESOS_SANDBOX pwd=$(pwd)"
echo sandbox-file > $MESOS_SANDBOX/from-container`),
		Info: mesosInfo(hostPathVolume(cfg, "/cfg", mesos.RW), hostPathVolume(secret, "/etc/secret", mesos.RO)),
	}
	out := mustRun(t, z, c)
	for _, want := range []string{"key=value", "s3cr3t", "from the image", "cfg-writable", "secret-read-only",
		"host-hidden", "no-host-usr", "sandbox=/mnt/mesos/sandbox pwd=/mnt/mesos/sandbox"} {
		if !strings.Contains(out, want) {
			t.Errorf("container output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg, "written")); err != nil {
		t.Errorf("a write to the read-write volume did not reach the host: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(c.Sandbox, "from-container")); err != nil || string(b) != "sandbox-file\n" {
		t.Errorf("the sandbox at /mnt/mesos/sandbox is not the host's sandbox: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(secret, "written")); err == nil {
		t.Errorf("the read-only volume was written")
	}
}

// The command is pid 1 of its own pid namespace and sees only its own processes in /proc.
func TestContainerHasItsOwnPidNamespace(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, fullIsolation)
	c := &Container{
		ID:      mesos.ContainerID{Value: "pidns"},
		Rootfs:  busyboxRootfs(t),
		Command: shell(`echo "pid=$$"; ls /proc | grep -c '^[0-9]'`),
	}
	out := mustRun(t, z, c)
	lines := strings.Fields(out)
	if len(lines) != 2 || lines[0] != "pid=1" {
		t.Fatalf("want pid=1 and a process count, got %q", out)
	}
	if n, _ := strconv.Atoi(lines[1]); n > 3 {
		t.Errorf("the container sees %d processes in /proc, want only its own sh, ls and grep", n)
	}
}

// CommandInfo.user is looked up by name in the agent's /etc/passwd, as Mesos' launch helper does
// before it changes root, and the command runs with that uid and gid.
func TestContainerRunsAsUser(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, fullIsolation)
	rootfs := busyboxRootfs(t)
	users := []string{"nobody"}
	if u, err := user.LookupId("1000"); err == nil {
		users = append(users, u.Username)
	}
	for _, name := range users {
		u, err := user.Lookup(name)
		if err != nil {
			t.Fatalf("user %s: %v", name, err)
		}
		c := &Container{
			ID:      mesos.ContainerID{Value: "user-" + name},
			Rootfs:  rootfs,
			User:    name,
			Command: shell(`id -u; id -g`),
		}
		if got, want := strings.Fields(mustRun(t, z, c)), []string{u.Uid, u.Gid}; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("user %s: id -u, id -g = %v, want %v", name, got, want)
		}
	}
	// Mesos looks a user up by name only (getpwnam_r): a uid is not a user name.
	unknown := []string{"no-such-user-here"}
	if _, err := user.Lookup("1000"); err != nil {
		unknown = append(unknown, "1000")
	}
	for _, name := range unknown {
		c := &Container{ID: mesos.ContainerID{Value: "user-unknown-" + name}, Rootfs: rootfs, User: name, Command: shell("true")}
		l, err := launch(t, z, c)
		if err != nil {
			t.Fatal(err)
		}
		if term, _ := wait(t, z, l); term.Status == 0 {
			t.Fatalf("a container of the unknown user %q ran", name)
		}
		if want := "Failed to get the uid of user '" + name + "': not found"; !strings.Contains(stderrOf(l), want) {
			t.Errorf("stderr lacks Mesos' %q:\n%s", want, stderrOf(l))
		}
	}
}

// LinuxInfo.effective_capabilities become the command's capability sets, the bounding set is clipped to
// them, and linux/nnp sets no_new_privs.
func TestContainerCapabilitiesAndNoNewPrivs(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, fullIsolation+",linux/nnp")
	info := mesosInfo()
	info.LinuxInfo = &mesos.LinuxInfo{EffectiveCapabilities: &mesos.CapabilityInfo{
		Capabilities: []mesos.CapabilityInfo_Capability{mesos.CapabilityInfo_CHOWN, mesos.CapabilityInfo_NET_RAW},
	}}
	c := &Container{
		ID:      mesos.ContainerID{Value: "caps"},
		Rootfs:  busyboxRootfs(t),
		User:    "nobody",
		Info:    info,
		Command: shell(`grep -E '^(CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status`),
	}
	out := mustRun(t, z, c)
	want := fmt.Sprintf("%016x", uint64(1)<<0|uint64(1)<<13) // CAP_CHOWN, CAP_NET_RAW
	for _, field := range []string{"CapEff", "CapBnd", "CapAmb"} {
		if !strings.Contains(out, field+":\t"+want) {
			t.Errorf("%s is not %s:\n%s", field, want, out)
		}
	}
	if !strings.Contains(out, "NoNewPrivs:\t1") {
		t.Errorf("no_new_privs not set:\n%s", out)
	}

	// A container may not ask for more than the agent's --bounding_capabilities.
	z = newTestContainerizer(t, "filesystem/linux,linux/capabilities", func(f *Flags) { f.BoundingCapabilities = []string{"CHOWN"} })
	_, err := launch(t, z, &Container{ID: mesos.ContainerID{Value: "too-many-caps"}, Info: info, Command: shell("true")})
	if want := "Requested capabilities '{ CHOWN, NET_RAW }', but only '{ CHOWN }' are allowed"; err == nil || err.Error() != want {
		t.Errorf("launch error %v, want %q", err, want)
	}
}

// Empty effective and bounding sets (a pod container that drops ALL) leave a root container no
// capability, in it and in a DEBUG session under it; an absent set is the agent's.
func TestContainerWithNoCapabilities(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, fullIsolation)
	info := mesosInfo()
	info.LinuxInfo = &mesos.LinuxInfo{EffectiveCapabilities: &mesos.CapabilityInfo{}, BoundingCapabilities: &mesos.CapabilityInfo{}}
	const script = `grep -E '^Cap(Eff|Bnd)' /proc/self/status`
	c := &Container{ID: mesos.ContainerID{Value: "no-caps"}, Rootfs: busyboxRootfs(t), Info: info,
		Command: shell(script + "; echo started > $MESOS_SANDBOX/started; exec sleep 1000")}
	l, err := launch(t, z, c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), c.Key) }()
	waitForFile(t, filepath.Join(l.sandbox, "started"))
	none := "CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n"
	if b, _ := os.ReadFile(filepath.Join(l.sandbox, "stdout")); string(b) != none {
		t.Errorf("container without capabilities: %q, want %q", b, none)
	}
	session := &Container{ID: mesos.ContainerID{Value: "exec", Parent: &c.ID}, Parent: c, Debug: true, Sandbox: t.TempDir(),
		Info: info, Command: shell(script)}
	if got := mustRun(t, z, session); got != none {
		t.Errorf("session without capabilities: %q, want %q", got, none)
	}
	// As a non-root user too (metrics-server's runAsUser with drop ALL).
	asNobody := &Container{ID: mesos.ContainerID{Value: "no-caps-nobody"}, Rootfs: busyboxRootfs(t), Info: info, User: "nobody",
		Command: shell(script)}
	if got := mustRun(t, z, asNobody); got != none {
		t.Errorf("nobody without capabilities: %q, want %q", got, none)
	}
}

// Two nested containers see the same SANDBOX_PATH PARENT volume (how a pod's emptyDir is shared).
func TestNestedContainersShareParentSandboxPath(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, fullIsolation)
	rootfs := busyboxRootfs(t)
	parent := &Container{ID: mesos.ContainerID{Value: "pod"}, Command: shell("sleep 1000")}
	pl, err := launch(t, z, parent)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), parent.Key) }()
	vol := sandboxPathVolume(mesos.Volume_Source_SandboxPath_PARENT, "volumes/cache", "/cache")
	writer := &Container{
		ID:      mesos.ContainerID{Value: "writer", Parent: &parent.ID},
		Parent:  parent,
		Rootfs:  rootfs,
		Info:    mesosInfo(vol),
		Command: shell("echo shared-data > /cache/file"),
	}
	mustRun(t, z, writer)
	reader := &Container{
		ID:      mesos.ContainerID{Value: "reader", Parent: &parent.ID},
		Parent:  parent,
		Rootfs:  rootfs,
		Info:    mesosInfo(vol),
		Command: shell("cat /cache/file"),
	}
	if out := mustRun(t, z, reader); out != "shared-data\n" {
		t.Errorf("the second container read %q from the shared volume", out)
	}
	if b, err := os.ReadFile(filepath.Join(pl.sandbox, "volumes", "cache", "file")); err != nil || string(b) != "shared-data\n" {
		t.Errorf("the volume is not in the parent's sandbox: %q %v", b, err)
	}
}

// A nested container's mount namespace is a copy of the agent's, not of its parent's: Mesos' linux
// launcher clones it (filesystem/linux asks to clone CLONE_NEWNS) after entering only the parent's
// namespaces the isolators name (ns::clone(parentPid, enterFlags, ...): pid, and net/uts under
// network/cni), never its mount namespace, which only a DEBUG container enters. So what the parent
// mounted in its own namespace under its sandbox (here a tmpfs) is not what a SANDBOX_PATH PARENT
// volume of that path gives a nested container: it gets the directory under the mount.
func TestNestedContainerMountNamespaceIsACopyOfTheAgents(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, fullIsolation)
	rootfs := busyboxRootfs(t)
	parent := &Container{ID: mesos.ContainerID{Value: "pod"}, Command: shell(`set -e; d=$MESOS_SANDBOX/volumes/mem; mkdir -p $d
mount -t tmpfs -o size=1m tmpfs $d; echo in-tmpfs > $d/marker; echo ready > $MESOS_SANDBOX/ready; exec sleep 1000`)}
	pl, err := launch(t, z, parent)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), parent.Key) }()
	waitForFile(t, filepath.Join(pl.sandbox, "ready"))
	if _, err := os.Stat(filepath.Join(pl.sandbox, "volumes", "mem", "marker")); !os.IsNotExist(err) {
		t.Fatalf("the parent's tmpfs leaked into the agent's mount namespace (stat marker: %v)", err)
	}
	nested := &Container{
		ID:      mesos.ContainerID{Value: "app", Parent: &parent.ID},
		Parent:  parent,
		Rootfs:  rootfs,
		Info:    mesosInfo(sandboxPathVolume(mesos.Volume_Source_SandboxPath_PARENT, "volumes/mem", "/mem")),
		Command: shell("ls -A /mem; echo end"),
	}
	if out := mustRun(t, z, nested); out != "end\n" {
		t.Errorf("the nested container's volume holds %q; want the empty directory under the parent's tmpfs", out)
	}
	debug := &Container{
		ID:      mesos.ContainerID{Value: "session", Parent: &parent.ID},
		Parent:  parent,
		Debug:   true,
		Sandbox: t.TempDir(),
		Command: shell("cat " + filepath.Join(pl.sandbox, "volumes", "mem", "marker")),
	}
	if out := mustRun(t, z, debug); out != "in-tmpfs\n" {
		t.Errorf("a DEBUG container, in the parent's mount namespace, read %q from the parent's tmpfs", out)
	}
}

// A DEBUG container (an exec session) runs inside its parent's mount and pid namespaces: it sees the
// parent's root filesystem and processes, inherits its environment and working directory.
func TestDebugContainerEntersParentNamespaces(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, fullIsolation)
	rootfs := busyboxRootfs(t)
	cmd := shell("echo ready > $MESOS_SANDBOX/ready; exec sleep 1000")
	cmd.Environment = &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "FROM_PARENT", Value: proto("yes")}}}
	parent := &Container{ID: mesos.ContainerID{Value: "task"}, Rootfs: rootfs, Command: cmd}
	pl, err := launch(t, z, parent)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), parent.Key) }()
	waitForFile(t, filepath.Join(pl.sandbox, "ready"))
	debug := &Container{
		ID:      mesos.ContainerID{Value: "session", Parent: &parent.ID},
		Parent:  parent,
		Debug:   true,
		Sandbox: t.TempDir(),
		Command: shell(`cat /etc/only-in-image; echo "pid=$$ env=$FROM_PARENT pwd=$(pwd)"; ps -o pid,args`),
	}
	out := mustRun(t, z, debug)
	if !strings.Contains(out, "from the image") {
		t.Errorf("the session does not see the container's root filesystem:\n%s", out)
	}
	if !strings.Contains(out, "env=yes pwd=/mnt/mesos/sandbox") {
		t.Errorf("the session did not inherit the parent's environment and working directory:\n%s", out)
	}
	// The parent's sleep is pid 1 of the namespace the session joined.
	if !regexpMatch(`(?m)^\s*1\s+sleep 1000`, out) {
		t.Errorf("ps in the session does not show the container's process as pid 1:\n%s", out)
	}
	if regexpMatch(`(?m)^pid=1 `, out) {
		t.Errorf("the session is pid 1; it should have joined the container's namespace:\n%s", out)
	}
}

// A DEBUG container's user is looked up in the agent's /etc/passwd, as its parent's was: Mesos' launch
// helper enters the parent's mount namespace (--namespace_mnt_target) only after the lookup, so a
// session under a container whose image does not know the user still runs as that user, in the
// container's filesystem.
func TestDebugContainerUserIsTheAgents(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, fullIsolation)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody on this host")
	}
	parent := &Container{ID: mesos.ContainerID{Value: "task-as-nobody"}, Rootfs: busyboxRootfs(t), User: "nobody",
		Command: shell("exec sleep 1000")}
	if _, err := launch(t, z, parent); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), parent.Key) }()
	debug := &Container{
		ID:      mesos.ContainerID{Value: "session", Parent: &parent.ID},
		Parent:  parent,
		Debug:   true,
		User:    "nobody", // the agent's: a nested container without a user runs as its parent's
		Sandbox: t.TempDir(),
		Command: shell(`id -u; cat /etc/only-in-image; test -e /etc/passwd && echo has-passwd || echo no-passwd`),
	}
	if got, want := mustRun(t, z, debug), nobody.Uid+"\nfrom the image\nno-passwd\n"; got != want {
		t.Errorf("session as nobody under a container without /etc/passwd: output %q, want %q", got, want)
	}
}

// A DEBUG container under a nested container with a pid namespace of its own (the helper's later
// stage runs its command) joins that namespace, the one its procfs shows: Mesos' container pid is the
// command's process.
func TestDebugContainerEntersANestedContainersPidNamespace(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, fullIsolation)
	rootfs := busyboxRootfs(t)
	parent := &Container{ID: mesos.ContainerID{Value: "executor"}, Rootfs: rootfs, Command: shell("exec sleep 1000")}
	if _, err := launch(t, z, parent); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), parent.Key) }()
	child := &Container{ID: mesos.ContainerID{Value: "app", Parent: &parent.ID}, Parent: parent, Rootfs: rootfs,
		Command: shell("echo started > $MESOS_SANDBOX/started; exec sleep 2000")}
	cl, err := launch(t, z, child)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), child.Key) }()
	waitForFile(t, filepath.Join(cl.sandbox, "started"))
	session := &Container{
		ID:      mesos.ContainerID{Value: "exec", Parent: &child.ID},
		Parent:  child,
		Debug:   true,
		Sandbox: t.TempDir(),
		Command: shell(`test -e /proc/self/status && echo has-self; tr '\0' ' ' < /proc/1/cmdline`),
	}
	if got, want := mustRun(t, z, session), "has-self\nsleep 2000 "; got != want {
		t.Errorf("session under a nested container: %q, want its procfs' /proc/self and the container's pid 1 %q", got, want)
	}
}

// The agent refuses what Mesos' isolators refuse, with their texts, and cleans up what was prepared.
func TestRefusedLaunches(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, fullIsolation)
	rootfs := busyboxRootfs(t)
	parent := &Container{ID: mesos.ContainerID{Value: "p"}, Command: shell("sleep 1000")}
	if _, err := launch(t, z, parent); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), parent.Key) }()
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		name string
		c    *Container
		want string
	}{
		{"missing host path", &Container{ID: mesos.ContainerID{Value: "a"}, Rootfs: rootfs,
			Info: mesosInfo(hostPathVolume(missing, "/data", mesos.RW))},
			"Path '" + missing + "' in HOST_PATH volume does not exist"},
		{"relative host path", &Container{ID: mesos.ContainerID{Value: "b"}, Rootfs: rootfs,
			Info: mesosInfo(hostPathVolume("rel", "/data", mesos.RW))},
			"Path 'rel' in HOST_PATH volume is not absolute"},
		{"absolute mount point on the host", &Container{ID: mesos.ContainerID{Value: "c"},
			Info: mesosInfo(hostPathVolume(t.TempDir(), "/no/such/mount/point", mesos.RW))},
			"Mount point '/no/such/mount/point' is an absolute path. It must exist if the container shares the host filesystem"},
		{"parent sandbox path of a top-level container", &Container{ID: mesos.ContainerID{Value: "d"}, Rootfs: rootfs,
			Info: mesosInfo(sandboxPathVolume(mesos.Volume_Source_SandboxPath_PARENT, "x", "/x"))},
			"SANDBOX_PATH volume PARENT type only works for nested container"},
		{"absolute sandbox path", &Container{ID: mesos.ContainerID{Value: "e"}, Rootfs: rootfs,
			Info: mesosInfo(sandboxPathVolume(mesos.Volume_Source_SandboxPath_SELF, "/abs", "/x"))},
			"Path '/abs' in SANDBOX_PATH volume is absolute"},
		{"volume of a DEBUG container", &Container{ID: mesos.ContainerID{Value: "f", Parent: &parent.ID}, Parent: parent, Debug: true,
			Info: mesosInfo(hostPathVolume(t.TempDir(), "/x", mesos.RW))},
			"Volumes not supported for DEBUG containers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Command = shell("true")
			_, err := launch(t, z, tc.c)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("launch error %v, want %q", err, tc.want)
			}
			if _, err := z.Wait(tc.c.Key); err == nil {
				t.Errorf("a refused container is still known")
			}
		})
	}
}

// recorder is a test isolator: it records the order of calls, can fail Isolate and can limit.
type recorder struct {
	Base
	name    string
	mu      *sync.Mutex
	calls   *[]string
	failIso bool
	limit   chan Limitation
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) record(s string) {
	r.mu.Lock()
	*r.calls = append(*r.calls, r.name+":"+s)
	r.mu.Unlock()
}
func (r *recorder) Prepare(context.Context, *Container, *LaunchInfo) error {
	r.record("prepare")
	return nil
}
func (r *recorder) Isolate(_ context.Context, c *Container) error {
	r.record("isolate")
	if c.Pid <= 0 {
		return errors.New("no pid")
	}
	if r.failIso {
		return errors.New("isolate failed")
	}
	return nil
}
func (r *recorder) Watch(*Container) <-chan Limitation { return r.limit }
func (r *recorder) Cleanup(context.Context, *Container) error {
	r.record("cleanup")
	return nil
}

// Isolators prepare and isolate in order and clean up in reverse order, also after a failed launch; a
// limitation ends the container and is its termination's.
func TestIsolatorLifecycle(t *testing.T) {
	requireRoot(t)
	var mu sync.Mutex
	var calls []string
	limit := make(chan Limitation, 1)
	Register("test/a", func(Flags) (Isolator, error) { return &recorder{name: "a", mu: &mu, calls: &calls}, nil })
	Register("test/b", func(Flags) (Isolator, error) {
		return &recorder{name: "b", mu: &mu, calls: &calls, limit: limit}, nil
	})
	Register("test/fail", func(Flags) (Isolator, error) {
		return &recorder{name: "fail", mu: &mu, calls: &calls, failIso: true}, nil
	})
	z := newTestContainerizer(t, "filesystem/linux,test/a,test/b")
	l, err := launch(t, z, &Container{ID: mesos.ContainerID{Value: "limited"}, Command: shell("sleep 1000")})
	if err != nil {
		t.Fatal(err)
	}
	limit <- Limitation{Reason: mesos.REASON_CONTAINER_LIMITATION_MEMORY, Message: "Memory limit exceeded"}
	term, _ := wait(t, z, l)
	if term.Limitation == nil || term.Limitation.Reason != mesos.REASON_CONTAINER_LIMITATION_MEMORY {
		t.Errorf("termination %+v lacks the limitation", term)
	}
	if want := "a:prepare b:prepare a:isolate b:isolate b:cleanup a:cleanup"; strings.Join(calls, " ") != want {
		t.Errorf("calls %v, want %s", calls, want)
	}

	calls = nil
	z = newTestContainerizer(t, "filesystem/linux,test/a,test/fail")
	_, err = launch(t, z, &Container{ID: mesos.ContainerID{Value: "failing"}, Command: shell("sleep 1000")})
	if err == nil || err.Error() != "isolate failed" {
		t.Fatalf("launch error %v", err)
	}
	if want := "a:prepare fail:prepare a:isolate fail:isolate fail:cleanup a:cleanup"; strings.Join(calls, " ") != want {
		t.Errorf("calls %v, want %s", calls, want)
	}
}

// Launching and destroying containers leaves no mount, process or directory behind.
func TestNoLeaksAfterChurn(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, fullIsolation)
	rootfs := busyboxRootfs(t)
	shared := t.TempDir()
	churn := func(i int) {
		c := &Container{
			ID:      mesos.ContainerID{Value: fmt.Sprintf("churn-%d", i)},
			Rootfs:  rootfs,
			Info:    mesosInfo(hostPathVolume(shared, "/data", mesos.RO)),
			Command: shell("sleep 1000 & sleep 1000"),
		}
		l, err := launch(t, z, c)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := z.Destroy(context.Background(), c.Key); err != nil {
				t.Fatal(err)
			}
		} else {
			_ = z.Signal(c.Key, 9)
			wait(t, z, l)
		}
	}
	// The first launch makes the mount points in the rootfs (/mnt/mesos/sandbox, /data), which stay
	// with the rootfs as in Mesos (the provisioner removes the rootfs).
	churn(0)
	mountsBefore := countMounts(t)
	procsBefore := countChildren(t)
	entriesBefore := countEntries(t, rootfs)
	for i := 1; i <= 50; i++ {
		churn(i)
	}
	if n := countMounts(t); n != mountsBefore {
		t.Errorf("%d mounts before, %d after", mountsBefore, n)
	}
	if n := countChildren(t); n != procsBefore {
		t.Errorf("%d child processes before, %d after", procsBefore, n)
	}
	if n := countEntries(t, rootfs); n != entriesBefore {
		t.Errorf("%d entries in the rootfs before, %d after", entriesBefore, n)
	}
	if len(z.containers) != 0 {
		t.Errorf("%d containers still known", len(z.containers))
	}
}

// countMounts counts the host's mounts that this test can have made: below its own temporary
// directories (work dirs, provisioner rootfses) and below Mesos' runtime directory. The host's mount
// table also holds whatever other processes (other test binaries of `go test ./...`) mount meanwhile,
// so counting every line made the churn tests flaky.
func countMounts(t testing.TB) int {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	roots := []string{filepath.Dir(t.TempDir()), "/var/run/mesos", "/run/mesos"}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		mountPoint := unescapeMountinfo(fields[4])
		for _, root := range roots {
			if mountPoint == root || strings.HasPrefix(mountPoint, root+"/") {
				n++
				break
			}
		}
	}
	return n
}

// countChildren counts the processes whose parent is this test process, and every `sleep 1000` (the
// churned containers' processes, wherever they were reparented).
func countChildren(t testing.TB) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getpid())
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && string(cmdline) == "sleep\x001000\x00" {
			n++
			continue
		}
		f, err := os.Open(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		s := bufio.NewScanner(f)
		for s.Scan() {
			if v, ok := strings.CutPrefix(s.Text(), "PPid:\t"); ok && v == me {
				n++
			}
		}
		f.Close()
	}
	return n
}

func countEntries(t testing.TB, dir string) int {
	n := 0
	_ = filepath.Walk(dir, func(string, os.FileInfo, error) error { n++; return nil })
	return n
}

func waitForFile(t testing.TB, p string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(p); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s did not appear", p)
}

func proto(s string) *string { return &s }

// BenchmarkLaunch measures launching a container that runs `true` to its cleaned-up end: as a host
// process (the agent's process mode), and through the launch helper with filesystem/linux and
// namespaces/pid, with and without a root filesystem.
func BenchmarkLaunch(b *testing.B) {
	b.Run("process", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := exec.Command("/bin/true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	requireRoot(b)
	for _, bc := range []struct {
		name   string
		rootfs bool
		nested bool
	}{{"isolated-host-fs", false, false}, {"isolated-rootfs", true, false}, {"isolated-nested-rootfs", true, true}} {
		b.Run(bc.name, func(b *testing.B) {
			z := newTestContainerizer(b, "filesystem/linux,namespaces/pid")
			rootfs := ""
			if bc.rootfs {
				rootfs = busyboxRootfs(b)
			}
			var parent *Container
			if bc.nested {
				// Nested containers enter the parent's pid namespace and clone their own in it.
				parent = &Container{ID: mesos.ContainerID{Value: "parent"}, Command: shell("sleep 1000")}
				if _, err := launch(b, z, parent); err != nil {
					b.Fatal(err)
				}
				defer func() { _ = z.Destroy(context.Background(), parent.Key) }()
			}
			sandbox := b.TempDir()
			value := "/bin/true"
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := &Container{ID: mesos.ContainerID{Value: fmt.Sprintf("bench-%d", i)}, Rootfs: rootfs, Sandbox: sandbox,
					Command: mesos.CommandInfo{Value: &value, Shell: new(bool)}}
				if parent != nil {
					c.Parent, c.ID.Parent = parent, &parent.ID
				}
				l, err := launch(b, z, c)
				if err != nil {
					b.Fatal(err)
				}
				if term, _ := wait(b, z, l); term.Status != 0 {
					b.Fatalf("status %d: %s", term.Status, stderrOf(l))
				}
			}
		})
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// With a provisioner, a container with an image runs in the root filesystem provisioned from it, and the
// rootfs is destroyed with the container.
func TestContainerOnProvisionedImage(t *testing.T) {
	requireRoot(t)
	e := newProvisionerEnv(t, BackendOverlay)
	e.write(t, busyboxImage(t), "busybox")
	z := newTestContainerizer(t, fullIsolation)
	z.SetProvisioner(e.p)
	hostOnly := filepath.Join(t.TempDir(), "host-only")
	if err := os.WriteFile(hostOnly, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := countMounts(t)
	img := dockerImage("busybox", false)
	info := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), Mesos: &mesos.ContainerInfo_MesosInfo{Image: &img}}
	c := &Container{
		ID:      mesos.ContainerID{Value: "provisioned"},
		Info:    info,
		Command: shell(`test -x /bin/busybox && echo image-fs; test -e ` + hostOnly + ` && echo host-visible || echo host-hidden`),
	}
	out := mustRun(t, z, c)
	if !strings.Contains(out, "image-fs") || !strings.Contains(out, "host-hidden") {
		t.Errorf("the container does not run in the image's filesystem:\n%s", out)
	}
	if c.Rootfs == "" || c.Image == nil {
		t.Fatalf("the container's Rootfs %q and Image %v were not set from the provisioner", c.Rootfs, c.Image)
	}
	if _, err := os.Stat(c.Rootfs); err == nil {
		t.Errorf("the provisioned rootfs %s outlived its container", c.Rootfs)
	}
	if n := countMounts(t); n != mounts {
		t.Errorf("%d mounts before, %d after", mounts, n)
	}
}

// docker/runtime gives the command the image's environment (below the CommandInfo's) and, with a
// rootfs, the image's WorkingDir.
func TestDockerRuntimeEnvironmentAndWorkingDir(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, fullIsolation)
	cmd := shell(`echo "$FROM_IMAGE $OVERRIDDEN $(pwd)"`)
	cmd.Environment = &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "OVERRIDDEN", Value: proto("by-command")}}}
	c := &Container{
		ID:      mesos.ContainerID{Value: "docker-runtime"},
		Rootfs:  busyboxRootfs(t),
		Image:   &v1.Config{Env: []string{"FROM_IMAGE=image", "OVERRIDDEN=image"}, WorkingDir: "/work"},
		Command: cmd,
	}
	if out := mustRun(t, z, c); out != "image by-command /work\n" {
		t.Errorf("output %q, want the image's variable, the command's override and the image's WorkingDir", out)
	}
}

// A nested container whose LinuxInfo.share_pid_namespace is set joins its parent's pid namespace (the
// helper forks a second stage inside it) while keeping its own mount namespace and root filesystem.
func TestNestedContainerSharesParentPidNamespace(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, fullIsolation)
	rootfs := busyboxRootfs(t)
	parent := &Container{ID: mesos.ContainerID{Value: "pod"}, Rootfs: rootfs, Command: shell("exec sleep 1000")}
	if _, err := launch(t, z, parent); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), parent.Key) }()
	// Until the parent's helper has exec'd its command, it is pid 1 of its namespace.
	deadline := time.Now().Add(10 * time.Second)
	for b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", parent.Pid)); !bytes.HasPrefix(b, []byte("sleep")); b, _ = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", parent.Pid)) {
		if time.Now().After(deadline) {
			t.Fatalf("the parent runs %q, not its sleep", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	shared := mesosInfo()
	shared.LinuxInfo = &mesos.LinuxInfo{SharePIDNamespace: proto2(true)}
	for _, tc := range []struct {
		name string
		info *mesos.ContainerInfo
		want string
	}{
		{"shared", shared, "sleep 1000 "},
		{"own", mesosInfo(), "sh -c cat /proc/1/cmdline | tr '\\0' ' ' "},
	} {
		c := &Container{
			ID:      mesos.ContainerID{Value: tc.name, Parent: &parent.ID},
			Parent:  parent,
			Rootfs:  rootfs,
			Info:    tc.info,
			Command: shell(`cat /proc/1/cmdline | tr '\0' ' '`),
		}
		if out := mustRun(t, z, c); out != tc.want {
			t.Errorf("%s pid namespace: pid 1 is %q, want %q", tc.name, out, tc.want)
		}
	}

	// A nested container's own pid namespace is a child of its parent's: the parent's namespace (seen
	// here from a session in it) has the nested container's processes too.
	child := &Container{
		ID:      mesos.ContainerID{Value: "child", Parent: &parent.ID},
		Parent:  parent,
		Rootfs:  rootfs,
		Command: shell("echo started > $MESOS_SANDBOX/started; exec sleep 2000"),
	}
	cl, err := launch(t, z, child)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), child.Key) }()
	waitForFile(t, filepath.Join(cl.sandbox, "started"))
	session := &Container{
		ID:      mesos.ContainerID{Value: "ps", Parent: &parent.ID},
		Parent:  parent,
		Debug:   true,
		Sandbox: t.TempDir(),
		Command: shell("ps -o args"),
	}
	if out := mustRun(t, z, session); !strings.Contains(out, "sleep 2000") || !strings.Contains(out, "sleep 1000") {
		t.Errorf("the parent's pid namespace lacks its nested container's process:\n%s", out)
	}
}

func proto2(b bool) *bool { return &b }

// A new SANDBOX_PATH volume belongs to the owner of the sandbox it is made in, so that a container
// running as that user can write to it.
func TestSandboxPathVolumeOwnedBySandboxOwner(t *testing.T) {
	requireRoot(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	z := newTestContainerizer(t, fullIsolation)
	parent := &Container{ID: mesos.ContainerID{Value: "owner"}, Sandbox: t.TempDir(), Command: shell("sleep 1000")}
	if err := os.Chown(parent.Sandbox, uid, gid); err != nil {
		t.Fatal(err)
	}
	if _, err := launch(t, z, parent); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Destroy(context.Background(), parent.Key) }()
	c := &Container{
		ID:      mesos.ContainerID{Value: "writer", Parent: &parent.ID},
		Parent:  parent,
		Rootfs:  busyboxRootfs(t),
		User:    "nobody",
		Info:    mesosInfo(sandboxPathVolume(mesos.Volume_Source_SandboxPath_PARENT, "data", "/data")),
		Command: shell("echo written > /data/f && cat /data/f"),
	}
	if out := mustRun(t, z, c); out != "written\n" {
		t.Errorf("output %q", out)
	}
}

// A binary that did not call MaybeRunHelper cannot host a containerizer: re-executing it would not
// run the helper.
func TestNewNeedsTheHelper(t *testing.T) {
	helperHosted.Store(false)
	defer helperHosted.Store(true)
	if _, err := New(Flags{Isolation: "filesystem/linux"}, nil); err == nil || !strings.Contains(err.Error(), "MaybeRunHelper") {
		t.Errorf("New without the helper: %v", err)
	}
}

// --isolation names are Mesos': filesystem/linux brings the volume isolators, posix ones need no helper,
// an unknown one is refused with Mesos' text.
func TestIsolations(t *testing.T) {
	if got := strings.Join(Isolations("filesystem/linux,namespaces/pid"), ","); got != "filesystem/linux,volume/host_path,volume/sandbox_path,namespaces/pid" {
		t.Errorf("Isolations = %s", got)
	}
	if NeedsIsolation("posix/cpu,posix/mem") || !NeedsIsolation("posix/cpu,filesystem/linux") {
		t.Error("NeedsIsolation")
	}
	if _, err := CreateIsolators(Flags{Isolation: "filesystem/linux,cgroups/bogus"}); err == nil || err.Error() != "Unknown or unsupported isolator 'cgroups/bogus'" {
		t.Errorf("unknown isolator: %v", err)
	}
}

// hostnameIsolator asks for a hostname, with or without its own UTS namespace.
type hostnameIsolator struct {
	Base
	clone bool
}

func (hostnameIsolator) Name() string { return "test/hostname" }
func (h hostnameIsolator) Prepare(_ context.Context, _ *Container, li *LaunchInfo) error {
	li.Hostname = "pod-1"
	if h.clone {
		li.CloneNamespaces = append(li.CloneNamespaces, NamespaceUTS)
	}
	return nil
}

// A hostname is set in the container's own UTS namespace, and refused without one (it would rename
// the host).
func TestHostnameNeedsItsOwnUTSNamespace(t *testing.T) {
	requireRoot(t)
	host, _ := os.Hostname()
	for _, clone := range []bool{true, false} {
		z := newTestContainerizer(t, "filesystem/linux")
		z.isolators = append(z.isolators, hostnameIsolator{clone: clone})
		l, err := launch(t, z, &Container{ID: mesos.ContainerID{Value: fmt.Sprint("uts-", clone)}, Rootfs: busyboxRootfs(t), Command: shell("hostname")})
		if err != nil {
			t.Fatal(err)
		}
		term, out := wait(t, z, l)
		switch {
		case clone && (term.Status != 0 || out != "pod-1\n"):
			t.Errorf("with its own UTS namespace: status %d, hostname %q", term.Status, out)
		case !clone && (term.Status == 0 || !strings.Contains(stderrOf(l), "the UTS namespace is not cloned")):
			t.Errorf("without its own UTS namespace: status %d, stderr %q", term.Status, stderrOf(l))
		}
	}
	if now, _ := os.Hostname(); now != host {
		t.Fatalf("the host was renamed to %q", now)
	}
}

// sharedDir is a new directory that is a mount of its own (bound on itself) with the propagation
// given (unix.MS_SHARED or unix.MS_PRIVATE), unmounted with what is under it when the test ends.
func sharedDir(t *testing.T, propagation uintptr) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	if propagation != unix.MS_PRIVATE {
		if err := unix.Mount("", dir, "", propagation, ""); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func isTmpfs(p string) bool {
	var st unix.Statfs_t
	return unix.Statfs(p, &st) == nil && st.Type == unix.TMPFS_MAGIC
}

// Mesos' volume/host_path with mount_propagation BIDIRECTIONAL: a tmpfs the container mounts under a
// host path that is under a shared mount appears in the agent's mount namespace; without it, or for
// a host path under no shared mount, it does not (the latter is refused with Mesos' text), and a
// volume mount of the same container under the shared mount is refused by the launch helper.
func TestHostPathVolumeBidirectionalPropagation(t *testing.T) {
	requireRoot(t)
	z := newTestContainerizer(t, "filesystem/linux,volume/host_path")
	bidirectional := func(v mesos.Volume) mesos.Volume {
		v.Source.HostPath.MountPropagation = &mesos.MountPropagation{Mode: mesos.MountPropagation_BIDIRECTIONAL.Enum()}
		return v
	}
	dir := sharedDir(t, unix.MS_SHARED)
	mountIn := func(sub string) mesos.CommandInfo {
		return shell("set -e; mkdir -p " + dir + "/" + sub + "; mount -t tmpfs -o size=1m tmpfs " + dir + "/" + sub)
	}

	mustRun(t, z, &Container{ID: mesos.ContainerID{Value: "bidi"}, Command: mountIn("bidi"),
		Info: mesosInfo(bidirectional(hostPathVolume(dir, dir, mesos.RW)))})
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(dir, "bidi"), unix.MNT_DETACH) })
	if !isTmpfs(filepath.Join(dir, "bidi")) {
		t.Error("the tmpfs a container mounted under its BIDIRECTIONAL host path is not in the agent's mount namespace")
	}

	mustRun(t, z, &Container{ID: mesos.ContainerID{Value: "plain"}, Command: mountIn("plain"),
		Info: mesosInfo(hostPathVolume(dir, dir, mesos.RW))})
	if isTmpfs(filepath.Join(dir, "plain")) {
		_ = unix.Unmount(filepath.Join(dir, "plain"), unix.MNT_DETACH)
		t.Error("a container's mount under a host path without BIDIRECTIONAL reached the agent's mount namespace")
	}

	private := sharedDir(t, unix.MS_PRIVATE)
	_, err := launch(t, z, &Container{ID: mesos.ContainerID{Value: "private"}, Command: shell("true"),
		Info: mesosInfo(bidirectional(hostPathVolume(private, private, mesos.RW)))})
	if want := "Cannot setup bidirectional mount propagation for host path '" + private + "' because it is not under a shared mount"; err == nil || err.Error() != want {
		t.Errorf("launch with a BIDIRECTIONAL host path under no shared mount = %v, want %q", err, want)
	}

	inner := filepath.Join(dir, "inner")
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := launch(t, z, &Container{ID: mesos.ContainerID{Value: "under"}, Command: shell("true"),
		Info: mesosInfo(bidirectional(hostPathVolume(dir, dir, mesos.RW)), hostPathVolume(t.TempDir(), inner, mesos.RW))})
	if err != nil {
		t.Fatal(err)
	}
	if term, _ := wait(t, z, l); term.Status == 0 || !strings.Contains(stderrOf(l), "because the target is under a shared mount '"+dir+"'") {
		t.Errorf("a volume mounted under the shared mount: wait status %d, stderr:\n%s", term.Status, stderrOf(l))
	}
	if isTmpfs(inner) || func() bool { e, _ := os.ReadDir(inner); return len(e) > 0 }() {
		t.Error("the refused volume mount reached the agent's mount namespace")
	}
}

// gate is a test isolator whose Isolate waits to be let go, and whose Usage and Status read what the
// launch writes.
type gate struct {
	Base
	isolating chan struct{}
	release   chan struct{}
	reads     atomic.Int32
}

func (g *gate) Name() string { return "test/gate" }
func (g *gate) Isolate(context.Context, *Container) error {
	close(g.isolating)
	<-g.release
	return nil
}
func (g *gate) Usage(_ context.Context, c *Container, _ *mesos.ResourceStatistics) error {
	g.reads.Add(1)
	_, _ = c.Pid, c.Rootfs
	return nil
}
func (g *gate) Status(_ context.Context, c *Container, _ *mesos.ContainerStatus) error {
	g.reads.Add(1)
	_ = c.Pid
	return nil
}

// A container still launching is known (a second launch is refused) but its isolation is not read
// until the launch has succeeded: the agent asks for usage and status without waiting for launches.
func TestLaunchingContainerIsNotReadUntilLaunched(t *testing.T) {
	requireRoot(t)
	g := &gate{isolating: make(chan struct{}), release: make(chan struct{})}
	Register("test/gate", func(Flags) (Isolator, error) { return g, nil })
	z := newTestContainerizer(t, "filesystem/linux,test/gate")
	c := &Container{ID: mesos.ContainerID{Value: "slow"}, Command: shell("sleep 1000")}
	done := make(chan error, 1)
	var l *launched
	go func() {
		var err error
		l, err = launch(t, z, c)
		done <- err
	}()
	<-g.isolating
	if _, err := z.Usage(context.Background(), "slow"); err == nil || !strings.Contains(err.Error(), "still launching") {
		t.Errorf("Usage while launching: %v", err)
	}
	if _, err := z.Status(context.Background(), "slow"); err == nil || !strings.Contains(err.Error(), "still launching") {
		t.Errorf("Status while launching: %v", err)
	}
	if err := z.Update(context.Background(), "slow", nil, nil); err == nil || !strings.Contains(err.Error(), "still launching") {
		t.Errorf("Update while launching: %v", err)
	}
	if n := g.reads.Load(); n != 0 {
		t.Errorf("the isolator was read %d times during the launch", n)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := z.Usage(context.Background(), "slow"); err != nil {
		t.Errorf("Usage once launched: %v", err)
	}
	if _, err := z.Status(context.Background(), "slow"); err != nil {
		t.Errorf("Status once launched: %v", err)
	}
	if g.reads.Load() != 2 {
		t.Errorf("the isolator was read %d times once launched, want 2", g.reads.Load())
	}
	if err := z.Destroy(context.Background(), "slow"); err != nil {
		t.Fatal(err)
	}
	wait(t, z, l)
}
