package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubemesos/kubemesos/mesossim/agent/internal/testexec"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	mesostime "github.com/mesos/mesos-go/api/v1/lib/time"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// testExecutorPath is the test executor binary built by TestMain.
var testExecutorPath string

func TestMain(m *testing.M) {
	// Agents with Linux isolators re-execute this binary as their launch helper.
	containerizer.MaybeRunHelper()
	dir, err := os.MkdirTemp("", "agent-testexecutor")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testExecutorPath = filepath.Join(dir, "testexecutor")
	build := exec.Command("go", "build", "-o", testExecutorPath, "./internal/testexecutor")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the test executor:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// masterCall is one call the agent made on its master.
type masterCall struct {
	Kind        string // update, message, exited, recovered
	FrameworkID string
	ExecutorID  string
	Status      mesos.TaskStatus
	Data        string
	ExitStatus  int32
	Resources   string
}

// fakeMaster records what the agent tells its master and can acknowledge every update.
type fakeMaster struct {
	mu      sync.Mutex
	calls   []masterCall
	autoAck bool
	agent   *Agent
}

func (m *fakeMaster) record(c masterCall) {
	m.mu.Lock()
	m.calls = append(m.calls, c)
	m.mu.Unlock()
}

func (m *fakeMaster) StatusUpdate(_ mesos.AgentID, fw mesos.FrameworkID, s mesos.TaskStatus) {
	m.record(masterCall{Kind: "update", FrameworkID: fw.Value, Status: s})
	m.mu.Lock()
	ack, a := m.autoAck, m.agent
	m.mu.Unlock()
	if ack {
		a.Acknowledge(fw, s.TaskID, s.UUID)
	}
}

func (m *fakeMaster) ExecutorMessage(_ mesos.AgentID, fw mesos.FrameworkID, e mesos.ExecutorID, data []byte) {
	m.record(masterCall{Kind: "message", FrameworkID: fw.Value, ExecutorID: e.Value, Data: string(data)})
}

func (m *fakeMaster) ExecutorTerminated(_ mesos.AgentID, fw mesos.FrameworkID, e mesos.ExecutorID, status int32) {
	m.record(masterCall{Kind: "exited", FrameworkID: fw.Value, ExecutorID: e.Value, ExitStatus: status})
}

func (m *fakeMaster) ResourcesRecovered(_ mesos.AgentID, fw mesos.FrameworkID, r mesos.Resources) {
	m.record(masterCall{Kind: "recovered", FrameworkID: fw.Value, Resources: r.String()})
}

func (m *fakeMaster) all(kind string) []masterCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []masterCall
	for _, c := range m.calls {
		if c.Kind == kind {
			out = append(out, c)
		}
	}
	return out
}

// updates returns the status updates the master received for a task, in order.
func (m *fakeMaster) updates(taskID string) []mesos.TaskStatus {
	var out []mesos.TaskStatus
	for _, c := range m.all("update") {
		if c.Status.TaskID.Value == taskID {
			out = append(out, c.Status)
		}
	}
	return out
}

// states returns the distinct-in-sequence states of a task's updates (resends collapsed).
func (m *fakeMaster) states(taskID string) []string {
	var out []string
	var last string
	for _, s := range m.updates(taskID) {
		id := string(s.UUID)
		if id == last {
			continue
		}
		last = id
		out = append(out, s.GetState().String())
	}
	return out
}

