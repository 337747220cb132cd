package mesossim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// Every agent of a cluster gets the image flags, and reports them in GET_FLAGS; an agent Mesos would
// refuse to start fails the cluster's start.
func TestClusterAgentImageFlags(t *testing.T) {
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	registry := t.TempDir()
	c, err := StartCluster(ClusterConfig{
		Master: Config{Log: log}, Agents: 2, WorkDir: t.TempDir(),
		ImageProviders: "docker", DockerRegistry: registry, Isolation: "filesystem/linux,docker/runtime",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, a := range c.Agents() {
		resp, err := http.Post("http://"+a.Endpoint()+"/api/v1", "application/json", strings.NewReader(`{"type":"GET_FLAGS"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var r struct {
			GetFlags struct {
				Flags []struct{ Name, Value string }
			} `json:"get_flags"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("GET_FLAGS: %s (%v)", body, err)
		}
		got := map[string]string{}
		for _, f := range r.GetFlags.Flags {
			got[f.Name] = f.Value
		}
		if got["image_providers"] != "docker" || got["docker_registry"] != registry || got["isolation"] != "filesystem/linux,docker/runtime" {
			t.Errorf("agent %s flags = %v", a.ID().Value, got)
		}
	}

	_, err = StartCluster(ClusterConfig{Master: Config{Log: log}, Agents: 1, WorkDir: t.TempDir(), ImageProviders: "docker", DockerRegistry: registry, Isolation: "filesystem/linux"})
	if err == nil || !strings.Contains(err.Error(), "Docker runtime isolator has to be specified") {
		t.Errorf("StartCluster without docker/runtime: %v", err)
	}
}
