package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/kubemesos/kubemesos/e2e/imagestore"
	"github.com/kubemesos/kubemesos/mesossim"
)

// Without a usable image store local-up says so and the agents get the stand-ins.
func TestImageRegistryFallsBackToStandIns(t *testing.T) {
	log, hook := test.NewNullLogger()
	dir := imageRegistry(context.Background(), imagestore.Options{Go: "/nonexistent/go", CacheDir: t.TempDir(), Log: io.Discard}, log)
	if dir != "" {
		t.Fatalf("registry %q", dir)
	}
	e := hook.LastEntry()
	if e == nil || e.Level != logrus.WarnLevel || !strings.Contains(e.Message, "cannot build the image store: the agents get config-only stand-in images") {
		t.Fatalf("log %+v", e)
	}
	cfg := config{dir: t.TempDir(), agents: 1, mesosListen: "127.0.0.1:0"}
	simCfg, network, err := simulatorConfig(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer network.Close()
	if simCfg.DockerRegistry != filepath.Join(cfg.dir, "images") {
		t.Fatalf("registry %s", simCfg.DockerRegistry)
	}
	if _, err := os.Stat(filepath.Join(cfg.dir, "images", "busybox.tar")); err != nil {
		t.Fatal(err)
	}
}

// With the image store, the agents' registry is the store: an image under its conformance name runs
// by its own config instead of the --image-command fallback.
func TestSimulatorUsesTheImageStore(t *testing.T) {
	log, hook := test.NewNullLogger()
	registry := imageRegistry(context.Background(), imagestore.Options{Log: io.Discard}, log)
	if registry == "" {
		t.Fatalf("no image store: %+v", hook.LastEntry())
	}
	cfg := config{dir: t.TempDir(), agents: 1, mesosListen: "127.0.0.1:0", imageRegistry: registry,
		imageCommands: map[string]string{"*": "echo fallback"}}
	simCfg, network, err := simulatorConfig(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer network.Close()
	if simCfg.DockerRegistry != registry {
		t.Fatalf("registry %s, want %s", simCfg.DockerRegistry, registry)
	}
	if _, err := os.Stat(filepath.Join(cfg.dir, "images")); !os.IsNotExist(err) {
		t.Fatalf("stand-ins written too: %v", err)
	}
	c, err := mesossim.StartCluster(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a := c.Agents()[0]
	// Isolating agents are on the pod network, on an address of their own.
	if a.Isolating() != (network != nil) {
		t.Fatalf("isolating %v, pod network %v", a.Isolating(), network != nil)
	}
	if network != nil && !strings.HasPrefix(a.Endpoint(), network.Agent(0).IP.String()+":") {
		t.Errorf("agent endpoint %s, want on its pod network address %s", a.Endpoint(), network.Agent(0).IP)
	}
	post := func(b []byte) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Endpoint()+"/api/v1", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	no := false
	id := mesos.ContainerID{Value: "bb"}
	ci := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), Mesos: &mesos.ContainerInfo_MesosInfo{
		Image: &mesos.Image{Type: mesos.Image_DOCKER.Enum(), Docker: &mesos.Image_Docker{Name: "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"}}}}
	// Arguments only: Mesos' docker/runtime rule appends them to busybox's Cmd ["sh"], which runs
	// `sh -c 'echo from-image'` only if the image's config was found (the fallback prints "fallback").
	// A standalone container brings its resources (the cgroups isolators of isolating agents need them).
	res := []mesos.Resource{
		{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 0.1}},
		{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 32}},
	}
	launch, _ := json.Marshal(agentcalls.LaunchContainer(id, &mesos.CommandInfo{Shell: &no, Arguments: []string{"-c", "echo from-image; test -e /etc/os-release || echo own-rootfs"}}, ci, res))
	if code, body := post(launch); code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER = %d %s", code, body)
	}
	wait, _ := json.Marshal(agentcalls.WaitContainer(id))
	if code, body := post(wait); code != http.StatusOK && code != http.StatusNotFound { // 404: ended and forgotten
		t.Fatalf("WAIT_CONTAINER = %d %s", code, body)
	}
	want := "from-image\n"
	if os.Geteuid() == 0 && !c.Agents()[0].Isolating() {
		t.Fatal("as root, local-up's agents with the image store do not isolate")
	}
	if c.Agents()[0].Isolating() {
		want += "own-rootfs\n" // the image's filesystem, not the host's
	}
	if out := waitOutput(filepath.Join(simCfg.WorkDir, "containers", "bb", "stdout"), want); out != want {
		t.Fatalf("output %q", out)
	}
}
