package kubeletapi

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
	corev1 "k8s.io/api/core/v1"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/kubemesos/kubemesos/executor/containerlogs"
)

func attachURL(base, path string, stdin, tty bool) string {
	q := url.Values{"output": {"1"}, "error": {"1"}}
	if stdin {
		q.Set("input", "1")
	}
	if tty {
		q.Set("tty", "1")
		q.Del("error")
	}
	return base + path + "?" + q.Encode()
}

// attachPod is testPod with "term" (stdin, tty) and "once" (stdin, stdinOnce, no tty) containers.
func attachPod() *corev1.Pod {
	p := testPod("web")
	p.Spec.Containers = append(p.Spec.Containers,
		corev1.Container{Name: "term", Stdin: true, TTY: true},
		corev1.Container{Name: "once", Stdin: true, StdinOnce: true})
	return p
}

// launchTTY launches a pod container as package nested does for a container with stdin or tty: one
// level under the executor's container, with a TTYInfo.
func (sp *simPod) launchTTY(t *testing.T, id, script string) {
	t.Helper()
	api := httpagent.NewSender(httpcli.New(httpcli.Endpoint(sp.agentURL)).Send)
	parent := sp.executor
	ci := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), TTYInfo: &mesos.TTYInfo{}}
	cid := mesos.ContainerID{Value: id, Parent: &parent}
	if err := agentcalls.SendNoData(context.Background(), api, agentcalls.NonStreaming(agentcalls.LaunchContainer(cid, &mesos.CommandInfo{Value: &script}, ci, nil))); err != nil {
		t.Fatalf("launching %s: %v", id, err)
	}
}

