package mesossim

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/mesos/mesos-go/api/v1/lib/master"

	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// An agent listening on an address of its own (agents on the pod network each have one) is reported
// with it, as Mesos reports an agent's libprocess address: GET_AGENTS' pid (which frameworks read as
// the agent's IP) and /state's.
func TestAgentAddressInPID(t *testing.T) {
	c, err := StartCluster(ClusterConfig{
		Master:  Config{Log: quietLog()},
		Agents:  1,
		WorkDir: t.TempDir(),
		AgentTweak: func(i int, cfg *agent.Config) {
			cfg.ListenAddress = "127.0.0.2:0" // every 127/8 address is the host's
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	h := &harness{t: t, m: c.Master, url: c.URL}
	info := c.Agents()[0].Info()
	port := info.GetPort()
	want := "slave(1)@127.0.0.2:" + strconv.Itoa(int(port))
	r := h.operator(master.Call{Type: master.Call_GET_AGENTS}, mediaProtobuf)
	agents := r.GetGetAgents().GetAgents()
	if len(agents) != 1 || agents[0].GetPID() != want {
		t.Fatalf("GET_AGENTS pid = %v, want %s", agents, want)
	}
	if got := c.Agents()[0].PID(); got != want {
		t.Errorf("the agent's own PID %s, want %s", got, want)
	}
	resp, err := http.Get(c.URL + "/state")
	if err != nil {
		t.Fatal(err)
	}
	state, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(state), `"pid":"`+want+`"`) {
		t.Errorf("/state lacks the agent's pid %s: %s", want, state)
	}
}
