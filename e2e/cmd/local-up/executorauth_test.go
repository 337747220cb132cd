package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/mesossim"
)

// --authenticate-http-executors starts the agents as Mesos agents with --authenticate_http_executors
// and jwt authentication: an executor call without a token gets Mesos' 401.
func TestAgentsAuthenticateExecutors(t *testing.T) {
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	cfg := config{dir: t.TempDir(), agents: 1, mesosListen: "127.0.0.1:0", authenticateExecutors: true} // no image store: process mode
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
	body := `{"type":"HEARTBEAT","framework_id":{"value":"f"},"executor_id":{"value":"e"}}`
	resp, err := http.Post("http://"+c.Agents()[0].Endpoint()+"/api/v1/executor", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="mesos-agent-executor"` || string(b) != "401 Unauthorized." {
		t.Errorf("= %d %q %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), b)
	}
}
