package agent

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"

	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/kubemesos/kubemesos/internal/imagebuild"
)

var (
	busyboxOnce sync.Once
	busyboxImg  v1.Image
	busyboxErr  error
)

// busyboxRegistry is a registry directory holding the busybox image (Debian's busybox-static).
func busyboxRegistry(t testing.TB) string {
	t.Helper()
	busyboxOnce.Do(func() {
		ctx := context.Background()
		var bb imagebuild.Busybox
		if bb, busyboxErr = imagebuild.FindBusybox(ctx, imagebuild.BusyboxOptions{}); busyboxErr == nil {
			busyboxImg, busyboxErr = imagebuild.BusyboxImage(ctx, bb)
		}
	})
	if busyboxErr != nil {
		t.Fatal(busyboxErr)
	}
	dir := t.TempDir()
	if _, err := imagebuild.WriteArchives(dir, busyboxImg, "busybox"); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newProvisioningFixture is an isolating agent with the docker image provider over a busybox registry
// and its own --docker_store_dir.
func newProvisioningFixture(t *testing.T, mutate func(*Config)) *nestedFixture {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root (namespaces, mounts); without it the agent runs process mode")
	}
	registry := busyboxRegistry(t)
	store := t.TempDir()
	f := newNestedFixtureWith(t, func(c *Config) {
		c.ImageCommands = nil
		c.ImageProviders, c.DockerRegistry, c.Isolation = "docker", registry, "filesystem/linux,docker/runtime,namespaces/pid"
		c.DockerStoreDir = store
		if mutate != nil {
			mutate(c)
		}
	})
	if !f.a.Isolating() {
		t.Fatal("the agent does not isolate")
	}
	return f
}

// An isolating agent with the docker provider provisions a container's image: the container runs in
// the image's root filesystem (busybox's /bin/busybox, not the host's /etc/os-release), with the
// image's layers in the agent's --docker_store_dir and its rootfs under <work_dir>/provisioner,
// removed when the container ends.
func TestIsolatedImageRunsInItsRootfs(t *testing.T) {
	if _, err := os.Stat("/etc/os-release"); err != nil {
		t.Skip("the host has no /etc/os-release to tell it from the image")
	}
	var store, work string
	f := newProvisioningFixture(t, func(c *Config) { store, work = c.DockerStoreDir, c.WorkDir })
	code, body, status, stdout, stderr := f.runNested(t, "bb",
		shell("ls /bin/busybox; test -e /etc/os-release && echo host-os-release; echo root=$(ls / | tr '\\n' ' ')"), mesosImage("busybox"))
	if code != http.StatusOK || status != 0 {
		t.Fatalf("launch = %d %q, status %d, stderr %q", code, body, status, stderr)
	}
	if !strings.HasPrefix(stdout, "/bin/busybox\n") || strings.Contains(stdout, "host-os-release") {
		t.Errorf("stdout %q: want the image's /bin/busybox and no host /etc/os-release", stdout)
	}
	if layers, _ := os.ReadDir(filepath.Join(store, "layers")); len(layers) == 0 {
		t.Errorf("no layers in the agent's --docker_store_dir %s", store)
	}
	rootfses, _ := filepath.Glob(filepath.Join(work, "provisioner", "containers", "*", "containers", "bb", "backends", "*", "rootfses", "*"))
	if len(rootfses) != 0 {
		t.Errorf("rootfs left after the container ended: %v", rootfses)
	}
}

// The simulator's --image-command fallback for an image missing from the registry still runs in
// isolating mode, as a host process tree (no image to provision), while a missing image without a
// fallback fails with the provisioner's text.
func TestIsolatedImageCommandFallbackRunsWithoutRootfs(t *testing.T) {
	f := newProvisioningFixture(t, func(c *Config) {
		c.ImageCommands = map[string]string{"nginx": "echo fallback; test -e /etc/os-release && echo host"}
	})
	code, body, status, stdout, stderr := f.runNested(t, "fb", &mesos.CommandInfo{}, mesosImage("nginx:1.27"))
	if code != http.StatusOK || status != 0 {
		t.Fatalf("launch = %d %q, status %d, stderr %q", code, body, status, stderr)
	}
	want := "fallback\n"
	if _, err := os.Stat("/etc/os-release"); err == nil {
		want += "host\n"
	}
	if stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	code, body, _, _, _ = f.runNested(t, "missing", shell("true"), mesosImage("redis"))
	if code != http.StatusBadRequest || !strings.Contains(body, "Failed to find archive for image") {
		t.Errorf("missing image without fallback: %d %q", code, body)
	}
}

