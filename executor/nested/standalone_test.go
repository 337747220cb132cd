package nested_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemesos/kubemesos/executor/nested"
	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// standaloneAgent is a simulated agent in process mode (no executor: pod sandboxes are standalone
// containers) and a sender of its operator API.
type standaloneAgent struct {
	url     string
	workDir string
	api     agentcalls.Sender
}

func newStandaloneAgent(t *testing.T) *standaloneAgent {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	var res mesos.Resources
	res.Add(mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 4}})
	res.Add(mesos.Resource{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 1024}})
	workDir := t.TempDir()
	a, err := agent.New(agent.Config{ID: mesos.AgentID{Value: "agent-S0"}, Hostname: "agent0", Resources: res, WorkDir: workDir,
		Master: quietMaster{}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	url := "http://" + a.Endpoint() + "/api/v1"
	cli := httpcli.New(httpcli.Endpoint(url), httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]))
	return &standaloneAgent{url: url, workDir: workDir, api: httpagent.NewSender(cli.Send)}
}

func (s *standaloneAgent) runtime(framework string) *nested.Runtime {
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	return nested.New(nested.Config{AgentURL: s.url, WorkDir: s.workDir, FrameworkID: framework, SandboxCommand: []string{"sleep", "600"}, Log: log})
}

// launch starts a standalone container running sleep.
func (s *standaloneAgent) launch(t *testing.T, id string) {
	t.Helper()
	sleep := "sleep 600"
	if err := agentcalls.SendNoData(context.Background(), s.api, agentcalls.NonStreaming(agentcalls.LaunchContainer(mesos.ContainerID{Value: id}, &mesos.CommandInfo{Value: &sleep}, nil, nil))); err != nil {
		t.Fatalf("launching %s: %v", id, err)
	}
	t.Cleanup(func() {
		_ = agentcalls.SendNoData(context.Background(), s.api, agentcalls.NonStreaming(agentcalls.KillContainer(mesos.ContainerID{Value: id})))
	})
}

// standalone lists the agent's live standalone containers (GET_CONTAINERS show_standalone).
func (s *standaloneAgent) standalone(t *testing.T) []string {
	t.Helper()
	yes, no := true, false
	call := agentcalls.GetContainers()
	call.GetContainers = &agentapi.Call_GetContainers{ShowNested: &no, ShowStandalone: &yes}
	resp, err := s.api.Send(context.Background(), agentcalls.NonStreaming(call))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	var out agentapi.Response
	if err := resp.Decode(&out); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range out.GetGetContainers().GetContainers() {
		if c.ContainerID.Parent == nil {
			ids = append(ids, c.ContainerID.Value)
		}
	}
	slices.Sort(ids)
	return ids
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func standalonePod(uid types.UID) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: string(uid), Namespace: "default", UID: uid},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Command: []string{"sleep", "600"}}}}}
}

// The sandbox is a standalone container kubemesos-pod-<UID> in <work_dir>/containers, with the pod's
// container nested one level under it; stopping it removes both.
func TestSandboxIsStandalone(t *testing.T) {
	s := newStandaloneAgent(t)
	r := s.runtime("fw-1")
	pod := standalonePod("u1")
	if _, err := r.RunPodSandbox(context.Background(), pod, ""); err != nil {
		t.Fatal(err)
	}
	if got := s.standalone(t); !slices.Equal(got, []string{"kubemesos-pod-u1"}) {
		t.Errorf("standalone containers %v, want the sandbox", got)
	}
	dir := filepath.Join(s.workDir, "containers", "kubemesos-pod-u1")
	for _, f := range []string{"resolv.conf", "hosts", "hostname", "kubemesos-framework"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("sandbox file %s: %v", f, err)
		}
	}
	h, err := r.Start(context.Background(), pod, &pod.Spec.Containers[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "containers", "u1-main-0", "stdout"); h.LogPath != want {
		t.Errorf("log path %q, want %q", h.LogPath, want)
	}
	if _, err := os.Stat(filepath.Dir(h.LogPath)); err != nil {
		t.Errorf("the container's directory is not under the sandbox's: %v", err)
	}
	if err := r.StopPodSandbox(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	if got := s.standalone(t); len(got) != 0 {
		t.Errorf("standalone containers after StopPodSandbox: %v", got)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the sandbox's directory is left (%v)", err)
	}
}

// An exiting executor stops every sandbox it still has (standalone containers outlive it).
func TestStopAllSandboxes(t *testing.T) {
	s := newStandaloneAgent(t)
	r := s.runtime("fw-1")
	for _, uid := range []types.UID{"a", "b"} {
		if _, err := r.RunPodSandbox(context.Background(), standalonePod(uid), ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.StopPodSandbox(context.Background(), standalonePod("a")); err != nil {
		t.Fatal(err)
	}
	n, err := r.StopAllSandboxes(context.Background())
	if n != 1 || err != nil {
		t.Errorf("StopAllSandboxes = %d, %v; want the 1 left", n, err)
	}
	if got := s.standalone(t); len(got) != 0 {
		t.Errorf("standalone containers left: %v", got)
	}
}

// At its start (SUBSCRIBED) the executor reaps the sandboxes a killed executor of its framework left:
// kubemesos-pod-* standalone containers it did not launch. Another framework's sandboxes (named in
// their directory) and other standalone containers stay; the first sandbox waits for the reaping.
func TestOrphanedSandboxesReaped(t *testing.T) {
	s := newStandaloneAgent(t)
	for _, id := range []string{"kubemesos-pod-orphan", "kubemesos-pod-unowned", "kubemesos-pod-theirs", "someone-else"} {
		s.launch(t, id)
	}
	for id, fw := range map[string]string{"kubemesos-pod-orphan": "fw-1", "kubemesos-pod-theirs": "fw-2"} {
		if err := os.WriteFile(filepath.Join(s.workDir, "containers", id, "kubemesos-framework"), []byte(fw), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := s.runtime("fw-1")
	r.SetParent(mesos.ContainerID{Value: "executor"})
	waitUntil(t, "the orphans reaped", func() bool {
		return slices.Equal(s.standalone(t), []string{"kubemesos-pod-theirs", "someone-else"})
	})
	if _, err := os.Stat(filepath.Join(s.workDir, "containers", "kubemesos-pod-orphan")); !os.IsNotExist(err) {
		t.Errorf("a reaped sandbox's directory is left (%v)", err)
	}

	// A runtime whose first sandbox comes before SUBSCRIBED reaps first: a pod relaunched on the agent
	// after its executor was killed gets a fresh sandbox, not the orphan.
	s.launch(t, "kubemesos-pod-again")
	r2 := s.runtime("fw-1")
	if _, err := r2.RunPodSandbox(context.Background(), standalonePod("again"), ""); err != nil {
		t.Fatal(err)
	}
	if got := s.standalone(t); !slices.Equal(got, []string{"kubemesos-pod-again", "kubemesos-pod-theirs", "someone-else"}) {
		t.Errorf("standalone containers %v", got)
	}
	if b, err := os.ReadFile(filepath.Join(s.workDir, "containers", "kubemesos-pod-again", "kubemesos-framework")); err != nil || string(b) != "fw-1" {
		t.Errorf("the relaunched pod's sandbox is not a fresh one of fw-1: %q, %v", b, err)
	}
}
