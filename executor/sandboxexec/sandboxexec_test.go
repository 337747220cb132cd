package sandboxexec_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/executor/podsandbox"
	"github.com/kubemesos/kubemesos/executor/sandboxexec"
	"github.com/kubemesos/kubemesos/mesossim/agent"
	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// TestMain lets the test binary play `kubemesos pod-sandbox` (the executor the agent launches), the
// isolating agent's launch helper, and `hello PORT`, a server that greets with its hostname.
func TestMain(m *testing.M) {
	containerizer.MaybeRunHelper()
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "pod-sandbox":
			if err := sandboxexec.Run(context.Background(), sandboxexec.Config{}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Exit(0)
		case "hello":
			hello(os.Args[2])
		}
	}
	os.Exit(m.Run())
}

// hello serves "hello from <hostname>" on 127.0.0.1:port.
func hello(port string) {
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	host, _ := os.Hostname()
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		fmt.Fprintf(c, "hello from %s\n", host)
		c.Close()
	}
}

// master records what the agent forwards and acknowledges updates as a framework does.
type master struct {
	mu      sync.Mutex
	updates []mesos.TaskStatus
	exited  []int32
	agent   *agent.Agent
	// holdKilled leaves TASK_KILLED unacknowledged (the test acknowledges it).
	holdKilled bool
}

func (m *master) StatusUpdate(_ mesos.AgentID, fw mesos.FrameworkID, s mesos.TaskStatus) {
	m.mu.Lock()
	m.updates = append(m.updates, s)
	a, ack := m.agent, !(m.holdKilled && s.GetState() == mesos.TASK_KILLED)
	m.mu.Unlock()
	if a != nil && ack && len(s.UUID) > 0 {
		go a.Acknowledge(fw, s.TaskID, s.UUID)
	}
}
func (m *master) ExecutorMessage(mesos.AgentID, mesos.FrameworkID, mesos.ExecutorID, []byte) {}
func (m *master) ExecutorTerminated(_ mesos.AgentID, _ mesos.FrameworkID, _ mesos.ExecutorID, status int32) {
	m.mu.Lock()
	m.exited = append(m.exited, status)
	m.mu.Unlock()
}
func (m *master) ResourcesRecovered(mesos.AgentID, mesos.FrameworkID, mesos.Resources) {}

func (m *master) states(taskID string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, u := range m.updates {
		if u.TaskID.Value == taskID {
			out = append(out, u.GetState().String())
		}
	}
	return out
}

func (m *master) last(taskID string) mesos.TaskStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.updates) - 1; i >= 0; i-- {
		if m.updates[i].TaskID.Value == taskID {
			return m.updates[i]
		}
	}
	return mesos.TaskStatus{}
}

func (m *master) exits() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int32(nil), m.exited...)
}

// waitFor polls cond; a deadline against hangs, not a timing assertion.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newAgent(t testing.TB, m *master, mutate func(*agent.Config)) *agent.Agent {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	var res mesos.Resources
	res.Add(mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 4}})
	res.Add(mesos.Resource{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 1024}})
	cfg := agent.Config{
		ID: mesos.AgentID{Value: "agent-S0"}, Hostname: "agent0", Resources: res, WorkDir: t.TempDir(),
		Master: m, Log: log, ExecutorShutdownGracePeriod: 5 * time.Second,
		RecoveryTimeout: time.Minute, SubscriptionBackoffMax: time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.agent = a
	m.mu.Unlock()
	t.Cleanup(a.Stop)
	return a
}

var fw = mesos.FrameworkInfo{ID: &mesos.FrameworkID{Value: "fw-1"}, Name: "kubemesos", User: "root", Checkpoint: ptr(true)}

func ptr[T any](v T) *T { return &v }

func scalar(name string, v float64) mesos.Resource {
	return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
}

