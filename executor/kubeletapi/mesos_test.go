package kubeletapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	clientexec "k8s.io/client-go/util/exec"

	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// nopMaster is the master of a lone simulated agent: these tests only use the agent operator API.
type nopMaster struct{}

func (nopMaster) StatusUpdate(mesos.AgentID, mesos.FrameworkID, mesos.TaskStatus)            {}
func (nopMaster) ExecutorMessage(mesos.AgentID, mesos.FrameworkID, mesos.ExecutorID, []byte) {}
func (nopMaster) ExecutorTerminated(mesos.AgentID, mesos.FrameworkID, mesos.ExecutorID, int32) {
}
func (nopMaster) ResourcesRecovered(mesos.AgentID, mesos.FrameworkID, mesos.Resources) {}

// simPod is a simulated agent with a running executor container (an in-process hook that only
// waits: the pod's sandbox executor, or the kubelet executor for a host-network pod) and, nested one
// level under it, one pod container running `sleep`, as the executor's nested runtime launches it.
// simPodUID is the UID of the simulated pod.
const simPodUID = "uid-web"

type simPod struct {
	agentURL  string
	executor  mesos.ContainerID // the executor's container, parent of pod containers
	container string            // the pod container's ID value
	sandbox   string            // the executor's sandbox
}