// With ImageCommandImage the fallback runs in that image's rootfs, where a volume at an absolute
// container path (a pod's service account token) is created as for any image.
func TestIsolatedImageCommandFallbackInItsImage(t *testing.T) {
	f := newProvisioningFixture(t, func(c *Config) {
		c.ImageCommands = map[string]string{"*": "ls /bin/busybox; cat /var/run/secrets/token"}
		c.ImageCommandImage = "busybox"
	})
	if err := os.WriteFile(filepath.Join(f.dir, "token"), []byte("tok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vol := mesosImage("nginx")
	vol.Volumes = []mesos.Volume{sandboxParentVolume("token", "/var/run/secrets/token")}
	code, body, status, stdout, stderr := f.runNested(t, "fb", &mesos.CommandInfo{}, vol)
	if code != http.StatusOK || status != 0 {
		t.Fatalf("launch = %d %q, status %d, stderr %q", code, body, status, stderr)
	}
	if stdout != "/bin/busybox\ntok\n" {
		t.Errorf("stdout %q, want busybox's binary and the volume", stdout)
	}
}

// ProcessMode keeps an agent that could isolate (root, the helper hosted, Linux isolators) in process
// mode, and says so.
func TestProcessModeKnob(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root could isolate")
	}
	log, hook := logtest.NewNullLogger()
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) { c.Isolation = linuxIsolation; c.ProcessMode = true; c.Log = log })
	if a.Isolating() {
		t.Fatal("an agent in ProcessMode isolates")
	}
	var said bool
	for _, e := range hook.AllEntries() {
		said = said || strings.Contains(e.Message, "process mode requested")
	}
	if !said {
		t.Errorf("no log line about process mode: %v", hook.AllEntries())
	}
}

// KILL_NESTED_CONTAINER with SIGTERM reaches an isolated container's command once, through the launch
// helper's stages (a container in its own pid namespace), as Mesos signals the container's pid.
func TestIsolatedKillSignalsTheCommandOnce(t *testing.T) {
	f := newProvisioningFixture(t, nil)
	vol := mesosImage("busybox")
	vol.Volumes = []mesos.Volume{sandboxParentVolume("sig", "/sig")}
	c := f.child("trapper")
	script := "trap 'echo TERM >> /sig/log' TERM; touch /sig/ready; while [ ! -e /sig/stop ]; do sleep 0.05; done"
	if err := os.MkdirAll(filepath.Join(f.dir, "sig"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, body := postCall(t, f.a, agentcalls.LaunchNestedContainer(c, shell(script), vol)); code != http.StatusOK {
		t.Fatalf("LAUNCH_NESTED_CONTAINER: %d %s", code, body)
	}
	waitFor(t, "the trap set", func() bool { _, err := os.Stat(filepath.Join(f.dir, "sig", "ready")); return err == nil })
	call := agentcalls.KillNestedContainer(c)
	term := int32(syscall.SIGTERM)
	call.KillNestedContainer.Signal = &term
	if code, body := postCall(t, f.a, call); code != http.StatusOK {
		t.Fatalf("KILL_NESTED_CONTAINER: %d %s", code, body)
	}
	waitFor(t, "the trap ran", func() bool { _, err := os.Stat(filepath.Join(f.dir, "sig", "log")); return err == nil })
	time.Sleep(500 * time.Millisecond) // a second delivery would land within this
	if err := os.WriteFile(filepath.Join(f.dir, "sig", "stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := postCall(t, f.a, agentcalls.WaitNestedContainer(c)); code != http.StatusOK || !strings.Contains(body, `"exit_status":0`) {
		t.Fatalf("WAIT_NESTED_CONTAINER: %d %s", code, body)
	}
	if b, _ := os.ReadFile(filepath.Join(f.dir, "sig", "log")); string(b) != "TERM\n" {
		t.Errorf("the command's TERM trap ran %q, want once", b)
	}
}