// sandboxExecutor is the ExecutorInfo the framework gives a pod's sandbox, with this test binary as
// the executor's binary.
func sandboxExecutor(t testing.TB, uid string, container *mesos.ContainerInfo) *mesos.ExecutorInfo {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return &mesos.ExecutorInfo{
		Type:        mesos.ExecutorInfo_CUSTOM,
		ExecutorID:  mesos.ExecutorID{Value: "kubemesos-pod-" + uid},
		Name:        ptr("kubemesos pod sandbox default/web"),
		FrameworkID: fw.ID,
		Command:     &mesos.CommandInfo{Value: ptr(strconv.Quote(self) + " pod-sandbox")},
		Resources:   []mesos.Resource{scalar("cpus", 0.01), scalar("mem", 32)},
		Container:   container,
	}
}

func sandboxTask(uid string) mesos.TaskInfo {
	return mesos.TaskInfo{Name: "sandbox", TaskID: mesos.TaskID{Value: "sandbox-" + uid},
		Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 64)}}
}

func executorOf(t *testing.T, a *agent.Agent, id string) agent.ExecutorState {
	t.Helper()
	var ex agent.ExecutorState
	waitFor(t, "executor "+id, func() bool {
		for _, e := range a.Executors() {
			if e.Info.ExecutorID.Value == id {
				ex = e
				return true
			}
		}
		return false
	})
	return ex
}

// forward asks the sandbox in dir for a connection to port and returns what the server said.
func forward(t *testing.T, dir string, port int) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := podsandbox.Dial(ctx, dir, int32(port))
	if err != nil {
		return "", err
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	return string(b), err
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The sandbox executor as an agent runs it (a process, host network): it subscribes, answers LAUNCH
// with TASK_RUNNING (the agent adds its container's status), carries port-forward connections
// through the socket in its sandbox, reached through the runs/latest link as the kubelet executor
// does, and on KILL answers TASK_KILLED and exits 0 once that is acknowledged.
func TestSandboxExecutorLifecycle(t *testing.T) {
	m := &master{}
	a := newAgent(t, m, nil)
	a.Launch(fw, sandboxExecutor(t, "u1", nil), []mesos.TaskInfo{sandboxTask("u1")}, false)
	waitFor(t, "TASK_RUNNING", func() bool { return len(m.states("sandbox-u1")) == 1 })
	st := m.last("sandbox-u1")
	if st.GetState() != mesos.TASK_RUNNING || st.GetSource() != mesos.SOURCE_EXECUTOR {
		t.Fatalf("first update %v", st)
	}
	ex := executorOf(t, a, "kubemesos-pod-u1")
	if id := st.GetContainerStatus().GetContainerID(); id == nil || id.Value != ex.ContainerID.Value {
		t.Errorf("TASK_RUNNING container_status %v, want the executor's container %s", id, ex.ContainerID.Value)
	}
	if nis := st.GetContainerStatus().GetNetworkInfos(); len(nis) == 0 || len(nis[0].IPAddresses) == 0 {
		t.Errorf("TASK_RUNNING network_infos %v, want the agent's address (host network)", nis)
	}

	// The host network: the pod's localhost is the host's.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, "hello from the host")
			c.Close()
		}
	}()
	latest := filepath.Join(filepath.Dir(ex.Directory), "latest")
	if got, err := filepath.EvalSymlinks(latest); err != nil || got != ex.Directory {
		t.Fatalf("%s -> %q (%v)", latest, got, err)
	}
	got, err := forward(t, latest, l.Addr().(*net.TCPAddr).Port)
	if err != nil || got != "hello from the host\n" {
		t.Errorf("port-forward through %s: %q, %v", latest, got, err)
	}
	closed := freePort(t)
	if _, err := forward(t, ex.Directory, closed); err == nil ||
		!strings.HasPrefix(err.Error(), fmt.Sprintf("failed to connect to localhost:%d inside namespace %q, IPv4: ", closed, ex.ContainerID.Value)) {
		t.Errorf("port-forward to a closed port: %v, want containerd's text naming the sandbox's container", err)
	}

	a.Kill(*fw.ID, mesos.TaskID{Value: "sandbox-u1"}, nil)
	waitFor(t, "the executor's exit", func() bool { return len(m.exits()) == 1 })
	if got := m.states("sandbox-u1"); strings.Join(got, ",") != "TASK_RUNNING,TASK_KILLED" {
		t.Errorf("states %v", got)
	}
	if st := m.exits()[0]; st != 0 {
		t.Errorf("exit status %d, want 0", st)
	}
}

