package agent

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func launcherFixture(t *testing.T, isolation string) *nestedFixture {
	t.Helper()
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) {
		c.ExecutorHook = hookExecutor
		c.Isolation = isolation
		c.ImageCommands = map[string]string{"nginx": "echo from-image >&2"}
	})
	a.Launch(testFramework(false), hookExecutorInfo("e"), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "executor running", func() bool { return len(m.states("t1")) == 1 })
	ex := a.Executors()[0]
	return &nestedFixture{
		a: a, m: m, parent: ex.ContainerID, dir: ex.Directory,
		api: httpagent.NewSender(httpcli.New(httpcli.Endpoint("http://" + a.Endpoint() + "/api/v1")).Send),
	}
}

// runForStderr runs a nested container to its end and returns its stderr file.
func (f *nestedFixture) runForStderr(t *testing.T, id string, cmd *mesos.CommandInfo, ci *mesos.ContainerInfo) string {
	t.Helper()
	c := f.child(id)
	if err := f.launch(c, cmd, ci); err != nil {
		t.Fatalf("LAUNCH_NESTED_CONTAINER %s: %v", id, err)
	}
	if _, err := f.wait(t, calls.WaitNestedContainer(c)); err != nil {
		t.Fatalf("WAIT_NESTED_CONTAINER %s: %v", id, err)
	}
	b, err := os.ReadFile(filepath.Join(f.dir, "containers", id, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mesosImage(name string) *mesos.ContainerInfo {
	return &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), Mesos: &mesos.ContainerInfo_MesosInfo{
		Image: &mesos.Image{Type: mesos.Image_DOCKER.Enum(), Docker: &mesos.Image_Docker{Name: name}}}}
}

// TestLauncherLines: a container with an image gets the launcher's rootfs and mount propagation
// lines before its own stderr, as from Mesos' launcher; with filesystem/linux a container without an
// image gets the mount propagation line; otherwise, and for sessions (DEBUG containers), nothing.
func TestLauncherLines(t *testing.T) {
	t.Run("image", func(t *testing.T) {
		f := launcherFixture(t, "")
		got := f.runForStderr(t, "img", &mesos.CommandInfo{}, mesosImage("nginx:1.27"))
		rootfs := regexp.QuoteMeta(filepath.Join(f.a.cfg.WorkDir, "provisioner", "containers", f.parent.Value, "containers", "img",
			"backends", "overlay", "rootfses")) + `/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`
		want := regexp.MustCompile(`^Preparing rootfs at '(` + rootfs + `)'\nMarked '/' as rslave\nChanging root to (` + rootfs + `)\nfrom-image\n$`)
		m := want.FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("stderr = %q, want it to match %s", got, want)
		}
		if m[1] != m[2] {
			t.Errorf("the rootfs prepared (%s) is not the one entered (%s)", m[1], m[2])
		}
	})
	t.Run("no image, filesystem/linux", func(t *testing.T) {
		f := launcherFixture(t, "filesystem/linux,docker/runtime")
		if got := f.runForStderr(t, "plain", shell("echo own >&2"), nil); got != "Marked '/' as rslave\nown\n" {
			t.Errorf("stderr = %q", got)
		}
	})
	t.Run("no image, posix isolation", func(t *testing.T) {
		f := launcherFixture(t, "")
		if got := f.runForStderr(t, "plain", shell("echo own >&2"), nil); got != "own\n" {
			t.Errorf("stderr = %q", got)
		}
	})
	t.Run("session", func(t *testing.T) {
		f := launcherFixture(t, "filesystem/linux,docker/runtime")
		c := f.child("debug")
		resp, err := f.api.Send(context.Background(), calls.NonStreaming(calls.LaunchNestedContainerSession(c, shell("echo own >&2"), nil)))
		if err != nil {
			t.Fatalf("LAUNCH_NESTED_CONTAINER_SESSION: %v", err)
		}
		defer resp.Close()
		if _, stderr := readOutput(t, decoderOf(resp)); stderr != "own\n" {
			t.Errorf("session output's stderr = %q, want only the command's", stderr)
		}
		if _, err := f.wait(t, calls.WaitNestedContainer(c)); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(f.dir, "containers", "debug", "stderr")); err != nil || string(b) != "own\n" {
			t.Errorf("session's stderr file = %q, %v; want only the command's", b, err)
		}
	})
}