// TestAttachThroughServerOnMesos is `kubectl attach -i` as the API server relays it (SPDY and
// websocket v5) through the server to a pod container on the simulated agent: its output through
// ATTACH_CONTAINER_OUTPUT (its terminal echoes the input), the client's input through
// ATTACH_CONTAINER_INPUT, until the container ends. With stdinOnce, the end of the client's input
// ends the container's (EOT to its terminal), so `cat` ends.
func TestAttachThroughServerOnMesos(t *testing.T) {
	sp := newSimPod(t)
	cfg := func(base string) *restclient.Config {
		return &restclient.Config{Host: base, TLSClientConfig: restclient.TLSClientConfig{Insecure: true}}
	}
	for _, tc := range []struct {
		name, container, script, stdin, want string
		tty, websocket                       bool
	}{
		{name: "spdy tty", container: "term", script: `read x; echo "got:$x"`, stdin: "ping\n", tty: true,
			want: "ping\r\ngot:ping\r\n"},
		{name: "websocket v5 tty", container: "term", script: `read x; echo "got:$x"`, stdin: "pong\n", tty: true, websocket: true,
			want: "pong\r\ngot:pong\r\n"},
		{name: "stdinOnce", container: "once", script: `cat; echo "eof"`, stdin: "line\n",
			want: "line\r\nline\r\neof\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "uid-web-" + strings.ReplaceAll(tc.name, " ", "-")
			sp.launchTTY(t, id, tc.script)
			reg := NewRegistry(sp.sandbox)
			reg.Update(attachPod(), corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running(tc.container, id)}})
			base := startServer(t, Config{Pods: reg, Attacher: sp.execer()})
			u := attachURL(base, "/attach/default/web/"+tc.container, true, tc.tty)
			var ex remotecommand.Executor
			var err error
			if tc.websocket {
				ex, err = remotecommand.NewWebSocketExecutor(cfg(base), "GET", u)
			} else {
				pu, _ := url.Parse(u)
				ex, err = remotecommand.NewSPDYExecutor(cfg(base), "POST", pu)
			}
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// The input comes once the output is attached: the echo and answer follow it.
			err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader(tc.stdin), Stdout: &stdout, Stderr: &stderr, Tty: tc.tty})
			if err != nil {
				t.Fatalf("attach: %v (stdout %q)", err, stdout.String())
			}
			if diff := cmp.Diff([2]string{tc.want, ""}, [2]string{stdout.String(), stderr.String()}); diff != "" {
				t.Errorf("attached output (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAttachFollowsTheLog: a container without stdin or tty has no I/O switchboard on Mesos; attach
// shows what it writes from the moment of attaching, from its log (stdout and stderr apart; a
// partial entry without its newline), and ends when the container does.
func TestAttachFollowsTheLog(t *testing.T) {
	sandbox := t.TempDir()
	reg := NewRegistry(sandbox)
	pod := testPod("web")
	reg.Update(pod, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running("main", "uid-web-main-0")}})
	writeCRILog(t, sandbox, "uid-web", "uid-web-main-0", time.Now().Add(-time.Hour), logEntry{"stdout", "before attaching"})
	base := startServer(t, Config{Pods: reg})
	pu, _ := url.Parse(attachURL(base, "/attach/default/web/main", false, false))
	ex, err := remotecommand.NewSPDYExecutor(&restclient.Config{Host: base, TLSClientConfig: restclient.TLSClientConfig{Insecure: true}}, "POST", pu)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- ex.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	}()
	f, err := os.OpenFile(containerlogs.Path(sandbox, "uid-web", "uid-web-main-0"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entry := func(stream, tag, line string) {
		fmt.Fprintf(f, "%s %s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), stream, tag, line)
	}
	// Ticks until the attach shows one: it started before.
	ticks := 0
	for stdout.String() == "" {
		ticks++
		entry("stdout", "F", "tick")
		time.Sleep(50 * time.Millisecond)
	}
	entry("stderr", "F", "warn")
	entry("stdout", "P", "part")
	entry("stdout", "F", "ial")
	waitFor(t, "the new lines", func() bool { return strings.HasSuffix(stdout.String(), "partial\n") && stderr.String() == "warn\n" })
	reg.Update(pod, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "main", ContainerID: "mesos://uid-web-main-0",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}}}})
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("attach: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("attach did not end with the container")
	}
	got := strings.TrimSuffix(stdout.String(), "partial\n")
	if strings.Contains(got, "before attaching") || strings.Trim(got, "tick\n") != "" || got == "" {
		t.Errorf("attached stdout = %q, want ticks written after attaching then \"partial\"", stdout.String())
	}
	if stderr.String() != "warn\n" {
		t.Errorf("attached stderr = %q, want %q", stderr.String(), "warn\n")
	}
}

func TestAttachRefusals(t *testing.T) {
	reg := NewRegistry(t.TempDir())
	reg.Update(attachPod(), corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running("main", "uid-web-main-0"), running("term", "uid-web-term-0"),
		{Name: "side", ContainerID: "mesos://uid-web-side-0", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}}}})
	base := startServer(t, Config{Pods: reg})
	for _, tt := range []struct {
		name     string
		url      string
		wantCode int
		wantBody string
	}{
		{"unknown pod", attachURL(base, "/attach/default/nope/main", false, false), 404, "pod default/nope: pod not found on this node\n"},
		{"unknown container", attachURL(base, "/attach/default/web/db", false, false), 404, "container \"db\" in pod default/web: container not found in pod\n"},
		{"stale pod UID", attachURL(base, "/attach/default/web/uid-old/main", false, false), 404, "pod default/web with UID uid-old: pod not found on this node\n"},
		{"terminated container", attachURL(base, "/attach/default/web/side", false, false), 400, "container \"side\" in pod \"web\" is not running\n"},
		{"no streams", base + "/attach/default/web/main", 400, "you must specify at least 1 of stdin, stdout, stderr\n"},
		{"no attacher for a terminal", attachURL(base, "/attach/default/web/term", true, true), 501, "attach is not available on this node\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(t, insecureClient(), tt.url)
			if code != tt.wantCode {
				t.Errorf("status %d, want %d (%q)", code, tt.wantCode, body)
			}
			if diff := cmp.Diff(tt.wantBody, body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}