// waitFor polls cond until it holds (real processes are involved, so this is a deadline, not a timing
// assertion).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newTestAgent starts an agent on a fresh work dir; on cleanup it stops the agent and checks that no
// process is left running in the work dir.
func newTestAgent(t testing.TB, m *fakeMaster, mutate func(*Config)) *Agent {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	if testing.Verbose() {
		log.SetLevel(logrus.DebugLevel)
	}
	cfg := Config{
		ID:        mesos.AgentID{Value: "agent-S0"},
		Hostname:  "agent0.example",
		Resources: mustResources(t, "cpus:4;mem:1024"),
		WorkDir:   t.TempDir(),
		Master:    m,
		Log:       log,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	return startAgent(t, m, cfg)
}

// startAgent starts an agent with cfg and makes it m's agent; the test's end stops it and checks
// that nothing is left running.
func startAgent(t testing.TB, m *fakeMaster, cfg Config) *Agent {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.agent = a
	m.mu.Unlock()
	t.Cleanup(func() {
		a.Stop()
		// Killed grandchildren are reaped by init asynchronously: allow them a moment to vanish.
		deadline := time.Now().Add(5 * time.Second)
		for left := processesIn(cfg.WorkDir); len(left) > 0; left = processesIn(cfg.WorkDir) {
			if time.Now().After(deadline) {
				t.Errorf("processes left behind in %s: %v", cfg.WorkDir, left)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return a
}

// processesIn lists live processes whose working directory is under dir.
func processesIn(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		if strings.Trim(e.Name(), "0123456789") != "" {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err == nil && strings.HasPrefix(cwd, dir) {
			cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			out = append(out, e.Name()+":"+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}

func mustResources(t testing.TB, s string) mesos.Resources {
	t.Helper()
	var out mesos.Resources
	for _, part := range strings.Split(s, ";") {
		name, v, _ := strings.Cut(part, ":")
		var f float64
		if _, err := fmt.Sscan(v, &f); err != nil {
			t.Fatal(err)
		}
		out.Add(mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: f}})
	}
	return out
}

func testFramework(checkpoint bool, caps ...mesos.FrameworkInfo_Capability_Type) mesos.FrameworkInfo {
	fi := mesos.FrameworkInfo{ID: &mesos.FrameworkID{Value: "fw-1"}, Name: "test", User: "root", Checkpoint: &checkpoint}
	for _, c := range caps {
		fi.Capabilities = append(fi.Capabilities, mesos.FrameworkInfo_Capability{Type: c})
	}
	return fi
}

// processExecutor runs the test executor binary.
func processExecutor(id string, env map[string]string) *mesos.ExecutorInfo {
	path := testExecutorPath
	info := &mesos.ExecutorInfo{
		ExecutorID: mesos.ExecutorID{Value: id},
		Command:    &mesos.CommandInfo{Value: &path},
		Resources:  nil,
	}
	if len(env) > 0 {
		info.Command.Environment = &mesos.Environment{}
		for _, k := range testexec.Keys(env) {
			v := env[k]
			info.Command.Environment.Variables = append(info.Command.Environment.Variables,
				mesos.Environment_Variable{Name: k, Value: &v})
		}
	}
	return info
}

// hookExecutor runs the test executor in-process (Config.ExecutorHook).
func hookExecutor(ctx context.Context, env map[string]string) error {
	cfg := config.Config{
		FrameworkID:   env["MESOS_FRAMEWORK_ID"],
		ExecutorID:    env["MESOS_EXECUTOR_ID"],
		Directory:     env["MESOS_DIRECTORY"],
		Sandbox:       env["MESOS_SANDBOX"],
		AgentEndpoint: env["MESOS_AGENT_ENDPOINT"],
	}
	var err error
	if cfg.ExecutorShutdownGracePeriod, err = mesostime.ParseDuration(env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"]); err != nil {
		return err
	}
	return testexec.Run(ctx, cfg, env)
}

func dataTask(id, data string) mesos.TaskInfo {
	return mesos.TaskInfo{
		Name:   id,
		TaskID: mesos.TaskID{Value: id},
		Data:   []byte(data),
	}
}

func commandTask(id, shell string) mesos.TaskInfo {
	return mesos.TaskInfo{
		Name:    id,
		TaskID:  mesos.TaskID{Value: id},
		Command: &mesos.CommandInfo{Value: &shell},
	}
}

// encodingUnmarshaler is what mesos-go decoders fill.
type encodingUnmarshaler = encoding.Unmarshaler

type decoder struct{ d encoding.Decoder }

func (d decoder) Decode(u encodingUnmarshaler) error { return d.d.Decode(u) }

func decoderOf(r encoding.Decoder) decoder { return decoder{r} }

func mustID(s string) mesos.AgentID { return mesos.AgentID{Value: s} }

func quietLog() *logrus.Logger {
	l := logrus.New()
	l.SetLevel(logrus.ErrorLevel)
	return l
}

// describeContainer is what the agent knows of a container and what the kernel says of its process
// (state, wait channel, namespaces, cgroups): the evidence a timed-out test logs.
func (a *Agent) describeContainer(id mesos.ContainerID) string {
	a.mu.Lock()
	c := a.containers[containerKey(&id)]
	var desc string
	var pid int
	if c == nil {
		desc = "the agent has no container " + containerKey(&id)
	} else {
		pid = c.pid
		desc = fmt.Sprintf("container %s pid %d exited %v status %d limitation %+v", c.key, c.pid, c.exited, c.status, c.limitation)
	}
	a.mu.Unlock()
	if pid == 0 {
		return desc
	}
	for _, f := range []string{"status", "wchan", "cgroup", "stack"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
		if err != nil {
			desc += fmt.Sprintf("; %s: %v", f, err)
			continue
		}
		if f == "status" {
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "State:") || strings.HasPrefix(l, "NSpid:") {
					desc += "; " + l
				}
			}
			continue
		}
		desc += fmt.Sprintf("; %s: %q", f, b)
	}
	if kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err == nil {
		desc += fmt.Sprintf("; children %q", kids)
	}
	return desc
}

// testLog is an agent logger whose entries the test reads (and prints when it fails).
func testLog(t *testing.T) (*logrus.Logger, *logtest.Hook) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetLevel(logrus.DebugLevel)
	hook := logtest.NewLocal(log)
	t.Cleanup(func() {
		if t.Failed() {
			for _, e := range hook.AllEntries() {
				line, _ := e.String()
				t.Log(strings.TrimSpace(line))
			}
		}
	})
	return log, hook
}
