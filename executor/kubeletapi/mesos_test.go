package kubeletapi

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"

	"github.com/kubemesos/kubemesos/executor/nested"
	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// nopMaster is the master of a lone simulated agent: these tests only use the agent operator API.
type nopMaster struct{}

func (nopMaster) StatusUpdate(mesos.AgentID, mesos.FrameworkID, mesos.TaskStatus)            {}
func (nopMaster) ExecutorMessage(mesos.AgentID, mesos.FrameworkID, mesos.ExecutorID, []byte) {}
func (nopMaster) ExecutorTerminated(mesos.AgentID, mesos.FrameworkID, mesos.ExecutorID, int32) {
}
func (nopMaster) ResourcesRecovered(mesos.AgentID, mesos.FrameworkID, mesos.Resources) {}

// simPod is a simulated agent with a pod as the executor's nested runtime launches it: its
// standalone sandbox container and, under it, one pod container, both running `sleep`.
// simPodUID is the UID of the simulated pod.
const simPodUID = "uid-web"

type simPod struct {
	agentURL  string
	container string // the pod container's ID value
	workDir   string // the agent's work_dir
}

func newSimPod(t testing.TB) *simPod {
	t.Helper()
	var res mesos.Resources
	res.Add(mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 1}})
	workDir := t.TempDir()
	a, err := agent.New(agent.Config{
		ID:        mesos.AgentID{Value: "agent-S0"},
		Hostname:  "agent0",
		Resources: res,
		WorkDir:   workDir,
		Master:    nopMaster{},
		Log:       quietLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	sp := &simPod{agentURL: "http://" + a.Endpoint() + "/api/v1", container: "uid-web-main-0", workDir: workDir}

	api := httpagent.NewSender(httpcli.New(httpcli.Endpoint(sp.agentURL)).Send)
	sleep := "sleep 600"
	sandbox := nested.SandboxContainerID(simPodUID)
	if err := agentcalls.SendNoData(context.Background(), api, agentcalls.NonStreaming(agentcalls.LaunchContainer(sandbox, &mesos.CommandInfo{Value: &sleep}, nil, nil))); err != nil {
		t.Fatalf("launching the pod sandbox: %v", err)
	}
	id := mesos.ContainerID{Value: sp.container, Parent: &sandbox}
	if err := agentcalls.SendNoData(context.Background(), api, agentcalls.NonStreaming(agentcalls.LaunchContainer(id, &mesos.CommandInfo{Value: &sleep}, nil, nil))); err != nil {
		t.Fatalf("launching the pod container: %v", err)
	}
	t.Cleanup(func() {
		_ = agentcalls.SendNoData(context.Background(), api, agentcalls.NonStreaming(agentcalls.KillContainer(sandbox)))
	})
	return sp
}

func (sp *simPod) execer() *MesosExecer {
	return NewMesosExecer(MesosExecerConfig{AgentURL: sp.agentURL, Log: quietLog()})
}

// A pod's containers are nested in its standalone sandbox, and a Mesos agent attaches input and
// output only to containers under an executor's container (http.cpp attachContainerInput/Output:
// "Container … cannot be found" when getExecutor of the root finds none): an exec session there cannot
// get its stdin, so Exec ends it and reports the agent's refusal instead of waiting for ever.
func TestMesosExecerRefusedInStandaloneSandbox(t *testing.T) {
	sp := newSimPod(t)
	m := sp.execer()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout bytes.Buffer
	_, err := m.Exec(ctx, ExecRequest{PodUID: simPodUID, ContainerID: sp.container, Command: []string{"cat"}, Stdin: strings.NewReader("ping\n"), Stdout: &stdout})
	if err == nil || !strings.Contains(err.Error(), "cannot be found") || ctx.Err() != nil {
		t.Fatalf("Exec = %v (ctx %v), want the agent's refusal", err, ctx.Err())
	}
	waitFor(t, "the refused session removed", func() bool {
		sessions, _ := filepath.Glob(filepath.Join(nested.ContainerDir(sp.workDir, simPodUID, sp.container), "containers", "*"))
		return len(sessions) == 0
	})
}

func TestMesosExecerErrors(t *testing.T) {
	sp := newSimPod(t)
	m := sp.execer()
	if _, err := m.Exec(context.Background(), ExecRequest{PodUID: simPodUID, ContainerID: "no-such-container", Command: []string{"true"}}); err == nil {
		t.Error("Exec in a container the agent does not know succeeded")
	}
	if _, err := m.Exec(context.Background(), ExecRequest{ContainerID: sp.container}); err == nil {
		t.Error("Exec of an empty command succeeded")
	}
}
