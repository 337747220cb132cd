package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
)

// nestedFixture is an agent with one live executor whose container is the parent of nested containers.
type nestedFixture struct {
	a      *Agent
	m      *fakeMaster
	parent mesos.ContainerID
	dir    string
	api    agentcalls.Sender
}

func newNestedFixture(t *testing.T) *nestedFixture {
	t.Helper()
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, func(c *Config) {
		c.ExecutorHook = hookExecutor
		c.ImageCommands = map[string]string{"nginx": "echo from-image > image.txt", "echoer": `echo "$GREETING" "$@" > args.txt`}
	})
	a.Launch(testFramework(false), hookExecutorInfo("e"), []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "executor running", func() bool { return len(m.states("t1")) == 1 })
	ex := a.Executors()[0]
	return &nestedFixture{
		a: a, m: m, parent: ex.ContainerID, dir: ex.Directory,
		api: httpagent.NewSender(httpcli.New(httpcli.Endpoint("http://" + a.Endpoint() + "/api/v1")).Send),
	}
}

func (f *nestedFixture) child(id string) mesos.ContainerID {
	p := f.parent
	return mesos.ContainerID{Value: id, Parent: &p}
}

func shell(cmd string) *mesos.CommandInfo { return &mesos.CommandInfo{Value: &cmd} }

func (f *nestedFixture) launch(cid mesos.ContainerID, cmd *mesos.CommandInfo, ci *mesos.ContainerInfo) error {
	return agentcalls.SendNoData(context.Background(), f.api, agentcalls.NonStreaming(agentcalls.LaunchNestedContainer(cid, cmd, ci)))
}

func (f *nestedFixture) wait(t *testing.T, c *agentapi.Call) (int32, error) {
	t.Helper()
	resp, err := f.api.Send(context.Background(), agentcalls.NonStreaming(c))
	if err != nil {
		return 0, err
	}
	defer resp.Close()
	var r agentapi.Response
	if err := resp.Decode(&r); err != nil {
		t.Fatalf("decoding wait response: %v", err)
	}
	if r.WaitNestedContainer != nil {
		return r.WaitNestedContainer.GetExitStatus(), nil
	}
	return r.GetWaitContainer().GetExitStatus(), nil
}

// readOutput collects ProcessIO records until the stream ends.
func readOutput(t *testing.T, resp interface {
	Decode(encodingUnmarshaler) error
}) (stdout, stderr string) {
	t.Helper()
	for {
		var p agentapi.ProcessIO
		err := resp.Decode(&p)
		if errors.Is(err, io.EOF) {
			return stdout, stderr
		}
		if err != nil {
			t.Fatalf("reading ProcessIO: %v", err)
		}
		if p.Data == nil {
			continue
		}
		switch p.Data.Type {
		case agentapi.ProcessIO_Data_STDOUT:
			stdout += string(p.Data.Data)
		case agentapi.ProcessIO_Data_STDERR:
			stderr += string(p.Data.Data)
		}
	}
}

