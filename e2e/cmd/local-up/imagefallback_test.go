package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/mesossim"
)

// With --image-fallback=false an image the registry lacks fails to launch with Mesos' text instead of
// running the stand-in: conformance's pull-failure specs need that.
func TestImageFallbackOff(t *testing.T) {
	on := map[string]string{}
	addDefaultImageCommand(on, true)
	if on["*"] != defaultImageCommand {
		t.Fatalf("fallback on: %v", on)
	}
	given := map[string]string{"*": "echo mine"}
	addDefaultImageCommand(given, true)
	if given["*"] != "echo mine" {
		t.Fatalf("a given * was replaced: %v", given)
	}
	off := map[string]string{}
	addDefaultImageCommand(off, false)
	if len(off) != 0 {
		t.Fatalf("fallback off: %v", off)
	}

	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	cfg := config{dir: t.TempDir(), agents: 1, mesosListen: "127.0.0.1:0", imageCommands: off}
	simCfg, network, err := simulatorConfig(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer network.Close()
	c, err := mesossim.StartCluster(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ci := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), Mesos: &mesos.ContainerInfo_MesosInfo{
		Image: &mesos.Image{Type: mesos.Image_DOCKER.Enum(), Docker: &mesos.Image_Docker{Name: "invalid.registry.k8s.io/invalid/alpine:3.1"}}}}
	b, _ := json.Marshal(agentcalls.LaunchContainer(mesos.ContainerID{Value: "missing"}, nil, ci, nil))
	req, _ := http.NewRequest(http.MethodPost, "http://"+c.Agents()[0].Endpoint()+"/api/v1", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "Failed to find archive for image") {
		t.Fatalf("LAUNCH_CONTAINER of a missing image = %d %s, want 400 Failed to find archive", resp.StatusCode, body)
	}
}