func newSimPod(t testing.TB) *simPod {
	t.Helper()
	var res mesos.Resources
	res.Add(mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 1}})
	a, err := agent.New(agent.Config{
		ID:                          mesos.AgentID{Value: "agent-S0"},
		Hostname:                    "agent0",
		Resources:                   res,
		WorkDir:                     t.TempDir(),
		Master:                      nopMaster{},
		Log:                         quietLog(),
		ExecutorRegistrationTimeout: time.Hour,
		ExecutorHook: func(ctx context.Context, _ map[string]string) error {
			<-ctx.Done()
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	fid := mesos.FrameworkID{Value: "fw-1"}
	cmd := "./kubemesos executor"
	exec := mesos.ExecutorInfo{Type: mesos.ExecutorInfo_CUSTOM, ExecutorID: mesos.ExecutorID{Value: "kubemesos-executor"},
		FrameworkID: &fid, Command: &mesos.CommandInfo{Value: &cmd}}
	a.Launch(mesos.FrameworkInfo{ID: &fid, Name: "kubemesos", User: "root"}, &exec,
		[]mesos.TaskInfo{{Name: "default/web", TaskID: mesos.TaskID{Value: "pod-uid-web"}, Data: []byte("{}")}}, false)
	waitFor(t, "the executor's container", func() bool { return len(a.Executors()) == 1 })
	ex := a.Executors()[0]
	sp := &simPod{agentURL: "http://" + a.Endpoint() + "/api/v1", executor: ex.ContainerID, container: "uid-web-main-0", sandbox: ex.Directory}

	api := httpagent.NewSender(httpcli.New(httpcli.Endpoint(sp.agentURL)).Send)
	parent := sp.executor
	sleep := "sleep 600"
	id := mesos.ContainerID{Value: sp.container, Parent: &parent}
	if err := agentcalls.SendNoData(context.Background(), api, agentcalls.NonStreaming(agentcalls.LaunchContainer(id, &mesos.CommandInfo{Value: &sleep}, nil, nil))); err != nil {
		t.Fatalf("launching the pod container: %v", err)
	}
	return sp
}

func (sp *simPod) execer() *MesosExecer {
	return NewMesosExecer(MesosExecerConfig{AgentURL: sp.agentURL, Log: quietLog(), PodParent: func(uid types.UID) (mesos.ContainerID, bool) {
		return sp.executor, uid == simPodUID
	}})
}

func TestMesosExecer(t *testing.T) {
	sp := newSimPod(t)
	m := sp.execer()
	tests := []struct {
		name       string
		cmd        []string
		stdin      string
		noStdin    bool
		wantStdout string
		wantStderr string
		wantCode   int
	}{
		// Commands read their stdin to its end first: the simulated agent attaches a session's output
		// only once it has launched the process, so output a command writes before that is lost, while
		// stdin's end of file only arrives after the launch (so nothing here depends on timing).
		{"echo", []string{"sh", "-c", "cat >/dev/null; echo hello world"}, "", true, "hello world\n", "", 0},
		{"stdin round trip", []string{"cat"}, "ping\npong\n", false, "ping\npong\n", "", 0},
		{"no stdin reads end of file", []string{"cat"}, "", true, "", "", 0},
		{"stderr and exit code", []string{"sh", "-c", "cat >/dev/null; echo out; echo err >&2; exit 3"}, "", true, "out\n", "err\n", 3},
		{"killed by a signal", []string{"sh", "-c", "cat >/dev/null; kill -9 $$"}, "", true, "", "", 137},
		// A DEBUG container inherits its parent's MESOS_SANDBOX and working directory.
		{"runs in a session under the pod container", []string{"sh", "-c", `cat >/dev/null; basename "$MESOS_SANDBOX"; basename "$(pwd)"`}, "", true, "uid-web-main-0\nuid-web-main-0\n", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			req := ExecRequest{PodUID: simPodUID, ContainerID: sp.container, Command: tt.cmd, Stdout: &stdout, Stderr: &stderr}
			if !tt.noStdin {
				req.Stdin = strings.NewReader(tt.stdin)
			}
			code, err := m.Exec(context.Background(), req)
			if err != nil {
				t.Fatalf("Exec: %v", err)
			}
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantStdout, stdout.String()); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStderr, stderr.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
	// Every session's sandbox was removed afterwards.
	sessions, _ := filepath.Glob(filepath.Join(sp.sandbox, "containers", sp.container, "containers", "*"))
	if len(sessions) != 0 {
		t.Errorf("exec session sandboxes left behind: %v", sessions)
	}
}

// With ExecIn (the runtime's), a session runs the command and ContainerInfo it gives for the target
// container (its workingDir, its capabilities), with the request's TTY on top.
func TestMesosExecerExecIn(t *testing.T) {
	sp := newSimPod(t)
	var gotContainer string
	m := NewMesosExecer(MesosExecerConfig{AgentURL: sp.agentURL, Log: quietLog(),
		PodParent: func(uid types.UID) (mesos.ContainerID, bool) { return sp.executor, uid == simPodUID },
		ExecIn: func(containerID string, command []string) ([]string, *mesos.ContainerInfo) {
			gotContainer = containerID
			return append([]string{"/bin/sh", "-c", `cd "$1" && shift && exec "$@"`, "sh", "/"}, command...),
				&mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum()}
		}})
	var stdout bytes.Buffer
	code, err := m.Exec(context.Background(), ExecRequest{PodUID: simPodUID, ContainerID: sp.container, Command: []string{"pwd"}, Stdout: &stdout})
	if err != nil || code != 0 || stdout.String() != "/\n" || gotContainer != sp.container {
		t.Errorf("exec pwd: exit %d, %v, stdout %q, ExecIn asked for %q; want / from ExecIn's command for %s", code, err, stdout.String(), gotContainer, sp.container)
	}
}

// A session whose command ended (and whose container the agent destroyed) before its input was
// attached answers the input with "Unknown container": that is no refusal, its output and exit code
// stand. The proxy holds the input call and the output's end so that the order is forced.
func TestMesosExecerSessionEndedBeforeItsInput(t *testing.T) {
	sp := newSimPod(t)
	target, err := url.Parse(sp.agentURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	proxy.FlushInterval = -1
	proxy.ModifyResponse = func(r *http.Response) error {
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/recordio") {
			r.Body = &slowEOF{ReadCloser: r.Body, delay: time.Second}
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/recordio") {
			time.Sleep(300 * time.Millisecond) // ATTACH_CONTAINER_INPUT: the only streamed request
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	m := NewMesosExecer(MesosExecerConfig{AgentURL: srv.URL + target.Path, Log: quietLog(), PodParent: func(uid types.UID) (mesos.ContainerID, bool) {
		return sp.executor, uid == simPodUID
	}})
	var stdout bytes.Buffer
	code, err := m.Exec(context.Background(), ExecRequest{PodUID: simPodUID, ContainerID: sp.container,
		Command: []string{"sh", "-c", "echo done; exit 4"}, Stdin: strings.NewReader(""), Stdout: &stdout})
	if err != nil || code != 4 || stdout.String() != "done\n" {
		t.Errorf("exec = exit %d, %v, stdout %q; want exit 4, no error, \"done\\n\"", code, err, stdout.String())
	}
}

// slowEOF delays a body's end of file.
type slowEOF struct {
	io.ReadCloser
	delay time.Duration
}

func (s *slowEOF) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	if err == io.EOF {
		time.Sleep(s.delay)
	}
	return n, err
}

func TestMesosExecerErrors(t *testing.T) {
	sp := newSimPod(t)
	m := sp.execer()
	if _, err := m.Exec(context.Background(), ExecRequest{PodUID: "uid-other", ContainerID: sp.container, Command: []string{"true"}}); err == nil || !strings.Contains(err.Error(), "has no running sandbox") {
		t.Errorf("Exec in a pod without a sandbox = %v", err)
	}
	if _, err := m.Exec(context.Background(), ExecRequest{PodUID: simPodUID, ContainerID: "no-such-container", Command: []string{"true"}}); err == nil {
		t.Error("Exec in a container the agent does not know succeeded")
	}
	if _, err := m.Exec(context.Background(), ExecRequest{ContainerID: sp.container}); err == nil {
		t.Error("Exec of an empty command succeeded")
	}
}

// TestMesosExecerEndsWithTheClient: when the client goes away mid-command (ctx cancelled), Exec
// returns and the session container is killed and removed.
func TestMesosExecerEndsWithTheClient(t *testing.T) {
	sp := newSimPod(t)
	m := sp.execer()
	ctx, cancel := context.WithCancel(context.Background())
	stdinR, stdinW, err := os.Pipe() // stdin the client never closes
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	defer stdinR.Close()
	var stdout lockedBuffer
	done := make(chan error, 1)
	go func() {
		_, err := m.Exec(ctx, ExecRequest{PodUID: simPodUID, ContainerID: sp.container, Command: []string{"sh", "-c", "read x; echo started; sleep 600"}, Stdin: stdinR, Stdout: &stdout})
		done <- err
	}()
	if _, err := stdinW.WriteString("go\n"); err != nil { // the output is attached by the time this arrives
		t.Fatal(err)
	}
	waitFor(t, "the command to start", func() bool { return stdout.String() == "started\n" })
	cancel()
	if err := <-done; err == nil {
		t.Error("Exec of an abandoned session returned no error")
	}
	sessions, _ := filepath.Glob(filepath.Join(sp.sandbox, "containers", sp.container, "containers", "*"))
	if len(sessions) != 0 {
		t.Errorf("exec session sandboxes left behind: %v", sessions)
	}
}

// TestExecThroughServerOnMesos is `kubectl exec` as the API server relays it (SPDY) through the
// server to a nested container session on the simulated agent.
func TestExecThroughServerOnMesos(t *testing.T) {
	sp := newSimPod(t)
	reg := NewRegistry(sp.sandbox)
	reg.Update(testPod("web"), corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running("main", sp.container)}})
	base := startServer(t, Config{Pods: reg, Execer: sp.execer()})
	cfg := &restclient.Config{Host: base, TLSClientConfig: restclient.TLSClientConfig{Insecure: true}}
	u, _ := url.Parse(execURL(base, "/exec/default/web/main", []string{"sh", "-c", "read x; echo got:$x; echo warn >&2; exit 4"}, true))
	ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err = ex.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdin: strings.NewReader("ping\n"), Stdout: &stdout, Stderr: &stderr})
	var exitErr clientexec.CodeExitError
	if !errors.As(err, &exitErr) || exitErr.Code != 4 {
		t.Errorf("exec error = %v, want exit code 4", err)
	}
	if diff := cmp.Diff("got:ping\n", stdout.String()); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("warn\n", stderr.String()); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
}
