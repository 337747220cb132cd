package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/internal/imagearchive"
	"github.com/kubemesos/kubemesos/mesossim"
)

// local-up's agents run the images of their local registry by Mesos' docker/runtime rule and any
// other image by its --image-command.
func TestSimulatorProvisionsStandInImages(t *testing.T) {
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	cfg := config{dir: t.TempDir(), agents: 1, mesosListen: "127.0.0.1:0", imageCommands: map[string]string{"*": "echo fallback"}}
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
	a := c.Agents()[0]

	post := func(call *agentapi.Call) (int, []byte) {
		t.Helper()
		b, _ := json.Marshal(call)
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Endpoint()+"/api/v1", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	no := false
	for _, tc := range []struct {
		id, image string
		cmd       *mesos.CommandInfo
		want      string
	}{
		{"entry", imagearchive.EchoEntrypointImage, &mesos.CommandInfo{Shell: &no}, "entry default-cmd\n"},
		{"entry-args", imagearchive.EchoEntrypointImage, &mesos.CommandInfo{Shell: &no, Arguments: []string{"a", "b"}}, "entry a b\n"},
		{"busybox", "busybox", &mesos.CommandInfo{Shell: &no, Value: ptr("sh"), Arguments: []string{"sh", "-c", "echo bb"}}, "bb\n"},
		{"other", "nginx", nil, "fallback\n"},
	} {
		id := mesos.ContainerID{Value: tc.id}
		ci := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), Mesos: &mesos.ContainerInfo_MesosInfo{
			Image: &mesos.Image{Type: mesos.Image_DOCKER.Enum(), Docker: &mesos.Image_Docker{Name: tc.image}}}}
		if code, body := post(agentcalls.LaunchContainer(id, tc.cmd, ci, nil)); code != http.StatusOK {
			t.Fatalf("%s: LAUNCH_CONTAINER = %d %s", tc.id, code, body)
		}
		// A standalone container that already ended is forgotten (404), as Mesos does.
		if code, body := post(agentcalls.WaitContainer(id)); code != http.StatusOK && code != http.StatusNotFound {
			t.Fatalf("%s: WAIT_CONTAINER = %d %s", tc.id, code, body)
		}
		if out := waitOutput(filepath.Join(simCfg.WorkDir, "containers", tc.id, "stdout"), tc.want); out != tc.want {
			t.Errorf("%s: output %q, want %q", tc.id, out, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// waitOutput reads a container's output file until it is want (its process may still be flushing
// when WAIT answers, or WAIT had nothing left to wait for), for at most 30 s.
func waitOutput(path, want string) string {
	var out []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if out, _ = os.ReadFile(path); string(out) == want {
			break
		}
	}
	return string(out)
}