func TestNestedContainerLifecycle(t *testing.T) {
	f := newNestedFixture(t)

	// Launch, wait for a clean exit; output lands in the nested sandbox.
	c1 := f.child("c1")
	if err := f.launch(c1, shell("echo hello; exit 7"), nil); err != nil {
		t.Fatalf("LAUNCH_NESTED_CONTAINER: %v", err)
	}
	status, err := f.wait(t, agentcalls.WaitNestedContainer(c1))
	if err != nil || status != 7<<8 {
		t.Fatalf("WAIT_NESTED_CONTAINER = %d, %v; want wait status %d", status, err, 7<<8)
	}
	sandbox := filepath.Join(f.dir, "containers", "c1")
	if out, _ := os.ReadFile(filepath.Join(sandbox, "stdout")); string(out) != "hello\n" {
		t.Errorf("nested stdout = %q", out)
	}

	// Kill with the default signal (SIGKILL) and with an explicit one (newer API).
	c2, c3 := f.child("c2"), f.child("c3")
	for _, c := range []mesos.ContainerID{c2, c3} {
		if err := f.launch(c, shell("sleep 1000"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := agentcalls.SendNoData(context.Background(), f.api, agentcalls.NonStreaming(agentcalls.KillNestedContainer(c2))); err != nil {
		t.Fatalf("KILL_NESTED_CONTAINER: %v", err)
	}
	kill := agentcalls.KillContainer(c3)
	term := int32(syscall.SIGTERM)
	kill.KillContainer.Signal = &term
	if err := agentcalls.SendNoData(context.Background(), f.api, agentcalls.NonStreaming(kill)); err != nil {
		t.Fatalf("KILL_CONTAINER: %v", err)
	}
	s2, _ := f.wait(t, agentcalls.WaitNestedContainer(c2))
	s3, _ := f.wait(t, agentcalls.WaitContainer(c3))
	if diff := cmp.Diff([2]int32{int32(syscall.SIGKILL), int32(syscall.SIGTERM)}, [2]int32{s2, s3}); diff != "" {
		t.Errorf("wait statuses after kill (-want +got):\n%s", diff)
	}
	err = agentcalls.SendNoData(context.Background(), f.api, agentcalls.NonStreaming(agentcalls.KillNestedContainer(c2)))
	if !apierrors.CodeNotFound.Matches(err) {
		t.Errorf("killing an exited container: %v, want 404", err)
	}

	// Remove: refused while running (500), fine once exited, then the container is gone (404).
	c4 := f.child("c4")
	if err := f.launch(c4, shell("sleep 1000"), nil); err != nil {
		t.Fatal(err)
	}
	err = agentcalls.SendNoData(context.Background(), f.api, agentcalls.NonStreaming(agentcalls.RemoveNestedContainer(c4)))
	if !apierrors.Code(500).Matches(err) {
		t.Errorf("removing a running container: %v, want 500", err)
	}
	if err := agentcalls.SendNoData(context.Background(), f.api, agentcalls.NonStreaming(agentcalls.RemoveContainer(c1))); err != nil {
		t.Errorf("REMOVE_CONTAINER of an exited container: %v", err)
	}
	if _, err := os.Stat(sandbox); !os.IsNotExist(err) {
		t.Errorf("nested sandbox still there after REMOVE: %v", err)
	}
	if _, err := f.wait(t, agentcalls.WaitNestedContainer(c1)); !apierrors.CodeNotFound.Matches(err) {
		t.Errorf("WAIT after REMOVE: %v, want 404", err)
	}

	// Errors: unknown parent, no parent for the nested call, unknown image.
	ghostParent := mesos.ContainerID{Value: "ghost"}
	if err := f.launch(mesos.ContainerID{Value: "x", Parent: &ghostParent}, shell("true"), nil); !apierrors.CodeMalformedRequest.Matches(err) {
		t.Errorf("launch under an unknown parent: %v, want 400", err)
	}
	if err := f.launch(mesos.ContainerID{Value: "x"}, shell("true"), nil); !apierrors.CodeMalformedRequest.Matches(err) {
		t.Errorf("LAUNCH_NESTED_CONTAINER without parent: %v, want 400", err)
	}
	if _, err := f.wait(t, agentcalls.WaitNestedContainer(f.child("never"))); !apierrors.CodeNotFound.Matches(err) {
		t.Errorf("wait on an unknown container: %v, want 404", err)
	}

	// The executor's death takes its nested containers with it.
	if err := f.a.KillExecutor(mesos.FrameworkID{Value: "fw-1"}, mesos.ExecutorID{Value: "e"}); err != nil {
		t.Fatal(err)
	}
	if s4, err := f.wait(t, agentcalls.WaitNestedContainer(c4)); err == nil && s4 != int32(syscall.SIGKILL) {
		t.Errorf("nested container of a dead executor: wait status %d, want SIGKILL", s4)
	}
}

func dockerImage(name string) *mesos.ContainerInfo {
	return &mesos.ContainerInfo{
		Type:  mesos.ContainerInfo_MESOS.Enum(),
		Mesos: &mesos.ContainerInfo_MesosInfo{Image: &mesos.Image{Type: mesos.Image_DOCKER.Enum(), Docker: &mesos.Image_Docker{Name: name}}},
	}
}

func TestNestedContainerImageCommand(t *testing.T) {
	f := newNestedFixture(t)
	c := f.child("web")
	if err := agentcalls.SendNoData(context.Background(), f.api, agentcalls.NonStreaming(agentcalls.LaunchContainer(c, nil, dockerImage("nginx"), nil))); err != nil {
		t.Fatalf("LAUNCH_CONTAINER with an image: %v", err)
	}
	if status, err := f.wait(t, agentcalls.WaitContainer(c)); err != nil || status != 0 {
		t.Fatalf("WAIT_CONTAINER = %d, %v", status, err)
	}
	out, _ := os.ReadFile(filepath.Join(f.dir, "containers", "web", "image.txt"))
	if string(out) != "from-image\n" {
		t.Errorf("image command output = %q", out)
	}
	// The image is recorded (it cannot be pulled): the agent's /state shows it.
	resp, err := http.Get("http://" + f.a.Endpoint() + "/state")
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Containers []struct {
			ID    string `json:"container_id"`
			Image string `json:"image"`
		} `json:"nested_containers"`
	}
	err = json.NewDecoder(resp.Body).Decode(&state)
	resp.Body.Close()
	if err != nil || len(state.Containers) != 1 || state.Containers[0].Image != "nginx" || state.Containers[0].ID != f.parent.Value+"/web" {
		t.Errorf("/state nested_containers = %+v (%v), want %s/web with image nginx", state.Containers, err, f.parent.Value)
	}

	// Arguments without a command go to the image's command, as to an image entrypoint.
	no, hello := false, "hello"
	withArgs := &mesos.CommandInfo{Shell: &no, Arguments: []string{"a", "b c"},
		Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "GREETING", Value: &hello}}}}
	c2 := f.child("args")
	if err := agentcalls.SendNoData(context.Background(), f.api, agentcalls.NonStreaming(agentcalls.LaunchContainer(c2, withArgs, dockerImage("echoer"), nil))); err != nil {
		t.Fatalf("LAUNCH_CONTAINER with arguments: %v", err)
	}
	if status, err := f.wait(t, agentcalls.WaitContainer(c2)); err != nil || status != 0 {
		t.Fatalf("WAIT_CONTAINER = %d, %v", status, err)
	}
	if out, _ := os.ReadFile(filepath.Join(f.dir, "containers", "args", "args.txt")); string(out) != "hello a b c\n" {
		t.Errorf("image command with arguments wrote %q", out)
	}
	err = agentcalls.SendNoData(context.Background(), f.api, agentcalls.NonStreaming(agentcalls.LaunchContainer(f.child("db"), nil, dockerImage("postgres"), nil)))
	if !apierrors.CodeMalformedRequest.Matches(err) {
		t.Errorf("image without a configured command: %v, want 400", err)
	}
}

