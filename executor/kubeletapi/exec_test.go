package kubeletapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	clientexec "k8s.io/client-go/util/exec"
)

// fakeExecer runs a few canned commands and records what it was asked.
type fakeExecer struct {
	mu  sync.Mutex
	got []ExecRequest
}

func (f *fakeExecer) Exec(_ context.Context, req ExecRequest) (int, error) {
	f.mu.Lock()
	f.got = append(f.got, ExecRequest{ContainerID: req.ContainerID, Command: req.Command, TTY: req.TTY})
	f.mu.Unlock()
	switch req.Command[0] {
	case "echo":
		_, err := fmt.Fprintln(req.Stdout, strings.Join(req.Command[1:], " "))
		return 0, err
	case "cat":
		if req.Stdin == nil {
			return 0, nil
		}
		_, err := io.Copy(req.Stdout, req.Stdin)
		return 0, err
	case "fail":
		_, err := fmt.Fprintln(req.Stderr, "failing")
		return 3, err
	}
	return 0, errors.New("no such command")
}

func execURL(base, path string, cmd []string, stdin bool) string {
	q := url.Values{"command": cmd, "output": {"1"}, "error": {"1"}}
	if stdin {
		q.Set("input", "1")
	}
	return base + path + "?" + q.Encode()
}

func TestExec(t *testing.T) {
	sandbox := t.TempDir()
	reg := NewRegistry(sandbox)
	pod := testPod("web")
	reg.Update(pod, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running("main", "uid-web-main-0"),
		{Name: "side", ContainerID: "mesos://uid-web-side-0", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}}}})
	fe := &fakeExecer{}
	base := startServer(t, Config{Pods: reg, Execer: fe})
	cfg := &restclient.Config{Host: base, TLSClientConfig: restclient.TLSClientConfig{Insecure: true}}

	tests := []struct {
		name       string
		path       string
		cmd        []string
		stdin      string
		websocket  bool
		wantStdout string
		wantStderr string
		wantExit   int // -1: any error but an exit code
	}{
		{"echo over SPDY", "/exec/default/web/main", []string{"echo", "hello", "world"}, "", false, "hello world\n", "", 0},
		{"stdin round trip", "/exec/default/web/main", []string{"cat"}, "ping\npong\n", false, "ping\npong\n", "", 0},
		{"exit code", "/exec/default/web/main", []string{"fail"}, "", false, "", "failing\n", 3},
		{"with the pod UID", "/exec/default/web/uid-web/main", []string{"echo", "uid"}, "", false, "uid\n", "", 0},
		{"websocket v4", "/exec/default/web/main", []string{"echo", "ws"}, "", true, "ws\n", "", 0},
		{"execer failure", "/exec/default/web/main", []string{"nonsense"}, "", false, "", "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ex remotecommand.Executor
			var err error
			u, _ := url.Parse(execURL(base, tt.path, tt.cmd, tt.stdin != ""))
			if tt.websocket {
				ex, err = remotecommand.NewWebSocketExecutorForProtocols(cfg, "GET", u.String(), "v4.channel.k8s.io")
			} else {
				ex, err = remotecommand.NewSPDYExecutor(cfg, "POST", u)
			}
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			opts := remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}
			if tt.stdin != "" {
				opts.Stdin = strings.NewReader(tt.stdin)
			}
			err = ex.StreamWithContext(context.Background(), opts)
			var exitErr clientexec.CodeExitError
			switch {
			case tt.wantExit == 0 && err != nil:
				t.Fatalf("exec: %v", err)
			case tt.wantExit > 0 && (!errors.As(err, &exitErr) || exitErr.Code != tt.wantExit):
				t.Fatalf("exec error = %v, want exit code %d", err, tt.wantExit)
			case tt.wantExit < 0 && (err == nil || errors.As(err, &exitErr)):
				t.Fatalf("exec error = %v, want a failure without exit code", err)
			}
			if diff := cmp.Diff(tt.wantStdout, stdout.String()); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStderr, stderr.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
	fe.mu.Lock()
	defer fe.mu.Unlock()
	if got := fe.got[0]; got.ContainerID != "uid-web-main-0" {
		t.Errorf("exec ran in container %q, want the running attempt uid-web-main-0", got.ContainerID)
	}
}

func TestExecRefusals(t *testing.T) {
	reg := NewRegistry(t.TempDir())
	reg.Update(testPod("web"), corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running("main", "uid-web-main-0"),
		{Name: "side", ContainerID: "mesos://uid-web-side-0", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}}}})
	base := startServer(t, Config{Pods: reg, Execer: &fakeExecer{}})
	tests := []struct {
		name     string
		url      string
		wantCode int
		wantBody string
	}{
		{"unknown pod", execURL(base, "/exec/default/nope/main", []string{"ls"}, false), 404, "pod default/nope: pod not found on this node\n"},
		{"unknown container", execURL(base, "/exec/default/web/db", []string{"ls"}, false), 404, "container \"db\" in pod default/web: container not found in pod\n"},
		{"stale pod UID", execURL(base, "/exec/default/web/uid-old/main", []string{"ls"}, false), 404, "pod default/web with UID uid-old: pod not found on this node\n"},
		{"terminated container", execURL(base, "/exec/default/web/side", []string{"ls"}, false), 400, "container \"side\" in pod \"web\" is not running\n"},
		{"no command", base + "/exec/default/web/main?output=1", 400, "no command given (command=...)\n"},
		{"no streams", base + "/exec/default/web/main?command=ls", 400, "you must specify at least 1 of stdin, stdout, stderr\n"},
	}
	for _, tt := range tests {
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