// Without the acknowledgement of TASK_KILLED the executor stays (the agent resends the update to the
// framework meanwhile); once the framework acknowledges, it exits 0.
func TestSandboxExecutorWaitsForTheAcknowledgement(t *testing.T) {
	m := &master{holdKilled: true}
	a := newAgent(t, m, nil)
	a.Launch(fw, sandboxExecutor(t, "u2", nil), []mesos.TaskInfo{sandboxTask("u2")}, false)
	waitFor(t, "TASK_RUNNING", func() bool { return len(m.states("sandbox-u2")) == 1 })
	a.Kill(*fw.ID, mesos.TaskID{Value: "sandbox-u2"}, nil)
	waitFor(t, "TASK_KILLED", func() bool { st := m.last("sandbox-u2"); return st.GetState() == mesos.TASK_KILLED })
	ex := executorOf(t, a, "kubemesos-pod-u2")
	if got, err := forward(t, ex.Directory, freePort(t)); err == nil {
		t.Fatalf("port-forward to a closed port answered %q", got)
	} else if strings.Contains(err.Error(), "connecting to the pod sandbox") {
		t.Fatalf("the executor left before its terminal update was acknowledged: %v", err)
	}
	if n := len(m.exits()); n != 0 {
		t.Fatalf("executor exited before the acknowledgement")
	}
	killed := m.last("sandbox-u2")
	a.Acknowledge(*fw.ID, killed.TaskID, killed.UUID)
	waitFor(t, "the executor's exit", func() bool { return len(m.exits()) == 1 })
	if st := m.exits()[0]; st != 0 {
		t.Errorf("exit status %d, want 0", st)
	}
}

// SHUTDOWN ends a live sandbox: TASK_KILLED with the reason, then the executor exits.
func TestSandboxExecutorShutdown(t *testing.T) {
	m := &master{}
	a := newAgent(t, m, nil)
	a.Launch(fw, sandboxExecutor(t, "u3", nil), []mesos.TaskInfo{sandboxTask("u3")}, false)
	waitFor(t, "TASK_RUNNING", func() bool { return len(m.states("sandbox-u3")) == 1 })
	a.ShutdownExecutor(*fw.ID, mesos.ExecutorID{Value: "kubemesos-pod-u3"})
	waitFor(t, "the executor's exit", func() bool { return len(m.exits()) == 1 })
	if st := m.exits()[0]; st != 0 {
		t.Errorf("exit status %d, want 0 (before the agent's grace period SIGKILL)", st)
	}
	if st := m.last("sandbox-u3"); st.GetState() != mesos.TASK_KILLED || st.GetSource() != mesos.SOURCE_EXECUTOR || st.GetMessage() != "executor is shutting down" {
		t.Errorf("last update %v, want the executor's TASK_KILLED", st)
	}
}

// Outside an agent the environment is checked before anything starts.
func TestRunNeedsTheExecutorEnvironment(t *testing.T) {
	err := sandboxexec.Run(context.Background(), sandboxexec.Config{Getenv: func(string) string { return "" }, NoSignals: true})
	if err == nil || !strings.Contains(err.Error(), "missing environment variable MESOS_FRAMEWORK_ID") {
		t.Errorf("Run without MESOS_* = %v", err)
	}
}
