package main

import (
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// --gc-delay is every agent's --gc_delay, with or without the other agent tweaks.
func TestAgentsGCDelay(t *testing.T) {
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	for _, auth := range []bool{false, true} {
		cfg := config{dir: t.TempDir(), agents: 1, mesosListen: "127.0.0.1:0", gcDelay: 7 * time.Minute, authenticateExecutors: auth}
		simCfg, network, err := simulatorConfig(cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		network.Close()
		var c agent.Config
		simCfg.AgentTweak(0, &c)
		if c.GCDelay != 7*time.Minute || c.AuthenticateHTTPExecutors != auth {
			t.Errorf("authenticate %v: agent --gc_delay %v, --authenticate_http_executors %v", auth, c.GCDelay, c.AuthenticateHTTPExecutors)
		}
	}
}