// TestAttachContainerOutput: a container launched with a TTY has Mesos' I/O switchboard: its output
// (stdout and stderr are its terminal: one STDOUT stream, lines ending "\r\n") from the moment of
// attaching. See attach_test.go for containers without one.
func TestAttachContainerOutput(t *testing.T) {
	f := newNestedFixture(t)
	c := f.child("talker")
	if err := f.launch(c, shell("while [ ! -f go ]; do sleep 0.01; done; echo hello; echo oops >&2"), withTTY(nil)); err != nil {
		t.Fatal(err)
	}
	resp, err := f.api.Send(context.Background(), agentcalls.NonStreaming(agentcalls.AttachContainerOutput(c)))
	if err != nil {
		t.Fatalf("ATTACH_CONTAINER_OUTPUT: %v", err)
	}
	defer resp.Close()
	if err := os.WriteFile(filepath.Join(f.dir, "containers", "talker", "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr := readOutput(t, decoderOf(resp))
	if diff := cmp.Diff([2]string{"hello\r\noops\r\n", ""}, [2]string{stdout, stderr}); diff != "" {
		t.Errorf("attached output (-want +got):\n%s", diff)
	}
	if _, err := f.api.Send(context.Background(), agentcalls.NonStreaming(agentcalls.AttachContainerOutput(f.child("ghost")))); !apierrors.Code(500).Matches(err) {
		t.Errorf("attach to an unknown nested container: %v, want 500", err)
	}
	ghost := mesos.ContainerID{Value: "ghost"}
	if _, err := f.api.Send(context.Background(), agentcalls.NonStreaming(agentcalls.AttachContainerOutput(ghost))); !apierrors.CodeNotFound.Matches(err) {
		t.Errorf("attach to a container of no executor: %v, want 404", err)
	}
}

func TestNestedContainerSessionWithInput(t *testing.T) {
	f := newNestedFixture(t)
	c := f.child("debug")
	resp, err := f.api.Send(context.Background(), agentcalls.NonStreaming(agentcalls.LaunchNestedContainerSession(c, shell("read line; echo got:$line"), nil)))
	if err != nil {
		t.Fatalf("LAUNCH_NESTED_CONTAINER_SESSION: %v", err)
	}
	defer resp.Close()
	input := agentcalls.Push(agentcalls.Empty(),
		agentcalls.AttachContainerInput(c),
		agentcalls.AttachContainerInputData([]byte("ping\n")),
		agentcalls.AttachContainerInputData([]byte{}))
	if err := agentcalls.SendNoData(context.Background(), f.api, input); err != nil {
		t.Fatalf("ATTACH_CONTAINER_INPUT: %v", err)
	}
	stdout, _ := readOutput(t, decoderOf(resp))
	if stdout != "got:ping\n" {
		t.Errorf("session output = %q, want %q", stdout, "got:ping\n")
	}
	if status, err := f.wait(t, agentcalls.WaitNestedContainer(c)); err != nil || status != 0 {
		t.Errorf("session container wait = %d, %v", status, err)
	}
}

// TestSessionFastCommandOutput: a session command that writes and exits at once, before the client
// could attach to anything, still has all its output in the session's response.
func TestSessionFastCommandOutput(t *testing.T) {
	f := newNestedFixture(t)
	type output struct{ Stdout, Stderr string }
	cases := []struct {
		name, cmd string
		want      output
	}{
		{name: "stdout", cmd: "echo hi", want: output{Stdout: "hi\n"}},
		{name: "stderr", cmd: "echo oops >&2; exit 3", want: output{Stderr: "oops\n"}},
		{name: "both", cmd: "echo $((6*7)); echo e >&2", want: output{Stdout: "42\n", Stderr: "e\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 5 { // the lost-output race needed only a fast process; repeat to make it likely
				c := f.child(fmt.Sprintf("fast-%s-%d", tc.name, i))
				resp, err := f.api.Send(context.Background(), agentcalls.NonStreaming(agentcalls.LaunchNestedContainerSession(c, shell(tc.cmd), nil)))
				if err != nil {
					t.Fatalf("LAUNCH_NESTED_CONTAINER_SESSION: %v", err)
				}
				var got output
				got.Stdout, got.Stderr = readOutput(t, decoderOf(resp))
				resp.Close()
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("run %d: session output (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

// TestSessionOutputQueuedBeforeStart: a session's output queue holds everything its process wrote
// even when nobody reads it until the process has exited (deterministic form of the race above).
func TestSessionOutputQueuedBeforeStart(t *testing.T) {
	f := newNestedFixture(t)
	f.a.mu.Lock()
	c, code, msg := f.a.launchContainerLocked(f.child("exited-first"), shell("echo hi; echo e >&2"), nil, true)
	f.a.mu.Unlock()
	if code != http.StatusOK {
		t.Fatalf("launch: %d %s", code, msg)
	}
	<-c.done
	if c.sessionOut == nil {
		t.Fatal("a session container has no output queue")
	}
	items, closed := c.sessionOut.drain()
	got := map[agentapi.ProcessIO_Data_Type]string{}
	for _, p := range items {
		got[p.Data.Type] += string(p.Data.Data)
	}
	want := map[agentapi.ProcessIO_Data_Type]string{agentapi.ProcessIO_Data_STDOUT: "hi\n", agentapi.ProcessIO_Data_STDERR: "e\n"}
	if diff := cmp.Diff(want, got); diff != "" || !closed {
		t.Errorf("queued session output (-want +got):\n%s; closed = %v", diff, closed)
	}
}

func TestSessionContainerDiesWithItsConnection(t *testing.T) {
	f := newNestedFixture(t)
	c := f.child("shell")
	resp, err := f.api.Send(context.Background(), agentcalls.NonStreaming(agentcalls.LaunchNestedContainerSession(c, shell("sleep 1000"), nil)))
	if err != nil {
		t.Fatalf("LAUNCH_NESTED_CONTAINER_SESSION: %v", err)
	}
	resp.Close()
	if status, err := f.wait(t, agentcalls.WaitNestedContainer(c)); err != nil || status != int32(syscall.SIGKILL) {
		t.Errorf("session container after its connection closed: wait status %d, %v; want SIGKILL", status, err)
	}
}

// TestAttachOutputLegacyJSON: a client that accepts only application/json gets the ProcessIO records as
// RecordIO with Content-Type application/json, as older Mesos agents answer.
func TestAttachOutputLegacyJSON(t *testing.T) {
	f := newNestedFixture(t)
	c := f.child("legacy")
	if err := f.launch(c, shell("while [ ! -f go ]; do sleep 0.01; done; echo hi"), withTTY(nil)); err != nil {
		t.Fatal(err)
	}
	body := `{"type":"ATTACH_CONTAINER_OUTPUT","attach_container_output":{"container_id":{"value":"legacy","parent":{"value":"` + f.parent.Value + `"}}}}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+f.a.Endpoint()+"/api/v1", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("attach: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if err := os.WriteFile(filepath.Join(f.dir, "containers", "legacy", "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Type string `json:"type"`
		Data struct {
			Type string `json:"type"`
			Data []byte `json:"data"`
		} `json:"data"`
	}
	if err := json.Unmarshal(readRecord(t, bufio.NewReader(resp.Body)), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Type != "DATA" || rec.Data.Type != "STDOUT" || string(rec.Data.Data) != "hi\r\n" {
		t.Errorf("record = %+v, want DATA/STDOUT %q", rec, "hi\r\n")
	}
}

// A session is a DEBUG container: it inherits its parent's environment, MESOS_SANDBOX included, and
// runs in its parent's working directory (MesosContainerizerProcess::_launch), in process mode as
// under isolation.
func TestSessionInheritsTheParentsEnvironmentAndDirectory(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fixture func(*testing.T) *nestedFixture
	}{{"process mode", newNestedFixture}, {"isolated", newIsolatingFixture}} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.fixture(t)
			app := f.child("app")
			cmd := shell("exec sleep 1000")
			greeting := "from the parent"
			cmd.Environment = &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "GREETING", Value: &greeting}}}
			if err := f.launch(app, cmd, nil); err != nil {
				t.Fatalf("LAUNCH_NESTED_CONTAINER: %v", err)
			}
			defer func() {
				_ = agentcalls.SendNoData(context.Background(), f.api, agentcalls.NonStreaming(agentcalls.KillNestedContainer(app)))
			}()
			session := mesos.ContainerID{Value: "exec", Parent: &app}
			resp, err := f.api.Send(context.Background(), agentcalls.NonStreaming(agentcalls.LaunchNestedContainerSession(session,
				shell(`echo "$GREETING"; echo "$MESOS_SANDBOX"; pwd`), nil)))
			if err != nil {
				t.Fatalf("LAUNCH_NESTED_CONTAINER_SESSION: %v", err)
			}
			defer resp.Close()
			stdout, stderr := readOutput(t, decoderOf(resp))
			dir := filepath.Join(f.dir, "containers", "app")
			if want := "from the parent\n" + dir + "\n" + dir + "\n"; stdout != want {
				t.Errorf("session output %q (stderr %q), want %q", stdout, stderr, want)
			}
		})
	}
}
